"""The Discord transport against a loopback webhook that enforces Discord's documented limits."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests

from alerts.delivery import deliver_pending
from alerts.evaluation import raise_alert
from alerts.models import Alert, AlertState, Channel, DeliveryAttempt
from alerts.transports.discord import STYLE, embed_length, fit_embed
from tests.alert_fixtures import *  # noqa: F403  (the discord, channel and fast_http fixtures)
from tests.discord_server import WEBHOOK_TOKEN, DiscordServer, limit_errors

pytestmark = pytest.mark.django_db


def send(level: str = "warning", **overrides: Any) -> Alert:
    values: dict[str, Any] = {"source": "test", "level": level, "title": "Daily loss", "message": "P&L -600"}
    values.update(overrides)
    (alert,) = raise_alert(**values)
    deliver_pending()
    alert.refresh_from_db()
    return alert


def test_the_loopback_webhook_refuses_what_discord_refuses(discord: DiscordServer) -> None:
    too_long = {"embeds": [{"title": "x" * 257}]}
    assert requests.post(discord.url, json=too_long, timeout=5).status_code == 400
    many_fields = {"embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}] * 26}]}
    assert requests.post(discord.url, json=many_fields, timeout=5).status_code == 400
    total = {
        "embeds": [
            {"title": "t", "description": "d" * 4000, "fields": [{"name": "n", "value": "v" * 1000}] * 3}
        ]
    }
    assert requests.post(discord.url, json=total, timeout=5).status_code == 400
    assert requests.post(discord.url, json={"content": "ok"}, timeout=5).status_code == 204
    assert len(discord.messages) == 1


@pytest.mark.parametrize("level", ["info", "warning", "critical"])
def test_each_level_has_its_emoji_and_colour(channel: Channel, discord: DiscordServer, level: str) -> None:
    alert = send(level, fields=[("Bot", "alpha"), ("P&L", "-600")])
    assert alert.state == AlertState.SENT and alert.sent_at is not None
    (message,) = [m.payload for m in discord.messages]
    (embed,) = message["embeds"]
    emoji, colour = STYLE[level]
    assert embed["title"] == f"{emoji} Daily loss"
    assert embed["color"] == colour
    assert embed["description"] == "P&L -600"
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [("Bot", "alpha"), ("P&L", "-600")]
    assert embed["timestamp"].startswith(alert.created_at.isoformat()[:19])
    assert message["allowed_mentions"] == {"parse": []}


def test_an_oversized_alert_is_cut_to_the_limits_and_accepted(
    channel: Channel, discord: DiscordServer
) -> None:
    fields = [(f"field {i} " + "n" * 300, "v" * 2000) for i in range(40)]
    alert = send(title="🚨" * 300, message="m" * 10_000, fields=fields)
    assert alert.state == AlertState.SENT
    assert 400 not in discord.statuses
    (embed,) = discord.embeds()
    assert limit_errors({"embeds": [embed]}) == []
    assert embed["title"].endswith("…")
    assert embed_length(embed) <= 6000
    # The first fields survive; the description gave way first.
    assert embed["fields"][0]["name"].startswith("field 0")


def test_fit_embed_keeps_a_small_embed_as_it_is() -> None:
    embed = {"title": "t", "description": "d", "fields": [{"name": "n", "value": "v", "inline": True}]}
    assert fit_embed(embed) == embed


def test_fit_embed_counts_emoji_as_discord_does() -> None:
    # 🚨 is two UTF-16 code units: 200 of them are 400 units, over the title limit.
    fitted = fit_embed({"title": "🚨" * 200})
    assert limit_errors({"embeds": [fitted]}) == []
    assert len(fitted["title"].encode("utf-16-le")) // 2 <= 256


def test_a_429_is_waited_out_as_the_json_retry_after_says(channel: Channel, discord: DiscordServer) -> None:
    discord.then("429", 0.2)
    alert = send()
    assert alert.state == AlertState.SENT
    assert discord.statuses == [429, 200]
    attempts = list(alert.delivery_attempts.values_list("status_code", flat=True))
    assert attempts == [429, 200]


def test_a_429_with_only_the_header_is_honoured(channel: Channel, discord: DiscordServer) -> None:
    discord.then("header429", 0.1)
    assert send().state == AlertState.SENT
    assert discord.statuses == [429, 200]


def test_a_long_retry_after_is_left_to_a_later_run(channel: Channel, discord: DiscordServer) -> None:
    discord.then("429", 30)
    alert = send()
    assert alert.state == AlertState.PENDING
    assert alert.next_attempt_at is not None
    wait = (alert.next_attempt_at - alert.delivery_attempts.get().at).total_seconds()
    assert 29 <= wait <= 31
    assert discord.messages == []


def test_a_header_only_429_with_a_long_retry_after_leaves_the_alert_waiting_that_long(
    channel: Channel, discord: DiscordServer
) -> None:
    discord.then("header429", 30)  # no JSON body: the Retry-After header alone says 30 s
    alert = send()
    assert alert.state == AlertState.PENDING and discord.messages == []
    assert alert.next_attempt_at is not None
    wait = (alert.next_attempt_at - alert.delivery_attempts.get().at).total_seconds()
    assert 29.9 <= wait <= 30.1
    assert "retry after 30.0 s" in alert.last_error


def test_server_errors_are_retried_with_backoff(channel: Channel, discord: DiscordServer) -> None:
    discord.then("status", 500, times=2)
    alert = send()
    assert alert.state == AlertState.SENT
    assert list(alert.delivery_attempts.values_list("status_code", flat=True)) == [500, 500, 200]


def test_a_hanging_discord_times_out_and_the_alert_waits_for_the_next_run(
    channel: Channel, discord: DiscordServer
) -> None:
    discord.then("hang", 5, times=3)
    alert = send()
    assert alert.state == AlertState.PENDING and alert.attempts == 1
    errors = list(alert.delivery_attempts.values_list("error", flat=True))
    assert errors == [f"no answer from {discord.host} within 1 s"] * 3
    Alert.objects.filter(pk=alert.pk).update(next_attempt_at=None)
    deliver_pending()
    alert.refresh_from_db()
    assert alert.state == AlertState.SENT
    assert len(discord.messages) == 1


@pytest.mark.parametrize("status", [401, 404])
def test_a_refused_webhook_disables_the_channel_and_keeps_the_alert(
    channel: Channel, discord: DiscordServer, status: int
) -> None:
    discord.then("status", status)
    alert = send()
    channel.refresh_from_db()
    assert channel.disabled_reason.startswith(f"Discord refused the webhook (HTTP {status}")
    assert alert.state == AlertState.PENDING  # kept, not lost: sent once the channel is fixed
    second = send(title="another")
    assert second.state == AlertState.PENDING
    assert discord.statuses == [status]  # a disabled channel is not hammered
    Channel.objects.filter(pk=channel.pk).update(disabled_reason="")
    deliver_pending()
    assert sorted(discord.titles()) == ["⚠️ Daily loss", "⚠️ another"]


def test_a_wrong_token_is_a_401_from_the_loopback(channel: Channel, discord: DiscordServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(
        config={"webhook_url": discord.url.replace(WEBHOOK_TOKEN, "wrong")}
    )
    send()
    channel.refresh_from_db()
    assert "HTTP 401" in channel.disabled_reason


def test_discord_down_is_survived(channel: Channel, discord: DiscordServer) -> None:
    url, host = discord.url, discord.host
    discord.stop()
    Channel.objects.filter(pk=channel.pk).update(config={"webhook_url": url})
    alert = send()
    assert alert.state == AlertState.PENDING
    assert set(alert.delivery_attempts.values_list("error", flat=True)) == {
        f"cannot reach {host}: connection refused"
    }


def test_no_webhook_secret_reaches_logs_attempts_or_alert_text(
    channel: Channel, discord: DiscordServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    discord.then("status", 500, times=3)
    discord.then("status", 404)
    send(message=f"the bot printed {discord.url} and {WEBHOOK_TOKEN}")
    send()
    texts = [caplog.text]
    texts += [
        " ".join(map(str, row))
        for row in Alert.objects.values_list("title", "message", "fields", "last_error")
    ]
    texts += list(DeliveryAttempt.objects.values_list("error", flat=True))
    texts += list(Channel.objects.values_list("disabled_reason", flat=True))
    assert not [t for t in texts if WEBHOOK_TOKEN in t or discord.url in t]
    assert "tOk…" in Alert.objects.order_by("pk").first().message
