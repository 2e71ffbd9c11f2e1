"""The cockpit at its boundaries: each bot's state against the bot-stopped rule, the grace it judges
by, the halts it lists at the market's midnight, and its 30-trading-day window.

Every moment is given in UTC, as the site's clock gives it: a rule that took the date or the
hour from UTC instead of the market's would fail here.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.test import Client

from alerts.evaluation import evaluate_schedule
from alerts.models import AlertRule, TradingHalt
from monitorsite import cockpit
from tests.conftest import stored_trade
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
THURSDAY = dt.date(2026, 1, 15)  # a trading day; Friday the 16th is one too
SECOND = dt.timedelta(seconds=1)


def utc(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """``hour:minute`` New York time on ``day``, as the UTC moment the site's clock reads."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY).astimezone(dt.UTC)


def heartbeat(bot: Bot, moment: dt.datetime) -> None:
    Bot.objects.filter(pk=bot.pk).update(last_heartbeat_at=moment)


def state_of(bot: Bot, now: dt.datetime) -> str:
    """The state word the cockpit shows for ``bot`` at ``now``."""
    (card,) = [card for card in cockpit.build(now=now).bots if card.bot.pk == bot.pk]
    return card.state.word


def bot_stopped_rules_only() -> None:
    AlertRule.objects.exclude(kind="bot_stopped").update(enabled=False)


# --- a heartbeat at the grace ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("silent_for", "during_market_hours", "state"),
    [
        (dt.timedelta(minutes=10) - SECOND, True, "running"),
        (dt.timedelta(minutes=10), True, "running"),  # exactly the grace: still running
        (dt.timedelta(minutes=10) + SECOND, True, "stopped"),
        (dt.timedelta(minutes=10), False, "running"),
        (dt.timedelta(minutes=10) + SECOND, False, "stale"),  # after the close: not called stopped
    ],
)
def test_a_heartbeat_exactly_the_grace_ago_is_running_and_one_second_more_is_not(
    bot: Bot, silent_for: dt.timedelta, during_market_hours: bool, state: str
) -> None:
    now = utc(THURSDAY, 11) if during_market_hours else utc(THURSDAY, 17, 30)
    heartbeat(bot, now - silent_for)
    assert state_of(bot, now) == state


def assert_cockpit_and_rule_agree(bot: Bot, walk: list[tuple[dt.datetime, str]]) -> None:
    """At each instant the cockpit shows the expected state, and the rule alerts just when it says stopped."""
    for moment, expected in walk:
        with transaction.atomic():  # each instant judged afresh: no breach carried from the last one
            alerted = any(
                alert.source == "bot_stopped" and alert.bot_id == bot.pk
                for alert in evaluate_schedule(now=moment)
            )
            shown = state_of(bot, moment)
            transaction.set_rollback(True)
        assert (shown, alerted) == (expected, expected == "stopped"), moment


def test_the_cockpit_and_the_bot_stopped_rule_agree_at_every_instant_around_the_open_plus_grace(
    bot: Bot,
) -> None:
    """Silent since before the open: both count the silence from the open bell, not from the heartbeat."""
    bot_stopped_rules_only()  # the default bot-stopped rule: 10 minutes
    opens = utc(THURSDAY, 9, 30)
    grace = dt.timedelta(minutes=10)
    heartbeat(bot, utc(dt.date(2026, 1, 14), 16, 0))  # last seen at yesterday's close
    assert_cockpit_and_rule_agree(
        bot,
        [
            (utc(THURSDAY, 8, 0), "stale"),  # before the open: silence is expected
            (opens - SECOND, "stale"),
            (opens, "stale"),  # the bell itself is not a breach
            (opens + grace - SECOND, "stale"),
            (opens + grace, "stale"),  # silent exactly the grace since the open: not yet
            (opens + grace + SECOND, "stopped"),
        ],
    )


def test_the_cockpit_and_the_bot_stopped_rule_agree_at_the_grace_and_at_the_close(bot: Bot) -> None:
    bot_stopped_rules_only()
    grace = dt.timedelta(minutes=10)
    heartbeat(bot, utc(THURSDAY, 11))
    assert_cockpit_and_rule_agree(
        bot,
        [
            (utc(THURSDAY, 11) + grace - SECOND, "running"),
            (utc(THURSDAY, 11) + grace, "running"),
            (utc(THURSDAY, 11) + grace + SECOND, "stopped"),
        ],
    )
    closes = utc(THURSDAY, 16)
    heartbeat(bot, closes - grace - SECOND)
    # The closing bell is still market hours; a second later silence is expected.
    assert_cockpit_and_rule_agree(bot, [(closes, "stopped"), (closes + SECOND, "stale")])


