"""The cockpit's latest alerts: each alert once with its channels' states, and the alerts of
halts that were resumed or have ended below the live ones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from alerts.models import Alert, AlertState, Channel, TradingHalt
from alerts.rules.trading_day import day_subject
from alerts.status import latest_alerts
from trades.models import Bot

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
THURSDAY = dt.date(2026, 1, 15)  # a trading day, between the trading days Wednesday and Friday
NOW = dt.datetime(2026, 1, 15, 11, 0, tzinfo=NY)


def raised(title: str, at: dt.datetime, states: dict[Channel, str], **fields: object) -> list[Alert]:
    """One alert as ``raise_alert`` writes it: a row per channel, alike but for the channel."""
    values = {"source": "daily_loss", "level": "warning", "title": title, "created_at": at, **fields}
    return [Alert.objects.create(channel=channel, state=state, **values) for channel, state in states.items()]


@pytest.fixture
def channels() -> tuple[Channel, Channel]:
    Channel.objects.all().delete()
    return Channel.objects.create(name="desk"), Channel.objects.create(name="phone")


def test_an_alert_to_two_channels_is_listed_once_with_each_channels_state(
    channels: tuple[Channel, Channel],
) -> None:
    desk, phone = channels
    raised("Loss", NOW, {phone: AlertState.FAILED, desk: AlertState.SENT})
    Alert.objects.create(
        source="daily_loss", level="warning", title="Muted", created_at=NOW, state=AlertState.SILENCED
    )
    silenced, loss = latest_alerts(NOW)  # newest first: the silenced row came last
    assert loss.alert.title == "Loss"
    assert [(d.state, d.words) for d in loss.deliveries] == [
        ("sent", "sent to desk"),
        ("failed", "failed to phone"),
    ]
    assert [d.words for d in silenced.deliveries] == ["silenced"]


def test_two_alerts_raised_at_the_same_moment_stay_two(channels: tuple[Channel, Channel]) -> None:
    desk, phone = channels
    raised("Loss", NOW, {desk: AlertState.SENT, phone: AlertState.SENT})
    raised("Frequency", NOW, {desk: AlertState.SENT, phone: AlertState.PENDING}, source="trade_frequency")
    assert sorted(g.alert.title for g in latest_alerts(NOW)) == ["Frequency", "Loss"]


def test_a_pending_delivery_says_whether_it_is_retrying_or_held(channels: tuple[Channel, Channel]) -> None:
    desk, phone = channels
    (first, second) = raised("Loss", NOW, {desk: AlertState.PENDING, phone: AlertState.PENDING})
    Alert.objects.filter(pk=first.pk).update(attempts=2, last_error="cannot reach …")
    Alert.objects.filter(pk=second.pk).update(held=True)
    (loss,) = latest_alerts(NOW)
    assert [d.words for d in loss.deliveries] == [
        "pending to desk (tried 2×, retrying)",
        "pending to phone (held by the rate limit)",
    ]


def test_the_limit_counts_alerts_not_rows_and_each_listed_alert_is_whole(
    channels: tuple[Channel, Channel],
) -> None:
    desk, phone = channels
    for n in range(3):  # the oldest first; each to both channels
        raised(f"alert {n}", NOW + dt.timedelta(minutes=n), {desk: AlertState.SENT, phone: AlertState.FAILED})
    latest = latest_alerts(NOW, limit=2)
    assert [g.alert.title for g in latest] == ["alert 2", "alert 1"]
    assert all(len(g.deliveries) == 2 for g in latest)
    assert [g.alert.title for g in latest_alerts(NOW, limit=3)] == ["alert 2", "alert 1", "alert 0"]


def halt_alert(bot: Bot, day: dt.date, at: dt.datetime, channel: Channel) -> Alert:
    (alert,) = raised(
        f"{bot.name}: realized P&L -1,200.00 on {day}",
        at,
        {channel: AlertState.SENT},
        source="max_daily_loss",
        level="critical",
        subject=day_subject(bot.pk, day),
        bot=bot,
    )
    return alert


@pytest.mark.parametrize(
    ("ends_on", "resumed", "resolved"),
    [
        (THURSDAY + dt.timedelta(days=1), False, False),  # in force until Friday: live
        (THURSDAY, False, True),  # ended this morning (the market's today): resolved
        (THURSDAY + dt.timedelta(days=1), True, True),  # resumed by an admin: resolved
    ],
)
def test_a_resolved_halts_critical_alert_falls_below_the_live_ones(
    channels: tuple[Channel, Channel], ends_on: dt.date, resumed: bool, resolved: bool
) -> None:
    desk, _ = channels
    bot = Bot.objects.create(name="alpha")
    day = ends_on - dt.timedelta(days=1)
    TradingHalt.objects.create(
        bot=bot,
        trading_day=day,
        ends_on=ends_on,
        reason="max daily loss",
        resumed_at=NOW - dt.timedelta(minutes=30) if resumed else None,
    )
    halt_alert(bot, day, NOW - dt.timedelta(hours=1), desk)
    raised("newer warning", NOW - dt.timedelta(minutes=10), {desk: AlertState.SENT})
    latest = latest_alerts(NOW)
    titles = [g.alert.title for g in latest]
    if resolved:
        assert titles == ["newer warning", f"alpha: realized P&L -1,200.00 on {day}"]
        assert latest[1].resolved
    else:
        assert titles == [f"alpha: realized P&L -1,200.00 on {day}", "newer warning"]  # critical first
        assert not latest[0].resolved


def test_a_halt_at_the_markets_midnight_not_utcs(channels: tuple[Channel, Channel]) -> None:
    """At 20:00 New York it is already Friday in UTC; the halt ending Friday is still live."""
    desk, _ = channels
    bot = Bot.objects.create(name="alpha")
    TradingHalt.objects.create(
        bot=bot, trading_day=THURSDAY, ends_on=THURSDAY + dt.timedelta(days=1), reason="max daily loss"
    )
    evening = dt.datetime(2026, 1, 15, 20, 0, tzinfo=NY)
    halt_alert(bot, THURSDAY, evening - dt.timedelta(hours=1), desk)
    raised("newer warning", evening - dt.timedelta(minutes=1), {desk: AlertState.SENT})
    assert [g.resolved for g in latest_alerts(evening)] == [False, False]


def test_the_cockpit_shows_each_alert_once_with_its_channels(
    admin_client: Client, channels: tuple[Channel, Channel]
) -> None:
    desk, phone = channels
    (_, last) = raised(
        "Loss of the day", dt.datetime.now(dt.UTC), {desk: AlertState.SENT, phone: AlertState.FAILED}
    )
    page = admin_client.get("/admin/").content.decode()
    assert page.count("Loss of the day") == 1
    assert f"/admin/alerts/alert/{last.pk}/change/" in page  # the newest row stands for the alert
    assert '<span class="delivery delivery-sent">sent to desk</span>' in page
    assert '<span class="delivery delivery-failed">failed to phone</span>' in page
