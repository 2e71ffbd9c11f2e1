"""The generic JSON webhook against a receiver that verifies the HMAC signature as docs/ALERTS.md says."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
import requests
from django.test import Client

from alerts.delivery import deliver_pending
from alerts.models import Alert, AlertState, Channel
from alerts.transports.webhook import signature
from tests.channel_fixtures import *  # noqa: F403
from tests.channel_fixtures import all_text, make_channel, send, webhook_config
from tests.harness import manage, site_env
from tests.webhook_receiver import SECRET, WebhookReceiver

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def channel(receiver: WebhookReceiver, fast_http: Any) -> Channel:
    return make_channel("hub", "webhook", webhook_config(receiver))


def test_a_signed_alert_is_verified_and_taken_once(channel: Channel, receiver: WebhookReceiver) -> None:
    (alert,) = send("critical", fields=[("Bot", "alpha")])
    assert alert.state == AlertState.SENT and receiver.refused == []
    (payload,) = receiver.payloads
    assert payload == {
        "id": alert.pk,
        "level": "critical",
        "title": "Daily loss",
        "message": "P&L -600",
        "fields": [{"name": "Bot", "value": "alpha"}],
        "source": "test",
        "bot": None,
        "created_at": alert.created_at.isoformat(),
    }
    request = receiver.requests[0]
    assert request.headers["X-Monitor-Alert"] == str(alert.pk)
    timestamp = request.headers["X-Monitor-Timestamp"]
    assert request.headers["X-Monitor-Signature"] == signature(SECRET, timestamp, request.body)
    assert deliver_pending() == 0 and len(receiver.requests) == 1


def test_a_replayed_or_altered_request_fails_verification(
    channel: Channel, receiver: WebhookReceiver
) -> None:
    send()
    original = receiver.requests[0]
    headers = {k: v for k, v in original.headers.items() if k.startswith("X-Monitor")}
    newer = str(int(original.headers["X-Monitor-Timestamp"]) + 1)
    # A fresh timestamp on the old body: the signature covers the timestamp, so it no longer matches.
    assert (
        requests.post(
            receiver.url, data=original.body, headers={**headers, "X-Monitor-Timestamp": newer}, timeout=5
        ).status_code
        == 401
    )
    altered = original.body.replace(b"Daily loss", b"Daily gain")
    assert requests.post(receiver.url, data=altered, headers=headers, timeout=5).status_code == 401
    receiver.tolerance = -1  # the same request, arriving after the receiver's window
    assert requests.post(receiver.url, data=original.body, headers=headers, timeout=5).status_code == 401
    assert receiver.refused == ["bad signature", "bad signature", "stale or missing timestamp"]
    assert len(receiver.payloads) == 1


def test_a_wrong_secret_is_refused_and_disables_the_channel(
    channel: Channel, receiver: WebhookReceiver
) -> None:
    Channel.objects.filter(pk=channel.pk).update(
        config={**channel.config, "secret": "another-secret-0123456789"}
    )
    (alert,) = send()
    channel.refresh_from_db()
    assert channel.disabled_reason.startswith("the webhook refused us (HTTP 401")
    assert alert.state == AlertState.PENDING and receiver.payloads == []


def test_without_a_secret_no_signature_is_sent(receiver: WebhookReceiver, fast_http: Any) -> None:
    make_channel("plain", "webhook", {"url": receiver.url})
    send()
    assert "X-Monitor-Signature" not in receiver.requests[0].headers
    assert receiver.refused == ["bad signature"]


def test_a_429_waits_retry_after_and_5xx_is_retried(channel: Channel, receiver: WebhookReceiver) -> None:
    receiver.then("429", 1).then("status", 503)
    (alert,) = send()
    assert alert.state == AlertState.SENT and receiver.statuses == [429, 503, 200]
    # retry_after's 1 s, not 1.5 (it plus the backoff); 0.4 s of room for load
    assert 1.0 <= receiver.gaps()[0] < 1.4


def test_overflow_is_folded_into_one_digest(channel: Channel, receiver: WebhookReceiver) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=1)
    for n in range(3):
        send("info", now=T + dt.timedelta(seconds=n), title=f"alert {n}")
    deliver_pending(now=T + dt.timedelta(seconds=61))
    assert [p["title"] for p in receiver.payloads] == ["alert 0", "2 alerts held back by the rate limit"]
    assert receiver.payloads[1]["source"] == "digest"


def test_the_url_and_secret_never_reach_logs_attempts_text_or_pages(
    channel: Channel, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.then("status", 500, times=3)
    send(message=f"leaked {SECRET}")
    texts = [caplog.text, *all_text()]
    for url in ("/admin/alerts/channel/", f"/admin/alerts/channel/{channel.pk}/change/"):
        texts.append(admin_client.get(url).content.decode())
    assert not [t for t in texts if SECRET in t or "/hooks/trading-monitor" in t]
    assert "whs…" in Alert.objects.get().message


def test_the_default_channel_comes_from_the_environment(receiver: WebhookReceiver, fast_http: Any) -> None:
    fast_http.ALERT_WEBHOOK_URL, fast_http.ALERT_WEBHOOK_SECRET = receiver.url, SECRET
    (alert,) = send()
    assert alert.channel.name == "webhook" and alert.state == AlertState.SENT
    assert receiver.refused == [] and len(receiver.payloads) == 1


def test_a_short_secret_stops_start_up_naming_the_variable(tmp_path: Any) -> None:
    result = manage(site_env(tmp_path, ALERT_WEBHOOK_SECRET="short"), "check", check=False)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "ALERT_WEBHOOK_SECRET" in line and "short" not in line  # a secret is never echoed