def test_a_bots_own_bot_stopped_rule_sets_its_grace_before_the_general_one(bot: Bot) -> None:
    general = AlertRule.objects.get(name="bot-stopped")  # every bot, 10 minutes
    assert general.bot_id is None and general.threshold == 10
    patient = Bot.objects.create(name="patient")
    hasty = Bot.objects.create(name="hasty")
    AlertRule.objects.create(name="patient-stopped", kind="bot_stopped", threshold=30, bot=patient)
    AlertRule.objects.create(name="hasty-stopped", kind="bot_stopped", threshold=5, bot=hasty)
    # A disabled rule of its own sets nothing: alpha keeps the general grace.
    AlertRule.objects.create(name="alpha-stopped", kind="bot_stopped", threshold=60, bot=bot, enabled=False)
    now = utc(THURSDAY, 11)
    cards = {card.bot.name: card.state for card in cockpit.build(now=now).bots}
    assert {name: state.grace for name, state in cards.items()} == {
        "alpha": dt.timedelta(minutes=10),
        "hasty": dt.timedelta(minutes=5),
        "patient": dt.timedelta(minutes=30),
    }
    for each in (bot, patient, hasty):
        heartbeat(each, now - dt.timedelta(minutes=20))
    assert {name: state_of(each, now) for name, each in [("alpha", bot), ("patient", patient)]} == {
        "alpha": "stopped",
        "patient": "running",  # 20 minutes silent is within its own 30
    }
    heartbeat(hasty, now - dt.timedelta(minutes=5) - SECOND)
    assert state_of(hasty, now) == "stopped"  # past its own 5, well within the general 10


def test_a_bots_own_bot_stopped_rule_replaces_the_general_one_in_the_alerts_too(bot: Bot) -> None:
    bot_stopped_rules_only()
    patient = Bot.objects.create(name="patient")
    AlertRule.objects.create(name="patient-stopped", kind="bot_stopped", threshold=30, bot=patient)
    now = utc(THURSDAY, 11)
    for each in (bot, patient):
        heartbeat(each, now - dt.timedelta(minutes=20))

    stopped = {(alert.bot.name, alert.rule.name) for alert in evaluate_schedule(now=now)}

    # The general rule (10 minutes) alerts for alpha alone: patient is judged by its own 30.
    assert stopped == {("alpha", "bot-stopped")}
    assert state_of(patient, now) == "running"
    later = now + dt.timedelta(minutes=11)
    assert {(a.bot.name, a.rule.name) for a in evaluate_schedule(now=later)} == {
        ("patient", "patient-stopped")
    }
    assert state_of(patient, later) == "stopped"


def test_of_two_bot_stopped_rules_for_a_bot_the_shorter_grace_calls_it_stopped(bot: Bot) -> None:
    bot_stopped_rules_only()
    AlertRule.objects.create(name="alpha-warn", kind="bot_stopped", threshold=15, bot=bot)
    AlertRule.objects.create(name="alpha-page", kind="bot_stopped", threshold=45, bot=bot, level="critical")
    now = utc(THURSDAY, 11)
    heartbeat(bot, now - dt.timedelta(minutes=15))
    assert state_of(bot, now) == "running" and evaluate_schedule(now=now) == []
    heartbeat(bot, now - dt.timedelta(minutes=15) - SECOND)
    assert state_of(bot, now) == "stopped"
    assert [alert.rule.name for alert in evaluate_schedule(now=now)] == ["alpha-warn"]


def test_without_an_enabled_bot_stopped_rule_the_grace_is_ten_minutes(bot: Bot) -> None:
    AlertRule.objects.filter(kind="bot_stopped").update(enabled=False)
    now = utc(THURSDAY, 11)
    heartbeat(bot, now - dt.timedelta(minutes=10))
    assert state_of(bot, now) == "running"
    heartbeat(bot, now - dt.timedelta(minutes=10) - SECOND)
    assert state_of(bot, now) == "stopped"
    assert cockpit.build(now=now).bots[0].state.grace == dt.timedelta(minutes=10)


