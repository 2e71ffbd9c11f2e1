"""Rule evaluation: each rule kind, dedup and cooldown, recovery, silences, the calendar, halts."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.evaluation import alert_for_event, evaluate_schedule, evaluate_trades
from alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    PendingEvaluation,
    PendingStateEvaluation,
    Silence,
    TradingHalt,
    any_rule_judged_on,
)
from alerts.tasks import evaluate_trades as evaluate_trades_task
from tests.conftest import make_trade, stored_trade
from tests.queued import clear_queue, queued
from trades.models import Bot, BotEvent, Trade
from trades.signals import site_alert

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
DAY = dt.date(2026, 1, 15)  # a Thursday, a trading day


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


def record(bot: Bot, *trades: dict[str, Any]) -> list[int]:
    return Trade.objects.record_batch(bot, list(trades)).ids


def losses(bot: Bot, *amounts: str, start: int = 1, when: dt.datetime | None = None) -> list[int]:
    return record(
        bot,
        *[
            stored_trade(start + i, side="SELL", pnl=Decimal(amount), executed_at=when or at(11, i))
            for i, amount in enumerate(amounts)
        ],
    )


def alerts(source: str | None = None) -> list[Alert]:
    qs = Alert.objects.order_by("pk")
    return list(qs.filter(source=source) if source else qs)


def only(*names: str) -> None:
    """Switch every default rule off except ``names`` (on), so each test sees one rule at work."""
    AlertRule.objects.exclude(name__in=names).update(enabled=False)
    AlertRule.objects.filter(name__in=names).update(enabled=True)


# --- daily loss ------------------------------------------------------------------------


def test_a_daily_loss_past_the_warning_threshold_alerts_once(bot: Bot) -> None:
    only("daily-loss-warning")
    evaluate_trades(bot.pk, losses(bot, "-300"), now=at(11, 5))
    assert alerts() == []
    evaluate_trades(bot.pk, losses(bot, "-250", start=10), now=at(11, 10))
    (alert,) = alerts()
    assert (alert.source, alert.level, alert.bot) == ("daily_loss", "warning", bot)
    assert "-550" in alert.title and alert.subject == f"bot-{bot.pk}:2026-01-15"
    assert ["Limit", "-500.00"] in alert.fields
    # Another losing trade while the breach lasts: no second alert.
    evaluate_trades(bot.pk, losses(bot, "-10", start=20), now=at(11, 20))
    assert len(alerts()) == 1


def test_a_breach_that_lasts_is_repeated_after_the_cooldown(bot: Bot) -> None:
    only("daily-loss-warning")  # cooldown 60 minutes
    evaluate_trades(bot.pk, losses(bot, "-600"), now=at(11, 0))
    evaluate_schedule(now=at(11, 59))
    assert len(alerts()) == 1
    evaluate_schedule(now=at(12, 0))
    assert len(alerts()) == 2
    evaluate_schedule(now=at(12, 30))
    assert len(alerts()) == 2
    evaluate_schedule(now=at(13, 1))
    assert len(alerts()) == 3


def test_pnl_crossing_the_limit_back_and_forth_alerts_once_per_cooldown(bot: Bot) -> None:
    only("daily-loss-warning")  # cooldown 60 minutes
    evaluate_trades(bot.pk, losses(bot, "-600"), now=at(11))
    # Each win lifts the day back above -500, the next loss pushes it below again.
    for n in range(6):
        evaluate_trades(bot.pk, losses(bot, "400", start=10 + 2 * n), now=at(11, 5 + 8 * n))
        evaluate_trades(bot.pk, losses(bot, "-400", start=11 + 2 * n), now=at(11, 9 + 8 * n))
    assert len(alerts()) == 1
    # Above the limit when the cooldown ends: nothing to say.
    evaluate_trades(bot.pk, losses(bot, "400", start=40), now=at(12, 1))
    evaluate_schedule(now=at(12, 2))
    assert len(alerts()) == 1
    # Breached again after the cooldown: one more alert, then quiet again.
    evaluate_trades(bot.pk, losses(bot, "-400", start=41), now=at(12, 3))
    evaluate_trades(bot.pk, losses(bot, "400", start=42), now=at(12, 4))
    evaluate_trades(bot.pk, losses(bot, "-400", start=43), now=at(12, 5))
    assert len(alerts()) == 2
    # The next trading day is a fresh start.
    friday = dt.date(2026, 1, 16)
    evaluate_trades(bot.pk, losses(bot, "-600", start=60, when=at(10, day=friday)), now=at(10, 1, friday))
    assert len(alerts()) == 3


def test_a_flapping_max_daily_loss_alerts_once_and_its_halt_stays(bot: Bot, api: APIClient) -> None:
    only("max-daily-loss")
    now = at(11)
    evaluate_trades(bot.pk, losses(bot, "-1000", when=now), now=now)
    halt = TradingHalt.objects.get()
    evaluate_trades(bot.pk, losses(bot, "500", start=5, when=now), now=at(11, 5))
    evaluate_trades(bot.pk, losses(bot, "-500", start=6, when=now), now=at(11, 10))
    evaluate_schedule(now=at(11, 11))
    assert len(alerts()) == 1
    assert list(TradingHalt.objects.values_list("pk", "created_at")) == [(halt.pk, halt.created_at)]
    with mock.patch("django.utils.timezone.now", return_value=at(11, 12)):
        assert status(api)["trading_allowed"] is False  # P&L back above the limit: the halt stays


@pytest.mark.parametrize(
    ("rule", "pnl", "alerted"),
    [
        ("daily-loss-warning", "-500", True),  # at the limit: "at or below" alerts
        ("daily-loss-warning", "-499.99", False),
        ("max-daily-loss", "-1000", True),
        ("max-daily-loss", "-999.99", False),
    ],
)
def test_realized_pnl_exactly_at_a_loss_limit_alerts_and_halts(
    bot: Bot, api: APIClient, rule: str, pnl: str, alerted: bool
) -> None:
    only(rule)
    evaluate_trades(bot.pk, losses(bot, pnl, when=at(11)), now=at(11))
    assert len(alerts()) == int(alerted)
    if rule == "max-daily-loss":
        with mock.patch("django.utils.timezone.now", return_value=at(11, 1)):
            assert status(api)["trading_allowed"] is not alerted


def test_an_edited_threshold_judges_the_next_trade(bot: Bot) -> None:
    only("daily-loss-warning")
    AlertRule.objects.filter(name="daily-loss-warning").update(threshold=Decimal("-100"))
    evaluate_trades(bot.pk, losses(bot, "-150"), now=at(11))
    assert len(alerts()) == 1


def test_a_loss_at_21_30_new_york_counts_for_that_new_york_day(bot: Bot) -> None:
    only("daily-loss-warning")
    losses(bot, "-300")  # Thursday morning
    # 21:30 in New York is 02:30 UTC on Friday: still Thursday's trading day.
    late = losses(bot, "-300", start=5, when=at(21, 30))
    evaluate_trades(bot.pk, late, now=at(21, 31))
    (alert,) = alerts()
    assert alert.subject == f"bot-{bot.pk}:2026-01-15"
    assert "-600" in alert.title
    # A loss just after midnight New York time belongs to Friday and starts afresh.
    friday = losses(bot, "-300", start=9, when=at(0, 1, day=dt.date(2026, 1, 16)))
    evaluate_trades(bot.pk, friday, now=at(0, 2, day=dt.date(2026, 1, 16)))
    assert len(alerts()) == 1


def test_a_scoped_rule_only_counts_its_strategy(bot: Bot) -> None:
    only("daily-loss-warning")
    AlertRule.objects.filter(name="daily-loss-warning").update(strategy="meanrev")
    ids = record(bot, stored_trade(1, pnl=Decimal("-600"), strategy="momentum"))
    evaluate_trades(bot.pk, ids, now=at(11))
    assert alerts() == []
    ids = record(bot, stored_trade(2, pnl=Decimal("-600"), strategy="meanrev"))
    evaluate_trades(bot.pk, ids, now=at(11))
    assert len(alerts()) == 1


def test_a_rule_for_another_bot_does_not_judge_this_one(bot: Bot) -> None:
    only("daily-loss-warning")
    other = Bot.objects.create(name="beta")
    AlertRule.objects.filter(name="daily-loss-warning").update(bot=other)
    evaluate_trades(bot.pk, losses(bot, "-600"), now=at(11))
    assert alerts() == []


# --- max daily loss and the trading status ------------------------------------------


def status(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/v1/status/")
    assert response.status_code == 200
    return response.json()


def test_max_daily_loss_alerts_critical_and_halts_trading_until_the_next_trading_day(
    bot: Bot, api: APIClient
) -> None:
    only("max-daily-loss")
    assert status(api)["trading_allowed"] is True
    friday = dt.date(2026, 1, 16)
    with mock.patch("django.utils.timezone.now", return_value=at(14, day=friday)):
        evaluate_trades(bot.pk, losses(bot, "-1200", when=at(13, day=friday)), now=at(14, day=friday))
        body = status(api)
    (alert,) = alerts()
    assert alert.level == "critical" and alert.source == "max_daily_loss"
    assert "halted" in alert.message
    assert body["trading_allowed"] is False
    assert "max daily loss" in body["reason"] and "-1,200.00" in body["reason"]
    # Monday 19 January 2026 is Martin Luther King Jr. Day: the halt holds through it.
    assert body["halted_until"] == "2026-01-20"
    for moment, allowed in (
        (at(20, day=friday), False),
        (at(12, day=dt.date(2026, 1, 17)), False),  # Saturday
        (at(12, day=dt.date(2026, 1, 19)), False),  # the holiday
        (at(8, day=dt.date(2026, 1, 20)), True),  # Tuesday, the next trading day
    ):
        with mock.patch("django.utils.timezone.now", return_value=moment):
            assert status(api)["trading_allowed"] is allowed, moment


def test_an_admin_resume_lets_the_bot_trade_again_the_same_day(bot: Bot, api: APIClient) -> None:
    only("max-daily-loss")
    now = at(11)  # a fixed trading day: the real clock could pass midnight in New York mid-test
    evaluate_trades(bot.pk, losses(bot, "-1500", when=now), now=now)
    with mock.patch("django.utils.timezone.now", return_value=now):
        assert status(api)["trading_allowed"] is False
    TradingHalt.objects.update(resumed_at=now, resumed_by="admin")
    with mock.patch("django.utils.timezone.now", return_value=now):
        assert status(api)["trading_allowed"] is True
    # Further losses the same day raise alerts but do not halt again: the admin decided.
    later = now + dt.timedelta(hours=2)
    evaluate_trades(bot.pk, losses(bot, "-100", start=50, when=now), now=later)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert status(api)["trading_allowed"] is True


# --- trade frequency and position size -------------------------------------------------


def test_more_than_fifty_trades_in_a_day_alerts(bot: Bot) -> None:
    only("trade-frequency")
    ids = record(bot, *[stored_trade(i, executed_at=at(10, i % 60)) for i in range(50)])
    evaluate_trades(bot.pk, ids, now=at(11))
    assert alerts() == []
    evaluate_trades(bot.pk, record(bot, stored_trade(99, executed_at=at(10, 59))), now=at(11))
    (alert,) = alerts()
    assert alert.source == "trade_frequency" and "51 trades" in alert.title


def test_large_positions_alert_once_per_symbol_and_day_by_default(bot: Bot) -> None:
    only("position-size")
    big = {"quantity": Decimal("10"), "price": Decimal("150")}  # notional 1500 > 1000
    ids = record(bot, stored_trade(1, **big), stored_trade(2, **big), stored_trade(3, quantity=Decimal(1)))
    evaluate_trades(bot.pk, ids, now=at(11))
    evaluate_trades(bot.pk, record(bot, stored_trade(4, **big)), now=at(11, 5))
    (alert,) = alerts()
    assert alert.source == "position_size" and ["Notional", "1,500.00"] in alert.fields
    assert ["Quantity", "10"] in alert.fields and ["Price", "150.00"] in alert.fields
    evaluate_trades(bot.pk, record(bot, stored_trade(5, symbol="MSFT", **big)), now=at(11, 6))
    assert len(alerts()) == 2


def test_a_fill_exactly_at_the_position_limit_does_not_alert(bot: Bot) -> None:
    only("position-size")  # notional above 1000
    at_limit = stored_trade(1, symbol="AAPL", quantity=Decimal("10"), price=Decimal("100"))
    above = stored_trade(2, symbol="MSFT", quantity=Decimal("10"), price=Decimal("100.01"))
    evaluate_trades(bot.pk, record(bot, at_limit, above), now=at(11))
    assert [a.title for a in alerts()] == ["alpha: large position BUY 10 MSFT"]


def test_per_trade_position_alerts_when_switched_on(bot: Bot) -> None:
    only("position-size")
    AlertRule.objects.filter(name="position-size").update(per_trade=True)
    big = {"quantity": Decimal("10"), "price": Decimal("150")}
    evaluate_trades(bot.pk, record(bot, stored_trade(1, **big), stored_trade(2, **big)), now=at(11))
    assert [a.subject for a in alerts()] == [f"trade-{t.pk}" for t in Trade.objects.order_by("pk")]


def test_a_batch_is_judged_only_on_its_own_bots_trades_between_its_first_and_last(bot: Bot) -> None:
    only("position-size")
    other = Bot.objects.create(name="beta")
    big = {"quantity": Decimal("10"), "price": Decimal("150")}
    small = {"quantity": Decimal("1")}
    first = record(bot, stored_trade(1, **small))
    record(other, stored_trade(2, **big))  # another bot's trade between this bot's batches
    second = record(bot, stored_trade(3, **small), stored_trade(4, **small))
    evaluate_trades(bot.pk, second, now=at(11))
    assert alerts() == []
    evaluate_trades(bot.pk, first + second, now=at(11, 1))
    assert alerts() == []
    evaluate_trades(other.pk, Trade.objects.filter(bot=other).values_list("pk", flat=True), now=at(11, 2))
    assert [a.title for a in alerts()] == ["beta: large position BUY 10 AAPL"]


def statements(run: Any) -> set[str]:
    """The SQL statements (placeholders, not values) that ``run()`` sends."""
    sent: set[str] = set()

    def note(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.add(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(note):
        run()
    return sent


def test_a_batch_is_judged_with_the_same_statements_whatever_its_size(bot: Bot) -> None:
    """No statement grows with the batch (an IN of every id): SQLite keeps each shape it prepares,
    and one per batch size once held 200 MB in a task worker."""
    sizes = ((1, 2), (10, 3), (20, 9))
    batches = [
        [stored_trade(n, quantity=Decimal(1)) for n in range(start, start + size)] for start, size in sizes
    ]
    ids = [record(bot, *batch) for batch in batches]
    judged = [statements(lambda batch=batch: evaluate_trades(bot.pk, batch, now=at(11))) for batch in ids]
    assert alerts() == []
    assert judged[1] == judged[2]


# --- bot stopped ----------------------------------------------------------------------------


def heartbeat(bot: Bot, moment: dt.datetime) -> None:
    Bot.objects.filter(pk=bot.pk).update(last_heartbeat_at=moment)


def test_a_silent_bot_during_market_hours_alerts_then_recovers(bot: Bot) -> None:
    only("bot-stopped")  # 10 minutes, cooldown 30
    heartbeat(bot, at(10))
    evaluate_schedule(now=at(10, 9))
    assert alerts() == []
    evaluate_schedule(now=at(10, 11))
    (stopped,) = alerts()
    assert stopped.source == "bot_stopped" and stopped.level == "critical"
    evaluate_schedule(now=at(10, 30))
    assert len(alerts()) == 1  # within the cooldown
    heartbeat(bot, at(10, 35))
    evaluate_schedule(now=at(10, 36))
    recovered = alerts()[-1]
    assert recovered.source == "bot_recovered" and recovered.level == "info"
    assert "reporting again" in recovered.title
    evaluate_schedule(now=at(10, 37))
    assert len(alerts()) == 2  # recovery is said once


def test_a_bot_is_stopped_once_silent_longer_than_the_threshold(bot: Bot) -> None:
    only("bot-stopped")  # 10 minutes
    heartbeat(bot, at(10))
    evaluate_schedule(now=at(10, 10))  # silent exactly 10 minutes: not yet
    assert alerts() == []
    evaluate_schedule(now=at(10, 10) + dt.timedelta(seconds=1))
    assert [a.source for a in alerts()] == ["bot_stopped"]


def test_a_bot_that_never_reported_is_not_called_stopped(bot: Bot) -> None:
    only("bot-stopped")
    evaluate_schedule(now=at(12))
    assert alerts() == []


@pytest.mark.parametrize(
    "moment",
    [
        at(12, day=dt.date(2026, 11, 26)),  # Thanksgiving
        at(12, day=dt.date(2026, 4, 3)),  # Good Friday
        at(12, day=dt.date(2026, 1, 17)),  # a Saturday
        at(12, day=dt.date(2026, 1, 18)),  # a Sunday
        at(8, day=DAY),  # before the open
        at(16, 30, day=DAY),  # after the close
        at(13, 30, day=dt.date(2026, 11, 27)),  # the early close after Thanksgiving (13:00)
    ],
)
def test_silence_outside_market_hours_is_not_a_stopped_bot(bot: Bot, moment: dt.datetime) -> None:
    only("bot-stopped")
    heartbeat(bot, moment - dt.timedelta(hours=3))
    evaluate_schedule(now=moment)
    assert alerts() == []


def test_the_open_bell_itself_is_not_a_breach(bot: Bot) -> None:
    only("bot-stopped")
    heartbeat(bot, at(16, day=dt.date(2026, 1, 14)))  # last seen yesterday's close
    evaluate_schedule(now=at(9, 35))
    assert alerts() == []
    evaluate_schedule(now=at(9, 41))
    assert len(alerts()) == 1


# --- bot events ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        ("crash", "critical"),
        ("connection_lost", "critical"),
        ("db_write_failure", "critical"),
        ("risk_limit", "critical"),
        ("connection_retry", "warning"),
        ("data_quality", "warning"),
        ("startup", "info"),
        ("shutdown", "info"),
        ("market_open", "info"),
        ("market_close", "info"),
    ],
)
def test_each_event_kind_alerts_with_its_rules_level(bot: Bot, kind: str, level: str) -> None:
    event = BotEvent.objects.create(
        bot=bot, kind=kind, level="info", message="from the bot", details={"n": 1}
    )
    alert_for_event(event, now=at(11))
    (alert,) = alerts()
    assert (alert.source, alert.level, alert.message) == (f"event:{kind}", level, "from the bot")
    assert ["Details", '{"n": 1}'] in alert.fields


def test_every_crash_alerts_but_a_cooldown_folds_repeated_events(bot: Bot) -> None:
    for minute in (1, 2):
        alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11, minute))
    assert len(alerts("event:crash")) == 2
    AlertRule.objects.filter(name="event-connection-retry").update(cooldown_minutes=10)
    for minute in (1, 2, 3, 12):
        alert_for_event(BotEvent.objects.create(bot=bot, kind="connection_retry"), now=at(11, minute))
    assert len(alerts("event:connection_retry")) == 2


def test_two_crashes_judged_at_once_by_two_workers_both_alert(bot: Bot) -> None:
    """Each worker read the bot's breach before the other recorded its crash: neither alert is lost.

    (A claim on the breach's last alert time, right for a cooldown, dropped the second crash.)
    """
    from alerts.models import Condition

    real_filter = Condition.objects.filter

    def breach_read_as(found: Any, before: Any = None) -> Any:
        def filter_(**lookup: Any) -> Any:
            if "subject" not in lookup:
                return real_filter(**lookup)
            if before is not None:
                before()
            return mock.Mock(first=lambda: found)

        return mock.patch.object(Condition.objects, "filter", side_effect=filter_)

    alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11, 0))
    stale = Condition.objects.get(rule__name="event-crash")  # what both workers read
    alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11, 1))
    with breach_read_as(stale):
        alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11, 1))
    assert len(alerts("event:crash")) == 3
    assert Condition.objects.get(rule__name="event-crash").last_alert_at == at(11, 1)

    # The bot's first crash: another worker records the breach between this one's read and insert.
    Condition.objects.all().delete()
    rule = AlertRule.objects.get(name="event-crash")

    def recorded_by_the_other() -> None:
        Condition.objects.create(
            rule=rule, subject=f"bot-{bot.pk}", started_at=at(11, 2), last_alert_at=at(11, 2)
        )

    with breach_read_as(None, before=recorded_by_the_other):
        alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11, 2))
    assert len(alerts("event:crash")) == 4


def test_a_disabled_event_rule_raises_nothing(bot: Bot) -> None:
    AlertRule.objects.filter(name="event-startup").update(enabled=False)
    alert_for_event(BotEvent.objects.create(bot=bot, kind="startup"), now=at(11))
    assert alerts() == []


# --- silences ---------------------------------------------------------------------------


def test_a_silenced_rule_is_recorded_but_not_sent(bot: Bot) -> None:
    only("daily-loss-warning", "event-crash")
    rule = AlertRule.objects.get(name="daily-loss-warning")
    Silence.objects.create(rule=rule, until=at(12))
    evaluate_trades(bot.pk, losses(bot, "-600"), now=at(11))
    alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11))
    states = {a.source: a.state for a in alerts()}
    assert states == {"daily_loss": AlertState.SILENCED, "event:crash": AlertState.STORED}


def test_silencing_everything_mutes_every_rule_until_it_ends(bot: Bot) -> None:
    Silence.objects.create(rule=None, until=at(12))
    alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(11, 59))
    alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=at(12, 0))
    assert [a.state for a in alerts()] == [AlertState.SILENCED, AlertState.STORED]


def crash_at(bot: Bot, moment: dt.datetime) -> str:
    (alert,) = alert_for_event(BotEvent.objects.create(bot=bot, kind="crash"), now=moment)
    return alert.state


def test_a_silence_repeating_every_trading_day_mutes_its_window_in_market_time(bot: Bot) -> None:
    only("event-crash")
    rule = AlertRule.objects.get(name="event-crash")
    Silence.objects.create(
        rule=rule, repeat="trading_days", start_time=dt.time(9, 30), end_time=dt.time(9, 35), reason="open"
    )
    thanksgiving, saturday, friday = dt.date(2026, 11, 26), dt.date(2026, 1, 17), dt.date(2026, 1, 16)
    cases = [
        (at(9, 29), AlertState.STORED),
        (at(9, 30), AlertState.SILENCED),  # the window's first minute
        (at(9, 34) + dt.timedelta(seconds=59), AlertState.SILENCED),
        (at(9, 35), AlertState.STORED),  # the end is not part of it
        (at(9, 31, friday), AlertState.SILENCED),  # again the next trading day
        (at(9, 31, saturday), AlertState.STORED),
        (at(9, 31, thanksgiving), AlertState.STORED),  # a holiday is not a trading day
    ]
    for moment, state in cases:
        assert crash_at(bot, moment) == state, moment
    # What the silence held back stays in the history, as muted alerts.
    assert Alert.objects.filter(state=AlertState.SILENCED, rule=rule).count() == 3


def test_a_weekly_maintenance_silence_mutes_every_rule_on_its_days_until_it_ends(bot: Bot) -> None:
    only("event-crash")
    saturday, next_saturday = dt.date(2026, 1, 17), dt.date(2026, 1, 24)
    Silence.objects.create(
        rule=None,
        repeat="weekdays",
        days="sat",
        start_time=dt.time(0, 0),
        end_time=dt.time(6, 0),
        until=at(0, day=dt.date(2026, 1, 25)),
    )
    cases = [
        (at(0, 0, saturday), AlertState.SILENCED),
        (at(5, 59, saturday), AlertState.SILENCED),
        (at(6, 0, saturday), AlertState.STORED),
        (at(5, 0, dt.date(2026, 1, 16)), AlertState.STORED),  # a Friday
        (at(3, 0, next_saturday), AlertState.SILENCED),
        (at(3, 0, dt.date(2026, 1, 31)), AlertState.STORED),  # after the silence's end
    ]
    for moment, state in cases:
        assert crash_at(bot, moment) == state, moment


def test_a_window_to_the_end_of_the_day_is_written_as_midnight(bot: Bot) -> None:
    only("event-crash")
    Silence.objects.create(repeat="weekdays", days="sun", start_time=dt.time(20, 0), end_time=dt.time(0, 0))
    sunday = dt.date(2026, 1, 18)
    assert crash_at(bot, at(23, 59, sunday)) == AlertState.SILENCED
    assert crash_at(bot, at(0, 0, dt.date(2026, 1, 19))) == AlertState.STORED


# --- hooks: new trades, bot events, site problems ---------------------------------------


def test_a_posted_batch_queues_one_evaluation_task(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/trades/", [make_trade(n) for n in range(3)], format="json")
    assert response.status_code == 201
    assert len(queued()) == 1
    (task,) = queued()
    assert task.func() == "alerts.tasks.evaluate_trades"
    assert task.args()[1] == response.json()["ids"]


def test_no_task_is_queued_while_no_trade_rule_is_enabled(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    AlertRule.objects.update(enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/v1/trades/", make_trade(1), format="json").status_code == 201
    assert len(queued()) == 0


def test_a_queue_that_cannot_be_written_never_fails_the_request(
    api: APIClient, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        mock.patch("django_q.tasks.async_task", side_effect=RuntimeError("database is locked")),
        caplog.at_level(logging.ERROR),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api.post("/api/v1/trades/", make_trade(1), format="json")
    assert response.status_code == 201
    assert Trade.objects.count() == 1
    assert "could not queue alerts.tasks.evaluate_trades" in caplog.text


def test_a_posted_event_queues_its_alert(api: APIClient, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/events/", {"kind": "crash", "level": "critical"}, format="json")
    assert response.status_code == 201
    (task,) = queued()
    assert task.func() == "alerts.tasks.alert_for_event" and task.args() == (response.json()["id"],)


def test_an_event_retried_with_its_event_id_queues_one_alert(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    body = {"kind": "crash", "level": "critical", "event_id": "crash-7"}
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [api.post("/api/v1/events/", body, format="json").status_code for _ in range(3)]
    assert statuses == [201, 200, 200]
    assert len(queued()) == 1 and BotEvent.objects.count() == 1


def test_a_site_alert_becomes_one_alert_per_subject_and_cooldown(db: Any) -> None:
    for _ in range(3):
        site_alert.send(
            sender=None,
            kind="backup_failed",
            level="critical",
            title="Backup failed",
            message="upload refused",
            subject="backup:aws",
        )
    (alert,) = alerts()
    assert (alert.source, alert.level, alert.title) == ("site:backup_failed", "critical", "Backup failed")


# --- one evaluation per waiting batch ---------------------------------------------------


def post_batch(api: APIClient, capture: Any, *trades: dict[str, Any]) -> list[int]:
    with capture(execute=True):
        response = api.post("/api/v1/trades/", list(trades), format="json")
    assert response.status_code == 201
    return response.json()["ids"]


def test_batches_arriving_while_an_evaluation_waits_join_it(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    only("daily-loss-warning")
    first = post_batch(api, django_capture_on_commit_callbacks, make_trade(1, side="SELL", pnl=-300))
    second = post_batch(api, django_capture_on_commit_callbacks, make_trade(2, side="SELL", pnl=-300))
    (task,) = queued()  # the second batch joined the waiting evaluation
    assert task.args() == (bot.pk, first)
    evaluate_trades_task(*task.args())
    (alert,) = alerts()
    assert "-600" in alert.title  # both batches were judged by that one task
    # The evaluation has run: the next batch queues a task of its own.
    third = post_batch(api, django_capture_on_commit_callbacks, make_trade(3))
    assert [t.args() for t in queued()][1:] == [(bot.pk, third)]
    assert second != third


def test_a_lost_evaluation_task_is_made_up_for(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    only("daily-loss-warning")
    post_batch(api, django_capture_on_commit_callbacks, make_trade(1, side="SELL", pnl=-600))
    clear_queue()  # the task was lost (a broker wiped, a worker killed while dequeuing)
    later = timezone.now() + PendingEvaluation.STALE + dt.timedelta(seconds=1)
    # The periodic pass judges what waited too long ...
    evaluate_schedule(now=later)
    assert len(alerts()) == 1
    # ... and a new batch after a stale request queues a task again.
    PendingEvaluation.objects.create(
        bot=bot, first_trade_id=1, queued_at=timezone.now() - dt.timedelta(minutes=5)
    )
    post_batch(api, django_capture_on_commit_callbacks, make_trade(2))
    assert len(queued()) == 1


def test_whether_a_rule_is_judged_on_a_moment_is_asked_of_the_database_every_time() -> None:
    """``any_rule_judged_on`` (asked by every batch and heartbeat with state) keeps its SQL, never
    its answer: a rule switched on or off counts for the very next request."""
    moments = ("trades", "schedule", "event", "state")

    def answers() -> dict[str, bool]:
        return {moment: any_rule_judged_on(moment) for moment in moments}

    def orm() -> dict[str, bool]:
        return {moment: AlertRule.objects.enabled().judged_on(moment).exists() for moment in moments}

    only()  # every rule off
    assert answers() == orm() == dict.fromkeys(moments, False)
    only("daily-loss-warning")
    assert answers() == orm() and answers()["trades"] and not answers()["event"]
    only("event-shutdown")
    assert answers() == orm() and answers()["event"] and not answers()["trades"]
    only()
    assert answers() == dict.fromkeys(moments, False)


@pytest.mark.parametrize(
    ("age", "queued"),
    [(PendingEvaluation.STALE, False), (PendingEvaluation.STALE + dt.timedelta(microseconds=1), True)],
)
def test_a_waiting_request_is_taken_over_once_older_than_stale(
    bot: Bot, age: dt.timedelta, queued: bool
) -> None:
    now = timezone.now()
    PendingEvaluation.objects.create(bot=bot, first_trade_id=5, queued_at=now - age)
    with CaptureQueriesContext(connection) as queries:
        assert PendingEvaluation.objects.request(bot, 7, now) is queued
    if not queued:  # one waits: that costs one read and no write
        assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT"]
    waiting = PendingEvaluation.objects.get(bot=bot)
    assert waiting.first_trade_id == 5  # the least first id wins either way
    assert waiting.queued_at == (now if queued else now - age)


def test_a_batch_with_lower_ids_committed_later_moves_the_waiting_request_back(bot: Bot) -> None:
    """PostgreSQL numbers rows as they are inserted, not as they commit: a batch with lower ids can
    commit after one with higher ids queued its evaluation. The waiting request then starts at the
    lower id (exactly one less too), or that batch would never be judged; a later one changes nothing."""
    now = timezone.now()
    assert PendingEvaluation.objects.request(bot, 1100, now) is True
    assert PendingEvaluation.objects.request(bot, 1099, now) is False
    assert PendingEvaluation.objects.get(bot=bot).first_trade_id == 1099
    assert PendingEvaluation.objects.request(bot, 100, now) is False
    with CaptureQueriesContext(connection) as queries:
        assert PendingEvaluation.objects.request(bot, 100, now) is False  # a tie: covered
        assert PendingEvaluation.objects.request(bot, 2000, now) is False
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT", "SELECT"]
    assert PendingEvaluation.objects.get(bot=bot).first_trade_id == 100
    # Its task takes it between this batch's read and the move back: the batch queues its own.
    claimed: list[int | None] = []

    def task_claims_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("UPDATE") and not claimed:
            claimed.append(PendingEvaluation.objects.claim(bot.pk))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(task_claims_first):
        assert PendingEvaluation.objects.request(bot, 50, now) is True
    assert claimed == [100]
    assert PendingEvaluation.objects.get(bot=bot).first_trade_id == 50


def test_a_snapshot_taken_earlier_but_reported_later_moves_the_waiting_state_request_back(bot: Bot) -> None:
    now = timezone.now()
    assert PendingStateEvaluation.objects.request(bot, now - dt.timedelta(seconds=5), now) is True
    assert PendingStateEvaluation.objects.request(bot, now - dt.timedelta(seconds=9), now) is False
    assert PendingStateEvaluation.objects.request(bot, now - dt.timedelta(seconds=1), now) is False
    assert PendingStateEvaluation.objects.claim(bot.pk) == now - dt.timedelta(seconds=9)


def test_a_failed_enqueue_leaves_no_request_behind(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with mock.patch("django_q.tasks.async_task", side_effect=RuntimeError("database is locked")):
        post_batch(api, django_capture_on_commit_callbacks, make_trade(1))
    assert not PendingEvaluation.objects.exists()
    post_batch(api, django_capture_on_commit_callbacks, make_trade(2))
    assert len(queued()) == 1


def test_an_event_kind_without_a_rule_queues_nothing(
    api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/events/", {"kind": "custom", "message": "note"}, format="json")
    assert response.status_code == 201
    assert len(queued()) == 0


# --- rules stored before the judges existed --------------------------------------------


def test_a_stored_loss_rule_without_threshold_is_skipped_never_read_as_zero(bot: Bot, api: APIClient) -> None:
    only("max-daily-loss", "daily-loss-warning")
    AlertRule.objects.filter(name="max-daily-loss").update(threshold=None)
    AlertRule.objects.filter(name="daily-loss-warning").update(threshold=Decimal("500"))  # sign forgotten
    record(bot, stored_trade(1, pnl=Decimal(0), executed_at=at(10)))  # realized P&L exactly 0
    with mock.patch("django.utils.timezone.now", return_value=at(11)):
        evaluate_schedule(now=at(11))
        evaluate_trades(bot.pk, list(Trade.objects.values_list("pk", flat=True)), now=at(11))
        assert status(api)["trading_allowed"] is True
    assert alerts() == [] and not TradingHalt.objects.exists()


def test_a_stored_bot_event_rule_without_its_kind_alerts_nothing(bot: Bot) -> None:
    only("event-crash")
    AlertRule.objects.filter(name="event-crash").update(event_kind="")
    assert AlertRule.objects.get(name="event-crash").problems.keys() == {"event_kind"}
    event = BotEvent.objects.create(bot=bot, kind="crash", level="critical", message="boom")
    assert alert_for_event(event, now=at(11)) == []


def test_every_rule_kind_has_a_judge() -> None:
    from alerts.rules import RULE_KINDS, judge_for

    assert {kind: judge_for(kind).kind for kind in RULE_KINDS} == {kind: kind for kind in RULE_KINDS}
    contract = ("daily_loss", "max_daily_loss", "trade_frequency", "position_size", "bot_stopped")
    assert {*contract, "bot_event"} <= set(RULE_KINDS)


# --- cooldowns at their boundary ------------------------------------------------------------

SECOND = dt.timedelta(seconds=1)


def utc(moment: dt.datetime) -> dt.datetime:
    """A moment as the site's clock gives it (UTC), so no rule can lean on the zone it was written in."""
    return moment.astimezone(dt.UTC)


def test_a_lasting_breach_repeats_exactly_a_cooldown_after_its_last_alert_not_a_second_before(
    bot: Bot,
) -> None:
    only("daily-loss-warning")  # cooldown 60 minutes
    evaluate_trades(bot.pk, losses(bot, "-600", when=at(11)), now=utc(at(11)))
    assert len(alerts()) == 1
    evaluate_schedule(now=utc(at(12)) - SECOND)
    assert len(alerts()) == 1
    evaluate_schedule(now=utc(at(12)))
    assert len(alerts()) == 2
    # The next one counts from that repeat, not from the breach's start.
    evaluate_schedule(now=utc(at(13)) - SECOND)
    assert len(alerts()) == 2
    evaluate_schedule(now=utc(at(13)))
    assert len(alerts()) == 3


def test_a_repeated_event_alerts_again_exactly_a_cooldown_after_its_last_alert(bot: Bot) -> None:
    only("event-connection-retry")
    AlertRule.objects.filter(name="event-connection-retry").update(cooldown_minutes=10)

    def retry(moment: dt.datetime) -> int:
        return len(alert_for_event(BotEvent.objects.create(bot=bot, kind="connection_retry"), now=moment))

    assert [retry(utc(at(11)) + offset) for offset in (dt.timedelta(0), 10 * 60 * SECOND - SECOND)] == [1, 0]
    assert retry(utc(at(11, 10))) == 1


def test_a_day_rule_with_cooldown_0_alerts_once_for_the_days_breach_and_never_repeats_it(bot: Bot) -> None:
    only("daily-loss-warning")
    AlertRule.objects.filter(name="daily-loss-warning").update(cooldown_minutes=0)
    evaluate_trades(bot.pk, losses(bot, "-600", when=at(11)), now=utc(at(11)))
    assert len(alerts()) == 1
    # The breach lasts, deepens, crosses back and comes again: the day has had its alert.
    evaluate_trades(bot.pk, losses(bot, "-100", start=10, when=at(11, 30)), now=utc(at(11, 30)))
    evaluate_trades(bot.pk, losses(bot, "400", start=11, when=at(12)), now=utc(at(12)))
    evaluate_trades(bot.pk, losses(bot, "-400", start=12, when=at(13)), now=utc(at(13)))
    for moment in (at(11, 1), at(12, 1), at(15, 59), at(20, 30), at(23, 59)):
        evaluate_schedule(now=utc(moment))
    assert len(alerts()) == 1
    # The next trading day is a new breach: one alert again.
    friday = dt.date(2026, 1, 16)
    evaluate_trades(
        bot.pk, losses(bot, "-600", start=20, when=at(10, day=friday)), now=utc(at(10, day=friday))
    )
    evaluate_schedule(now=utc(at(15, day=friday)))
    assert [a.subject for a in alerts()] == [f"bot-{bot.pk}:2026-01-15", f"bot-{bot.pk}:2026-01-16"]


# --- recurring silences where the market's date and UTC's differ ----------------------------


def test_a_weekday_silence_follows_the_markets_day_after_utcs_midnight(bot: Bot) -> None:
    friday_evening = Silence.objects.create(
        repeat="weekdays", days="fri", start_time=dt.time(19, 0), end_time=dt.time(23, 59)
    )
    saturday_evening = Silence.objects.create(
        repeat="weekdays", days="sat", start_time=dt.time(19, 0), end_time=dt.time(23, 59)
    )
    winter = utc(at(21, 0, dt.date(2026, 1, 16)))  # Friday 21:00 New York, Saturday 02:00 UTC
    summer = utc(at(21, 0, dt.date(2026, 7, 17)))  # Friday 21:00 New York, Saturday 01:00 UTC
    for moment in (winter, summer):
        assert moment.weekday() == 5
        assert friday_evening.in_force(moment) and not saturday_evening.in_force(moment), moment
    assert not friday_evening.in_force(utc(at(23, 59, dt.date(2026, 1, 16))))  # the end is not in it
    assert friday_evening.in_force(utc(at(23, 59, dt.date(2026, 1, 16))) - SECOND)
    assert not friday_evening.in_force(utc(at(18, 59, dt.date(2026, 1, 16))) + 59 * SECOND)
    # Saturday 21:00 New York (Sunday in UTC) is the Saturday silence's.
    assert saturday_evening.in_force(utc(at(21, 0, dt.date(2026, 1, 17))))
    # And an alert raised at that moment is muted by it.
    only("event-crash")
    assert crash_at(bot, winter) == AlertState.SILENCED


def test_a_trading_days_silence_in_the_evening_before_a_holiday_is_in_force(bot: Bot) -> None:
    evening = Silence.objects.create(
        repeat="trading_days", start_time=dt.time(20, 0), end_time=dt.time(23, 0)
    )
    wednesday, thanksgiving = dt.date(2026, 11, 25), dt.date(2026, 11, 26)
    # Wednesday 21:00 New York is Thanksgiving 02:00 UTC: still the trading day's evening.
    assert utc(at(21, 0, wednesday)).date() == thanksgiving
    assert evening.in_force(utc(at(21, 0, wednesday)))
    assert evening.in_force(utc(at(20, 0, wednesday)))
    assert not evening.in_force(utc(at(23, 0, wednesday)))
    assert not evening.in_force(utc(at(20, 0, wednesday)) - SECOND)
    # Thanksgiving's evening is a holiday's, whatever day UTC says it is (Friday, a trading day).
    assert utc(at(21, 0, thanksgiving)).date() == dt.date(2026, 11, 27)
    assert not evening.in_force(utc(at(21, 0, thanksgiving)))
    only("event-crash")
    assert crash_at(bot, utc(at(21, 0, wednesday))) == AlertState.SILENCED
    assert crash_at(bot, utc(at(21, 0, thanksgiving))) == AlertState.STORED
