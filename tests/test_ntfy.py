"""The ntfy transport against a loopback ntfy server that answers as ntfy documents."""

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
from tests.channel_fixtures import all_text, make_channel, ntfy_config, send
from tests.harness import manage, site_env
from tests.ntfy_server import TOKEN, TOPIC, NtfyServer

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def channel(ntfy: NtfyServer, fast_http: Any) -> Channel:
    return make_channel("phone", "ntfy", ntfy_config(ntfy))


def test_the_loopback_refuses_what_ntfy_refuses(ntfy: NtfyServer) -> None:
    assert requests.post(ntfy.url, data=b"hi", timeout=5).status_code == 403
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (
        requests.post(ntfy.url, data=b"hi", headers={**auth, "Priority": "9"}, timeout=5).status_code == 400
    )
    assert requests.post(ntfy.url, data=b"hi", headers=auth, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("level", "priority", "tag"),
    [("critical", 5, "rotating_light"), ("warning", 4, "warning"), ("info", 3, "bell")],
)
def test_title_message_tags_and_priority_from_the_level(
    channel: Channel, ntfy: NtfyServer, level: str, priority: int, tag: str
) -> None:
    (alert,) = send(level, title="Daily loss: alpha € −600", fields=[("Bot", "alpha")])
    assert alert.state == AlertState.SENT
    (message,) = ntfy.messages
    assert message["topic"] == TOPIC
    assert message["title"] == "Daily loss: alpha € −600"  # RFC 2047 in the header, decoded by ntfy
    assert message["priority"] == priority
    assert message["tags"] == [tag, "test"]
    assert message["message"].startswith("P&L -600\n\nBot: alpha")
    assert deliver_pending() == 0 and len(ntfy.messages) == 1


def test_an_oversized_message_is_cut_to_4096_bytes_never_an_attachment(
    channel: Channel, ntfy: NtfyServer
) -> None:
    (alert,) = send(message="€" * 5000, fields=[("Bot", "alpha")])
    assert alert.state == AlertState.SENT
    (message,) = ntfy.messages
    assert not message["attachment"]
    assert len(message["message"].encode()) <= 4096 and "Bot: alpha" in message["message"]


def test_a_429_with_retry_after_is_waited_out(channel: Channel, ntfy: NtfyServer) -> None:
    ntfy.then("429", 1)
    (alert,) = send()
    assert alert.state == AlertState.SENT and ntfy.statuses == [429, 200]
    (gap,) = ntfy.gaps()
    assert 1.0 <= gap < 1.4  # retry_after's 1 s, not 1.5 (it plus the backoff); 0.4 s of room for load


def test_a_429_without_retry_after_backs_off(channel: Channel, ntfy: NtfyServer) -> None:
    ntfy.then("429")
    (alert,) = send()
    assert alert.state == AlertState.SENT and ntfy.statuses == [429, 200]
    (gap,) = ntfy.gaps()
    assert 0.5 <= gap < 0.9  # the first backoff (0.5 s), not the second (1 s); 0.4 s of room for load


def test_a_wrong_token_disables_the_channel(channel: Channel, ntfy: NtfyServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(
        config={**channel.config, "token": "tk_wrongwrongwrongwrong"}
    )
    (alert,) = send()
    channel.refresh_from_db()
    assert channel.disabled_reason.startswith(
        f"ntfy refused the topic (HTTP 403 from {ntfy.host}: forbidden)"
    )
    assert alert.state == AlertState.PENDING
    send()
    assert ntfy.statuses == [403]


def test_overflow_is_folded_into_one_digest(channel: Channel, ntfy: NtfyServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=1)
    for n in range(3):
        send("info", now=T + dt.timedelta(seconds=n), title=f"alert {n}")
    assert len(ntfy.messages) == 1
    deliver_pending(now=T + dt.timedelta(seconds=61))
    assert [m["title"] for m in ntfy.messages] == ["alert 0", "2 alerts held back by the rate limit"]


def test_the_topic_and_token_never_reach_logs_attempts_text_or_pages(
    channel: Channel, ntfy: NtfyServer, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    ntfy.then("status", 500, times=3)
    send(message=f"leaked {ntfy.url} and {TOKEN}")
    texts = [caplog.text, *all_text()]
    for url in ("/admin/alerts/channel/", f"/admin/alerts/channel/{channel.pk}/change/"):
        texts.append(admin_client.get(url).content.decode())
    assert not [t for t in texts if TOPIC in t or TOKEN in t]
    assert "tra…" in Alert.objects.get().message


def test_the_default_channel_comes_from_the_environment(ntfy: NtfyServer, fast_http: Any) -> None:
    fast_http.NTFY_URL, fast_http.NTFY_TOKEN = ntfy.url, TOKEN
    (alert,) = send("critical")
    assert alert.channel.name == "ntfy" and alert.state == AlertState.SENT
    assert ntfy.messages[0]["priority"] == 5


def test_a_malformed_variable_stops_start_up_naming_it_without_echoing_it(tmp_path: Any) -> None:
    result = manage(site_env(tmp_path, NTFY_URL="ntfy.sh/topic"), "check", check=False)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "NTFY_URL" in line and "ntfy.sh/topic" not in line