# --- halts at the market's midnight ------------------------------------------------------------


def test_a_halt_is_listed_until_the_markets_midnight_not_utcs(bot: Bot) -> None:
    friday = dt.date(2026, 1, 16)
    halt = TradingHalt.objects.create(
        bot=bot, trading_day=THURSDAY, ends_on=friday, reason="max daily loss", created_at=utc(THURSDAY, 11)
    )

    def listed(now: dt.datetime) -> list[int]:
        return [h.pk for h in cockpit.build(now=now).halts]

    evening = utc(THURSDAY, 20, 30)
    assert evening.date() == friday  # 01:30 UTC: UTC's date is already the day the halt ends
    assert listed(utc(THURSDAY, 11)) == [halt.pk]  # the day it was raised
    assert listed(evening) == [halt.pk]
    assert listed(utc(friday, 0) - SECOND) == [halt.pk]  # 23:59:59 New York
    assert listed(utc(friday, 0)) == []  # the market's midnight: Friday trades again


def test_a_halt_over_a_long_weekend_is_listed_until_the_next_trading_days_midnight(bot: Bot) -> None:
    friday, holiday, tuesday = dt.date(2026, 1, 16), dt.date(2026, 1, 19), dt.date(2026, 1, 20)
    TradingHalt.objects.create(
        bot=bot, trading_day=friday, ends_on=tuesday, reason="max daily loss", created_at=utc(friday, 11)
    )
    # Martin Luther King Jr. Day, 21:00 New York: Tuesday already in UTC, the halt still in force.
    assert [h.bot.name for h in cockpit.build(now=utc(holiday, 21)).halts] == ["alpha"]
    assert cockpit.build(now=utc(tuesday, 0)).halts == []


def test_the_cockpit_page_shows_the_state_and_the_halt_on_the_markets_evening(
    admin_client: Client, bot: Bot
) -> None:
    friday = dt.date(2026, 1, 16)
    TradingHalt.objects.create(
        bot=bot,
        trading_day=THURSDAY,
        ends_on=friday,
        reason="max daily loss: -1,200",
        created_at=utc(THURSDAY, 11),
    )
    evening = utc(THURSDAY, 20, 30)
    heartbeat(bot, evening - dt.timedelta(minutes=10))
    with mock.patch("django.utils.timezone.now", return_value=evening):
        page = admin_client.get("/admin/").content.decode()
    assert "Trading halted: alpha" in page and "max daily loss: -1,200" in page
    # The card's badge says halted; its heartbeat state stands beside the heartbeat.
    assert '<span class="bot-state">halted</span>' in page
    assert '<span class="heartbeat-state">running</span>' in page
    assert "today, Thu 2026-01-15" in page
    with mock.patch("django.utils.timezone.now", return_value=evening + SECOND):
        page = admin_client.get("/admin/").content.decode()
    assert '<span class="heartbeat-state">stale</span>' in page  # past the grace, after the close


# --- the 30-trading-day window -----------------------------------------------------------------


def test_the_cockpits_window_is_the_last_30_trading_days_in_market_time(bot: Bot) -> None:
    """Thursday 20:30 New York (Friday in UTC): the window ends on Thursday and reaches back 30
    sessions, over weekends, Christmas and New Year's Day, to Wednesday December 3rd."""
    oldest, before = dt.date(2025, 12, 3), dt.date(2025, 12, 2)
    fills = [(before, "-7"), (oldest, "11"), (THURSDAY, "5")]
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(n, pnl=Decimal(pnl), executed_at=dt.datetime(d.year, d.month, d.day, 15, tzinfo=NY))
            for n, (d, pnl) in enumerate(fills)
        ],
    )
    (card,) = cockpit.build(now=utc(THURSDAY, 20, 30)).bots
    assert (card.period.start, card.period.end) == (oldest, THURSDAY)
    assert [(d.date, d.pnl) for d in card.period.days] == [(oldest, 11), (THURSDAY, 5)]
    assert card.period.overall.total_pnl == Decimal("16")
    assert (card.today.date, card.today.total_pnl) == (THURSDAY, Decimal("5"))
