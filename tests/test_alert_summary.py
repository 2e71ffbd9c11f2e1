"""The daily summary: once per trading day at the time set in the admin, rendered from the summary value."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from alerts.models import Alert, AlertState, Channel, Silence, SummarySchedule
from alerts.summary import send_if_due
from tests.alert_fixtures import *  # noqa: F403  (the discord, channel and fast_http fixtures)
from tests.conftest import stored_trade
from tests.discord_server import DiscordServer
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
DAY = dt.date(2026, 1, 15)


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


@pytest.fixture
def day_of_trades(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(1, symbol="AAPL", strategy="momentum", pnl=Decimal("150.5"), executed_at=at(9, 45)),
            stored_trade(2, symbol="TSLA", strategy="meanrev", pnl=Decimal("-40.25"), executed_at=at(11)),
            stored_trade(3, symbol="MSFT", strategy="momentum", pnl=None, executed_at=at(12)),
        ],
    )


def test_the_summary_goes_out_once_at_the_configured_time(
    bot: Bot, day_of_trades: None, channel: Channel, discord: DiscordServer
) -> None:
    assert send_if_due(now=at(16, 4)) == []
    (alert,) = send_if_due(now=at(16, 5))
    assert Alert.objects.get(pk=alert.pk).state == AlertState.SENT
    assert send_if_due(now=at(16, 6)) == []
    assert send_if_due(now=at(23, 59)) == []
    (embed,) = discord.embeds()
    assert embed["title"] == "🔔 Daily summary: alpha, Thursday 2026-01-15"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields == {
        "Trades": "3",
        "Closed": "2",
        "Wins / losses": "1 / 1",
        "Win rate": "50.0%",
        "Total P&L": "110.25",
        "Best trade": "AAPL 150.50 (ord-1)",
        "Worst trade": "TSLA -40.25 (ord-2)",
    }
    lines = embed["description"].splitlines()
    assert "meanrev: 1 trades, P&L -40.25, win rate 0.0%" in lines
    assert "momentum: 2 trades, P&L 150.50, win rate 100.0%" in lines
    assert SummarySchedule.current().last_sent_day == DAY


def test_the_next_trading_day_gets_its_own_summary(bot: Bot) -> None:
    assert len(send_if_due(now=at(16, 5))) == 1
    assert len(send_if_due(now=at(16, 5, day=dt.date(2026, 1, 16)))) == 1


@pytest.mark.parametrize(
    "day",
    [dt.date(2026, 11, 26), dt.date(2026, 4, 3), dt.date(2026, 1, 17), dt.date(2026, 1, 18)],
    ids=["thanksgiving", "good-friday", "saturday", "sunday"],
)
def test_no_summary_on_days_the_market_is_closed(bot: Bot, day: dt.date) -> None:
    assert send_if_due(now=at(16, 5, day=day)) == []
    assert SummarySchedule.current().last_sent_day is None


def test_a_cluster_that_was_down_at_the_time_catches_up_the_same_day(bot: Bot) -> None:
    assert len(send_if_due(now=at(19, 40))) == 1


def test_the_time_and_switch_come_from_the_admin_row(bot: Bot) -> None:
    SummarySchedule.objects.update(send_at=dt.time(17, 30))
    assert send_if_due(now=at(16, 5)) == []
    assert len(send_if_due(now=at(17, 30))) == 1
    SummarySchedule.objects.update(enabled=False, last_sent_day=None)
    assert send_if_due(now=at(17, 31)) == []


def test_the_send_time_is_market_time_not_utc(bot: Bot) -> None:
    # 16:05 UTC is 11:05 in New York: too early.
    assert send_if_due(now=dt.datetime(2026, 1, 15, 16, 5, tzinfo=dt.UTC)) == []


def test_two_workers_at_the_same_minute_send_one_summary(bot: Bot) -> None:
    first, second = send_if_due(now=at(16, 5)), send_if_due(now=at(16, 5))
    assert len(first) + len(second) == 1


def test_two_workers_racing_for_the_claim_in_the_same_minute_send_one_summary(bot: Bot) -> None:
    # Both read the schedule before either claims it: only the conditional UPDATE decides.
    stale = SummarySchedule.current()
    first = send_if_due(now=at(16, 5))
    with mock.patch.object(SummarySchedule, "current", return_value=stale):
        assert stale.last_sent_day is None
        second = send_if_due(now=at(16, 5) + dt.timedelta(seconds=30))
    assert (len(first), len(second)) == (1, 0)
    assert Alert.objects.filter(source="daily_summary").count() == 1


def test_one_message_per_active_bot(bot: Bot) -> None:
    Bot.objects.create(name="beta")
    Bot.objects.create(name="retired", is_active=False)
    titles = sorted(a.title for a in send_if_due(now=at(16, 5)))
    assert titles == ["Daily summary: alpha, Thursday 2026-01-15", "Daily summary: beta, Thursday 2026-01-15"]


def test_a_silence_does_not_hold_back_the_summary(bot: Bot, channel: Channel, discord: DiscordServer) -> None:
    Silence.objects.create(rule=None, until=at(23))
    send_if_due(now=at(16, 5))
    assert len(discord.messages) == 1


def test_daily_summary_send_prints_and_sends(
    bot: Bot, day_of_trades: None, channel: Channel, discord: DiscordServer
) -> None:
    out = StringIO()
    call_command("daily_summary", "--date", "2026-01-15", "--send", stdout=out)
    assert "Daily summary for Thursday 2026-01-15" in out.getvalue()
    assert "Sent 1 summary message(s)." in out.getvalue()
    assert discord.titles() == ["🔔 Daily summary: alpha, Thursday 2026-01-15"]


def test_daily_summary_send_without_a_webhook_says_so(bot: Bot, settings: Any) -> None:
    settings.DISCORD_WEBHOOK_URL = None
    out = StringIO()
    call_command("daily_summary", "--date", "2026-01-15", "--send", "--bot", "alpha", stdout=out)
    assert "not sent: no channel is configured" in out.getvalue()


def test_send_test_alert_reaches_every_enabled_channel(channel: Channel, discord: DiscordServer) -> None:
    Channel.objects.create(name="second", config={"webhook_url": discord.url}, min_level="critical")
    Channel.objects.create(name="off", config={"webhook_url": discord.url}, enabled=False)
    out = StringIO()
    call_command("send_test_alert", "--level", "warning", stdout=out)
    shown = Channel.objects.get(name="second").destination
    assert out.getvalue().splitlines() == [f"discord: sent to {shown}", f"second: sent to {shown}"]
    assert discord.titles() == ["⚠️ Test alert (warning)"] * 2


def test_send_test_alert_fails_with_one_line_when_discord_refuses(
    channel: Channel, discord: DiscordServer
) -> None:
    discord.then("status", 404)
    out = StringIO()
    with pytest.raises(CommandError, match="reached no channel"):
        call_command("send_test_alert", stdout=out)
    assert out.getvalue().startswith(
        f"discord: failed: Discord refused the webhook (HTTP 404 from {discord.host}"
    )
