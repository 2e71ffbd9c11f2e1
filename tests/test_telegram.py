"""The Telegram transport against a loopback Bot API that answers as Telegram documents."""

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
from tests.channel_fixtures import all_text, make_channel, send, telegram_config
from tests.harness import manage, site_env
from tests.telegram_server import CHAT_ID, TOKEN, TelegramServer

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def channel(telegram: TelegramServer, fast_http: Any) -> Channel:
    return make_channel("ops-telegram", "telegram", telegram_config(telegram))


def test_the_loopback_refuses_what_telegram_refuses(telegram: TelegramServer) -> None:
    url = f"{telegram.api_url}/bot{TOKEN}/sendMessage"
    too_long = requests.post(url, json={"chat_id": CHAT_ID, "text": "x" * 4097}, timeout=5)
    assert (
        too_long.status_code == 400 and too_long.json()["description"] == "Bad Request: message is too long"
    )
    unknown = requests.post(url, json={"chat_id": "42", "text": "hi"}, timeout=5)
    assert unknown.json()["description"] == "Bad Request: chat not found"
    wrong = requests.post(url.replace(TOKEN, "123:wrongwrongwrongwrongwrong"), json={}, timeout=5)
    assert wrong.status_code == 401
    assert requests.post(url, json={"chat_id": CHAT_ID, "text": "x" * 4096}, timeout=5).status_code == 200


def test_an_alert_reaches_the_chat_once_as_plain_text(channel: Channel, telegram: TelegramServer) -> None:
    (alert,) = send("critical", fields=[("Bot", "alpha"), ("P&L", "<b>-600</b>")])
    assert alert.state == AlertState.SENT and alert.channel == channel
    (text,) = telegram.texts()
    assert text.startswith("🚨 Daily loss\n\nP&L -600")
    assert "Bot: alpha" in text and "P&L: <b>-600</b>" in text  # no parse_mode: markup stays text
    assert f"critical · test · alert #{alert.pk}" in text
    assert deliver_pending() == 0 and len(telegram.messages) == 1


def test_an_oversized_alert_is_cut_to_4096_units_and_accepted(
    channel: Channel, telegram: TelegramServer
) -> None:
    fields = [(f"field {i}", "v" * 200) for i in range(40)]
    (alert,) = send(title="🚨" * 100, message="m" * 10_000, fields=fields)
    assert alert.state == AlertState.SENT and 400 not in telegram.statuses
    (text,) = telegram.texts()
    assert len(text.encode("utf-16-le")) // 2 <= 4096
    assert text.startswith("⚠️ " + "🚨" * 100)  # the title survives whole; the message gave way


def test_a_429_waits_exactly_the_retry_after_telegram_asks(
    channel: Channel, telegram: TelegramServer
) -> None:
    telegram.then("429", 1)
    (alert,) = send()
    assert alert.state == AlertState.SENT
    assert telegram.statuses == [429, 200]
    (gap,) = telegram.gaps()
    # parameters.retry_after (1 s), not the 0.5 s backoff nor both (1.5 s); 0.4 s of room for load
    assert 1.0 <= gap < 1.4
    assert list(alert.delivery_attempts.values_list("status_code", flat=True)) == [429, 200]


def test_a_retry_after_longer_than_a_task_waits_is_left_to_a_later_run(
    channel: Channel, telegram: TelegramServer
) -> None:
    telegram.then("429", 30)
    (alert,) = send()
    assert alert.state == AlertState.PENDING and telegram.messages == []
    attempt = alert.delivery_attempts.get()
    assert (alert.next_attempt_at - attempt.at).total_seconds() == 30


@pytest.mark.parametrize("answer", [("status", 401), ("status", 403), ("chat", None)])
def test_a_refused_bot_or_chat_disables_the_channel_and_keeps_the_alert(
    channel: Channel, telegram: TelegramServer, answer: tuple[str, Any]
) -> None:
    if answer[0] == "chat":
        Channel.objects.filter(pk=channel.pk).update(config={**channel.config, "chat_id": "-100999"})
    else:
        telegram.then(*answer)
    (alert,) = send()
    channel.refresh_from_db()
    assert channel.disabled_reason.startswith("Telegram refused the bot or chat")
    assert alert.state == AlertState.PENDING
    (second,) = send(title="another")
    assert second.state == AlertState.PENDING
    assert len(telegram.statuses) == 1  # a disabled channel is not hammered


