"""The Slack transport against a loopback incoming webhook that answers as Slack documents."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import requests
from django.test import Client

from alerts.delivery import deliver_pending
from alerts.models import Alert, AlertState, Channel
from tests.channel_fixtures import *  # noqa: F403
from tests.channel_fixtures import all_text, make_channel, send, slack_config
from tests.harness import manage, site_env
from tests.slack_server import SECRET, SlackServer

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def channel(slack: SlackServer, fast_http: Any) -> Channel:
    return make_channel("team-slack", "slack", slack_config(slack))


def test_the_loopback_answers_in_plain_text_as_slack_does(slack: SlackServer) -> None:
    bad = requests.post(slack.url, data=b"not json", timeout=5)
    assert (bad.status_code, bad.text) == (400, "invalid_payload")
    wrong = requests.post(slack.url.replace(SECRET, "x" * 24), json={"text": "hi"}, timeout=5)
    assert (wrong.status_code, wrong.text) == (403, "invalid_token")
    assert requests.post(slack.url, json={"text": "hi"}, timeout=5).text == "ok"


def test_an_alert_reaches_slack_once_with_mentions_escaped(channel: Channel, slack: SlackServer) -> None:
    (alert,) = send("critical", message="<!channel> look & see", fields=[("Bot", "alpha")])
    assert alert.state == AlertState.SENT
    (message,) = slack.messages
    assert message["text"].startswith("🚨 Daily loss\n\n&lt;!channel&gt; look &amp; see")
    assert "Bot: alpha" in message["text"]
    assert deliver_pending() == 0 and len(slack.messages) == 1


def test_an_oversized_alert_is_cut_to_4000_characters(channel: Channel, slack: SlackServer) -> None:
    send(message="<" * 9000)
    (message,) = slack.messages
    assert len(message["text"]) <= 4000


def test_a_429_waits_retry_after(channel: Channel, slack: SlackServer) -> None:
    slack.then("429", 1)
    (alert,) = send()
    assert alert.state == AlertState.SENT and slack.statuses == [429, 200]
    (gap,) = slack.gaps()
    assert 1.0 <= gap < 1.4  # retry_after's 1 s, not 1.5 (it plus the backoff); 0.4 s of room for load


@pytest.mark.parametrize("error", ["channel_is_archived", "no_service", "action_prohibited"])
def test_a_gone_webhook_disables_the_channel(channel: Channel, slack: SlackServer, error: str) -> None:
    slack.then("error", error)
    (alert,) = send()
    channel.refresh_from_db()
    assert (
        channel.disabled_reason.startswith("Slack refused the webhook") and error in channel.disabled_reason
    )
    assert alert.state == AlertState.PENDING
    send()
    assert len(slack.statuses) == 1


def test_an_invalid_payload_fails_the_message_not_the_channel(channel: Channel, slack: SlackServer) -> None:
    slack.then("error", "invalid_payload")
    (alert,) = send()
    channel.refresh_from_db()
    assert alert.state == AlertState.FAILED and "invalid_payload" in alert.last_error
    assert channel.disabled_reason == ""
    (second,) = send(title="next")
    assert second.state == AlertState.SENT


def test_overflow_is_folded_into_one_digest(channel: Channel, slack: SlackServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=1)
    for n in range(3):
        send("info", now=T + dt.timedelta(seconds=n), title=f"alert {n}")
    deliver_pending(now=T + dt.timedelta(seconds=61))
    assert len(slack.messages) == 2
    assert slack.messages[1]["text"].startswith("🔔 2 alerts held back by the rate limit")


def test_the_webhook_secret_never_reaches_logs_attempts_text_or_pages(
    channel: Channel, slack: SlackServer, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.then("status", 500, times=3)
    slack.then("error", "no_service")
    send(message=f"leaked {slack.url}")
    send()
    texts = [caplog.text, *all_text()]
    for url in ("/admin/alerts/channel/", f"/admin/alerts/channel/{channel.pk}/change/"):
        texts.append(admin_client.get(url).content.decode())
    assert not [t for t in texts if SECRET in t]
    assert (
        "hooks" not in Alert.objects.order_by("pk").first().message or "xSl…" in Alert.objects.first().message
    )


def test_a_malformed_variable_stops_start_up_naming_it_without_echoing_it(tmp_path: Any) -> None:
    result = manage(
        site_env(tmp_path, SLACK_WEBHOOK_URL="hooks.slack.com/services/T/B/secret-part"), "check", check=False
    )
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "SLACK_WEBHOOK_URL" in line and "hooks.slack.com/services/T/B/secret-part" not in line


def test_the_default_channel_comes_from_the_environment(slack: SlackServer, fast_http: Any) -> None:
    fast_http.SLACK_WEBHOOK_URL = slack.url
    (alert,) = send()
    assert alert.channel.name == "slack" and alert.channel.uses_environment
    assert alert.state == AlertState.SENT and len(slack.messages) == 1


@pytest.mark.parametrize(
    "answer",
    [
        ("error", "invalid_token"),  # 403: the webhook was removed
        ("error", "channel_not_found"),  # 404
        ("error", "no_service"),  # 404
        ("error", "no_team"),  # 400: known by its text alone
        ("answer", (410, "gone")),  # known by its status alone
        ("answer", (404, "Not Found")),
    ],
    ids=lambda answer: "-".join(map(str, answer[1])) if answer[0] == "answer" else answer[1],
)
def test_a_permanent_refusal_disables_the_channel_and_its_alerts_wait_until_it_is_mended(
    channel: Channel, slack: SlackServer, answer: tuple[str, Any]
) -> None:
    slack.then(*answer)
    (alert,) = send(now=T)
    channel.refresh_from_db()
    assert channel.disabled_reason.startswith("Slack refused the webhook") and channel.disabled_at is not None
    assert alert.state == AlertState.PENDING and slack.messages == []
    (second,) = send(title="second", now=T + dt.timedelta(seconds=1))
    assert second.state == AlertState.PENDING and len(slack.requests) == 1  # not tried at all
    Channel.objects.filter(pk=channel.pk).update(disabled_reason="")  # the operator mended it
    deliver_pending(now=T + dt.timedelta(seconds=2))
    assert len(slack.messages) == 2
    assert set(Alert.objects.values_list("state", flat=True)) == {AlertState.SENT}


@pytest.mark.parametrize(
    ("action", "value", "times"),
    [("status", 500, 3), ("status", 503, 3), ("429", 30, 1)],
    ids=["500", "503", "429"],
)
def test_a_temporary_failure_is_retried_later_and_leaves_the_channel_on(
    channel: Channel, slack: SlackServer, action: str, value: int, times: int
) -> None:
    slack.then(action, value, times=times)  # every attempt of one delivery run
    (alert,) = send(now=T)
    channel.refresh_from_db()
    assert channel.disabled_reason == "" and alert.state == AlertState.PENDING and alert.attempts == 1
    assert alert.next_attempt_at == T + dt.timedelta(seconds=30) and slack.messages == []
    deliver_pending(now=alert.next_attempt_at)
    alert.refresh_from_db()
    assert alert.state == AlertState.SENT and len(slack.messages) == 1