def test_a_group_upgraded_to_a_supergroup_names_the_new_chat_id(
    channel: Channel, telegram: TelegramServer
) -> None:
    telegram.then("migrate", -1009876543210)
    send()
    channel.refresh_from_db()
    assert "set the chat id to -1009876543210" in channel.disabled_reason


def test_server_errors_are_retried(channel: Channel, telegram: TelegramServer) -> None:
    telegram.then("status", 502, times=2)
    (alert,) = send()
    assert alert.state == AlertState.SENT
    assert list(alert.delivery_attempts.values_list("status_code", flat=True)) == [502, 502, 200]


def test_overflow_beyond_the_rate_limit_is_folded_into_one_digest(
    channel: Channel, telegram: TelegramServer
) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=2)
    for n in range(5):
        send("info", now=T + dt.timedelta(seconds=n), title=f"alert {n}")
    assert len(telegram.messages) == 2
    deliver_pending(now=T + dt.timedelta(seconds=61))
    assert len(telegram.messages) == 3
    digest = telegram.texts()[-1]
    assert digest.startswith("🔔 3 alerts held back by the rate limit")
    assert all(f"alert {n}" in digest for n in (2, 3, 4))
    assert Alert.objects.filter(state=AlertState.FOLDED).count() == 3


def test_the_bot_token_never_reaches_logs_attempts_alert_text_or_pages(
    channel: Channel, telegram: TelegramServer, caplog: pytest.LogCaptureFixture, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    telegram.then("status", 500, times=3)
    telegram.then("status", 401)
    send(message=f"the bot printed {TOKEN}")
    send()
    key = TOKEN.split(":")[1]
    texts = [caplog.text, *all_text()]
    for url in ("/admin/alerts/channel/", f"/admin/alerts/channel/{channel.pk}/change/"):
        texts.append(admin_client.get(url).content.decode())
    assert not [t for t in texts if key in t]
    assert "/bot123…/sendMessage" in caplog.text or "sendMessage" in caplog.text
    assert "123…" in Alert.objects.order_by("pk").first().message


def test_the_default_channel_comes_from_the_environment(telegram: TelegramServer, fast_http: Any) -> None:
    fast_http.TELEGRAM_BOT_TOKEN, fast_http.TELEGRAM_CHAT_ID = TOKEN, CHAT_ID
    fast_http.TELEGRAM_API_URL = telegram.api_url
    (alert,) = send()
    assert alert.channel.name == "telegram" and alert.channel.uses_environment
    assert alert.state == AlertState.SENT and len(telegram.messages) == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("TELEGRAM_CHAT_ID", "general"),
        ("TELEGRAM_API_URL", "api.telegram.org"),
    ],
)
def test_a_malformed_variable_stops_start_up_naming_it(tmp_path: Any, variable: str, value: str) -> None:
    result = manage(site_env(tmp_path, **{variable: value}), "check", check=False)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert variable in line and "Traceback" not in result.stderr


def test_a_429_with_only_a_retry_after_header_waits_what_the_header_says(
    channel: Channel, telegram: TelegramServer
) -> None:
    telegram.then("429-header", 1)
    (alert,) = send()
    assert alert.state == AlertState.SENT and telegram.statuses == [429, 200]
    (gap,) = telegram.gaps()
    # the header's second, not the 0.5 s backoff nor both (1.5 s); 0.4 s of room for load
    assert 1.0 <= gap < 1.4
    telegram.then("429-header", 30)
    (later,) = send(title="later")
    assert later.state == AlertState.PENDING and len(telegram.messages) == 1
    attempt = later.delivery_attempts.get()
    assert (later.next_attempt_at - attempt.at).total_seconds() == 30
