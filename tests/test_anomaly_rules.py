"""The anomaly rules (``alerts.rules.anomaly``) over synthetic histories with known answers, and the
hourly figures they judge against (``trades.hours``).

The histories are stored hours (``HourFigures``) made here, or trades turned into them by the
scheduled task; the hour being judged is made of real trades, judged by evaluation as a batch
arrives (``evaluate_trades``) or by the periodic pass (``evaluate_schedule``)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from decimal import Decimal
from io import StringIO
from itertools import count
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from alerts.evaluation import evaluate_schedule, evaluate_state, evaluate_trades
from alerts.models import Alert, AlertRule, Condition
from trades import hours, market
from trades.models import Bot, BotSnapshot, HourFigures, Trade

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NY = ZoneInfo("America/New_York")
_ids = count(1)
ROOT = Path(__file__).resolve().parent.parent


def only(*names: str, threshold: Decimal | None = None) -> None:
    """Every rule off but ``names`` (the seeded anomaly rules), at ``threshold`` when given."""
    AlertRule.objects.exclude(name__in=names).update(enabled=False)
    AlertRule.objects.filter(name__in=names).update(enabled=True)
    if threshold is not None:
        AlertRule.objects.filter(name__in=names).update(threshold=threshold)


def new_bot(name: str = "steady", calendar: str = "24/7", zone: str = "UTC") -> Bot:
    return Bot.objects.create(name=name, calendar=calendar, timezone=zone)


def history(
    bot: Bot,
    hour: dt.datetime,
    values: Sequence[int],
    *,
    days: int = 7,
    pnl: Sequence[Any] = (),
    opened: Sequence[Any] = (),
) -> None:
    """Stored hours at ``hour`` minus 1, 2 ... x ``days`` days (wall clock in the bot's market):
    ``values[0]`` fills the newest; ``pnl`` their realized P&L (default 0), ``opened`` their open
    positions' change (default: not reported); open hours."""
    zone = market.calendar_for(bot).zone
    local = hour.astimezone(zone)
    HourFigures.objects.bulk_create(
        HourFigures(
            bot=bot,
            hour_start=(local - dt.timedelta(days=days * (n + 1))).astimezone(UTC),
            market_open=True,
            fills=fills,
            realized_pnl=Decimal(pnl[n]) if pnl else Decimal(0),
            open_change=Decimal(opened[n]) if opened else None,
        )
        for n, fills in enumerate(values)
    )


def every_hour(bot: Bot, start: dt.datetime, end: dt.datetime, fills: int = 4) -> None:
    """Stored hours from ``start`` to ``end``, each with ``fills`` fills, open as the bot's calendar says."""
    calendar = market.calendar_for(bot)
    rows, hour = [], start
    while hour < end:
        rows.append(
            HourFigures(
                bot=bot,
                hour_start=hour,
                market_open=hours.hour_is_open(calendar, hour),
                fills=fills,
                realized_pnl=Decimal(0),
            )
        )
        hour += hours.HOUR
    HourFigures.objects.bulk_create(rows)


def fill(bot: Bot, at: dt.datetime, n: int = 1, pnl: Decimal | None = None) -> list[int]:
    """``n`` fills of the bot at ``at`` (each with ``pnl``), stored; their ids."""
    day = market.calendar_for(bot).trading_day_of(at)
    made = Trade.objects.bulk_create(
        Trade(
            bot=bot,
            external_id=f"t{next(_ids)}",
            symbol="AAPL",
            side="SELL",
            quantity=1,
            price=10,
            pnl=pnl,
            executed_at=at,
            trading_day=day,
        )
        for _ in range(n)
    )
    return [trade.pk for trade in made]


def alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(source=kind).order_by("created_at", "id"))


# A Thursday, 10:00 UTC; the 24/7 bot's history is the same hour on the weeks before.
HOUR = dt.datetime(2026, 3, 5, 10, tzinfo=UTC)
USUAL = [2, 3, 4, 5, 6, 3, 4, 5]  # median 4, MAD 1: scale max(1.4826, sqrt 4 = 2) = 2; middle half 3-5


# --- too many fills ---------------------------------------------------------------------------


def test_a_steady_bot_alerts_at_the_fill_that_reaches_the_threshold_not_one_before() -> None:
    only("trade-rate-anomaly")  # threshold 6: 4 + 6 x 2 = 16 fills
    bot = new_bot()
    history(bot, HOUR, USUAL)
    now = HOUR + dt.timedelta(minutes=5)
    evaluate_trades(bot.pk, fill(bot, HOUR + dt.timedelta(minutes=1), 15), now=now)
    assert alerts("trade_rate_anomaly") == []  # 15: a score of 5.5
    evaluate_trades(bot.pk, fill(bot, now), now=now)
    (alert,) = alerts("trade_rate_anomaly")
    assert alert.title == "steady: 16 fills this hour, usually 3–5"
    assert alert.message == "steady filled 16 times since 10:00 UTC; at this hour it usually fills 3–5."
    assert ["Score", "6.0 (threshold 6)"] in alert.fields
    assert ["Compared with", "the same hour of the week, last 8 weeks"] in alert.fields
    assert alert.level == "warning"


def test_the_spread_of_the_history_sets_the_scale_when_it_is_wider_than_a_counts_noise() -> None:
    only("trade-rate-anomaly", threshold=Decimal(2))
    bot = new_bot()
    history(bot, HOUR, [0, 10, 0, 10, 0, 10, 0, 10])  # median 5, MAD 5: scale 7.413; 5 + 14.826 = 19.826
    now = HOUR + dt.timedelta(minutes=30)
    evaluate_trades(bot.pk, fill(bot, now, 19), now=now)
    assert alerts("trade_rate_anomaly") == []
    evaluate_trades(bot.pk, fill(bot, now), now=now)
    assert len(alerts("trade_rate_anomaly")) == 1


def test_the_minimum_of_fills_holds_back_a_bot_that_never_trades_at_this_hour(settings: Any) -> None:
    only("trade-rate-anomaly", threshold=Decimal(1))  # 0 + 1 x 1: one fill would score 1
    settings.ANOMALY_MIN_FILLS = 5
    bot = new_bot()
    history(bot, HOUR, [0] * 8)
    now = HOUR + dt.timedelta(minutes=30)
    evaluate_trades(bot.pk, fill(bot, now, 4), now=now)
    assert alerts("trade_rate_anomaly") == []
    evaluate_trades(bot.pk, fill(bot, now), now=now)
    assert len(alerts("trade_rate_anomaly")) == 1


def test_a_burst_alerts_once_per_cooldown_and_ends_after_a_whole_usual_hour() -> None:
    only("trade-rate-anomaly")
    bot = new_bot()
    for hour in range(4):  # 10:00 to 13:00 usually fill 3-5
        history(bot, HOUR + dt.timedelta(hours=hour), USUAL)
    at = HOUR + dt.timedelta(minutes=5)
    evaluate_trades(bot.pk, fill(bot, at, 20), now=at)
    evaluate_trades(bot.pk, fill(bot, at + dt.timedelta(minutes=1), 20), now=at + dt.timedelta(minutes=1))
    assert len(alerts("trade_rate_anomaly")) == 1  # the breach goes on: no second alert
    # The burst goes on past 11:00: the new clock hour neither ends the breach nor alerts anew.
    store = lambda now: hours.record_hours(now)  # noqa: E731
    eleven = HOUR + dt.timedelta(hours=1, minutes=3)
    store(eleven)
    evaluate_trades(bot.pk, fill(bot, eleven, 20), now=eleven)
    evaluate_schedule(now=eleven)
    assert (
        len(alerts("trade_rate_anomaly")) == 1 and Condition.objects.get(subject=f"bot-{bot.pk}:fills").active
    )
    # 12:03: the 11:00 hour had the burst; after the cooldown (60 min) it alerts again.
    twelve = HOUR + dt.timedelta(hours=2, minutes=3)
    store(twelve)
    evaluate_schedule(now=twelve)
    assert len(alerts("trade_rate_anomaly")) == 2
    # 13:03: the 12:00 hour was usual (no fills is within reach of 3-5 for too many), and so is 13:00 so far.
    fill(bot, HOUR + dt.timedelta(hours=3, minutes=1), 4)
    thirteen = HOUR + dt.timedelta(hours=3, minutes=3)
    store(thirteen)
    evaluate_schedule(now=thirteen)
    over = Alert.objects.get(title="steady: fills per hour back to usual")
    assert over.level == "info"
    assert not Condition.objects.get(subject=f"bot-{bot.pk}:fills").active


# --- the history the rules need ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_hour_after", "judged"), [(dt.timedelta(0), True), (dt.timedelta(hours=1), False)]
)
def test_a_bot_is_judged_from_fourteen_days_of_history_not_an_hour_sooner(
    first_hour_after: dt.timedelta, judged: bool
) -> None:
    only("trade-rate-anomaly")
    bot = new_bot()
    start = HOUR - dt.timedelta(days=14) + first_hour_after
    every_hour(bot, start, HOUR)  # 4 fills each hour; two weeks: thin, the same hour of the day
    evaluate_trades(bot.pk, fill(bot, HOUR, 40), now=HOUR)
    assert len(alerts("trade_rate_anomaly")) == (1 if judged else 0)
    if judged:
        assert ["Compared with", "the same hour of the day, last 14 open days"] in alerts(
            "trade_rate_anomaly"
        )[0].fields


def test_a_new_bot_with_two_days_of_history_is_never_judged() -> None:
    only("trade-rate-anomaly", "pnl-anomaly")
    bot = new_bot()
    every_hour(bot, HOUR - dt.timedelta(days=2), HOUR)
    now = HOUR + dt.timedelta(minutes=10)
    evaluate_trades(bot.pk, fill(bot, now, 500, pnl=Decimal(-1000)), now=now)
    hours.record_hours(now + dt.timedelta(hours=1))
    evaluate_schedule(now=now + dt.timedelta(hours=1))
    assert Alert.objects.count() == 0


# --- a loss far outside the history ---------------------------------------------------------


PNL = [-100, 100, -100, 100, -100, 100, -100, 100]  # median 0, MAD 100: scale 148.26; x 6 = 889.56


def test_a_loss_alerts_at_the_threshold_not_a_cent_before() -> None:
    only("pnl-anomaly")
    bot = new_bot()
    history(bot, HOUR, [4] * 8, pnl=PNL)
    now = HOUR + dt.timedelta(minutes=20)
    evaluate_trades(bot.pk, fill(bot, now, pnl=Decimal("-889.55")), now=now)
    assert alerts("pnl_anomaly") == []
    evaluate_trades(bot.pk, fill(bot, now, pnl=Decimal("-0.01")), now=now)
    (alert,) = alerts("pnl_anomaly")
    assert alert.title == "steady: lost 889.56 this hour, usually -100.00 to 100.00"
    assert alert.message == (
        "steady lost 889.56 this hour (since 10:00 UTC); at this hour its realized P&L is usually"
        " between -100.00 and 100.00."
    )


@pytest.mark.parametrize(("loss", "alerted"), [(1000, False), (5000, True)])
def test_a_loss_spread_is_the_wider_of_the_weeks_and_the_days(loss: int, alerted: bool) -> None:
    """Its eight Thursdays at 10:00 agree within a unit by chance; its other days at 10:00 swing by
    500 either way (MAD 500: a spread of 741.30, x 6 = 4,447.80). The loss is judged by the wider."""
    only("pnl-anomaly")
    bot = new_bot()
    history(bot, HOUR, [4] * 8, pnl=[0, 1, -1, 0, 1, -1, 0, 0])
    HourFigures.objects.bulk_create(
        HourFigures(
            bot=bot,
            hour_start=HOUR - dt.timedelta(days=d),
            market_open=True,
            fills=400,  # a busy 10:00: one fill's spread is small (500 / sqrt 400 = 25)
            realized_pnl=Decimal(500 if d % 2 else -500),
        )
        for d in range(1, 21)
        if d % 7
    )
    now = HOUR + dt.timedelta(minutes=10)
    evaluate_trades(bot.pk, fill(bot, now, pnl=Decimal(-loss)), now=now)
    assert len(alerts("pnl_anomaly")) == (1 if alerted else 0)


@pytest.mark.parametrize(("each", "alerted"), [(-75, False), (-300, True)])
def test_an_hour_whose_few_closes_often_net_to_nothing_is_judged_by_one_fills_spread(
    each: int, alerted: bool
) -> None:
    """Two fills at 10:00, most weeks closing nothing: the hours' P&L has no spread (MAD 0), but one
    close is worth 50 either way (50 / sqrt 2 per fill: a spread of 52.42 a fill, 74.13 for two;
    x 6 = 444.80). A loss of 150 in two fills is the bot's usual luck; 600 is not."""
    only("pnl-anomaly")
    bot = new_bot()
    history(bot, HOUR, [2] * 8, pnl=[0, 0, 0, 50, 0, -50, 0, 0])
    now = HOUR + dt.timedelta(minutes=10)
    evaluate_trades(bot.pk, fill(bot, now, 2, pnl=Decimal(each)), now=now)
    assert len(alerts("pnl_anomaly")) == (1 if alerted else 0)


def test_a_loss_far_outside_a_steady_history_alerts_and_a_usual_one_does_not() -> None:
    only("pnl-anomaly", "trade-rate-anomaly")
    bot = new_bot()
    history(bot, HOUR, [4] * 8, pnl=[-150, 200, 50, 120, -80, 30, 180, -20])
    now = HOUR + dt.timedelta(minutes=10)
    evaluate_trades(bot.pk, fill(bot, now, 4, pnl=Decimal(-40)), now=now)  # -160: as bad as it gets
    assert Alert.objects.count() == 0
    evaluate_trades(bot.pk, fill(bot, now, pnl=Decimal(-2140)), now=now)
    (alert,) = Alert.objects.all()
    assert alert.source == "pnl_anomaly"
    assert alert.title.startswith("steady: lost 2,300.00 this hour, usually ")


@pytest.mark.parametrize(("loss", "alerted"), [("-100.00", True), ("-99.99", False)])
def test_the_minimum_loss_holds_back_a_small_loss(settings: Any, loss: str, alerted: bool) -> None:
    only("pnl-anomaly", threshold=Decimal("0.1"))
    settings.ANOMALY_MIN_LOSS = 100
    bot = new_bot()
    history(bot, HOUR, [4] * 8, pnl=[500] * 8)  # any loss is far below 500 at a score of 0.1
    now = HOUR + dt.timedelta(minutes=10)
    evaluate_trades(bot.pk, fill(bot, now, pnl=Decimal(loss)), now=now)
    assert len(alerts("pnl_anomaly")) == (1 if alerted else 0)


# --- a daily rhythm, holidays, closed hours ---------------------------------------------------


def test_a_bot_busy_at_the_open_and_quiet_at_lunch_is_judged_by_each_hour_of_its_own() -> None:
    only("trade-rate-anomaly")
    bot = new_bot("rhythm", calendar="XNYS")
    thursday = dt.datetime(2026, 3, 5, tzinfo=NY)
    open_hour, lunch = thursday.replace(hour=9), thursday.replace(hour=12)
    history(bot, open_hour, [40, 38, 45, 41, 39, 44, 40, 42])
    history(bot, lunch, [1, 0, 2, 1, 1, 0, 1, 2])
    at_open = open_hour + dt.timedelta(minutes=50)
    evaluate_trades(bot.pk, fill(bot, at_open, 44), now=at_open)
    at_lunch = lunch + dt.timedelta(minutes=50)
    evaluate_trades(bot.pk, fill(bot, at_lunch, 5), now=at_lunch)
    assert alerts("trade_rate_anomaly") == []  # a usual open, a usual lunch
    evaluate_trades(bot.pk, fill(bot, at_lunch, 7), now=at_lunch)  # 12 at lunch: as busy as the open
    (alert,) = alerts("trade_rate_anomaly")
    assert alert.message == "rhythm filled 12 times since 12:00 EST; at this hour it usually fills 1."


def test_hours_are_open_as_the_bots_calendar_says() -> None:
    nyse = market.calendar_of("XNYS")
    friday = dt.datetime(2026, 1, 16, tzinfo=NY)
    assert hours.hour_is_open(nyse, friday.replace(hour=9))  # opens 9:30
    assert not hours.hour_is_open(nyse, friday.replace(hour=8))
    assert hours.hour_is_open(nyse, friday.replace(hour=15))
    assert not hours.hour_is_open(nyse, friday.replace(hour=16))  # the bell at 16:00 ends it
    assert not hours.hour_is_open(nyse, friday.replace(day=19, hour=10))  # Martin Luther King Jr. Day
    assert not hours.hour_is_open(nyse, friday.replace(day=17, hour=10))  # Saturday
    assert hours.hour_is_open(market.calendar_of("24/7"), friday.replace(day=17, hour=3))


def test_the_hourly_task_stores_each_ended_hour_once_with_its_fills_pnl_and_market() -> None:
    bot = new_bot("nyse", calendar="XNYS")
    friday_ten = dt.datetime(2026, 1, 16, 10, tzinfo=NY)
    fill(bot, friday_ten + dt.timedelta(minutes=1), 3, pnl=Decimal("-12.50"))
    fill(bot, friday_ten + dt.timedelta(minutes=59, seconds=59), 1)
    fill(bot, friday_ten + dt.timedelta(hours=1), 2, pnl=Decimal(5))  # 11:00: the next hour
    now = friday_ten + dt.timedelta(hours=2, minutes=1)  # 12:01: the 11:00 hour has not settled
    assert hours.record_hours(now) == 1
    hours.record_hours(now + dt.timedelta(minutes=1))  # 12:02: 11:00 is stored
    rows = list(HourFigures.objects.filter(bot=bot).order_by("hour_start"))
    assert [(r.hour_start.astimezone(NY).hour, r.fills, r.realized_pnl) for r in rows] == [
        (10, 4, Decimal("-37.5")),
        (11, 2, Decimal(10)),
    ]
    assert all(r.market_open for r in rows)


@pytest.mark.django_db(transaction=True)
def test_two_workers_storing_the_same_hours_store_each_once() -> None:
    """Both read the same last stored hour and store the same 48 hours at once: one row each."""
    bot = new_bot()
    start = HOUR - dt.timedelta(hours=48)
    fill(bot, start, 3)
    barrier, stored = threading.Barrier(2), []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            stored.append(hours.store_hours(bot, start, HOUR))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert stored == [48, 48]
    assert HourFigures.objects.filter(bot=bot).count() == 48
    assert HourFigures.objects.get(bot=bot, hour_start=start).fills == 3


def test_a_holiday_is_left_out_of_the_baseline_so_the_bot_still_always_trades_then() -> None:
    """Mondays 10:00 in New York, 20 fills each for eight weeks but Martin Luther King Jr. Day
    (closed, no fills). Counted, the holiday would make the bot one that does not always trade at
    that hour, and a quiet Monday would pass unnoticed."""
    only("trade-rate-anomaly")
    bot = new_bot("nyse", calendar="XNYS")
    monday = dt.datetime(2026, 2, 23, 10, tzinfo=NY)
    for weeks in range(1, 9):
        day = monday - dt.timedelta(weeks=weeks)
        if market.calendar_for(bot).is_trading_day(day.date()):
            fill(bot, day + dt.timedelta(minutes=10), 20)
    assert not market.calendar_for(bot).is_trading_day(dt.date(2026, 1, 19))
    hours.record_hours(monday)  # every hour of the eight weeks, from the first fill
    holiday = HourFigures.objects.get(bot=bot, hour_start=dt.datetime(2026, 1, 19, 10, tzinfo=NY))
    assert (holiday.market_open, holiday.fills) == (False, 0)
    same = hours.same_hour(bot, monday.astimezone(UTC))
    assert [s.fills for s in same.week] == [20] * 6  # 8 weeks back, the first fill 7 weeks ago
    # Extend the history past the minimum and judge a quiet Monday: it alerts.
    HourFigures.objects.filter(
        bot=bot, hour_start=HourFigures.objects.earliest("hour_start").hour_start
    ).update(hour_start=monday.astimezone(UTC) - dt.timedelta(days=56))
    hours.record_hours(monday + dt.timedelta(hours=1, minutes=3))
    evaluate_schedule(now=monday + dt.timedelta(hours=1, minutes=3))
    (alert,) = alerts("trade_rate_anomaly")
    assert alert.title == "nyse: 0 fills in the hour from 10:00 EST, usually 20"


# --- unusually quiet ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fills", "alerted"), [(2, True), (3, False)])
def test_a_quiet_hour_alerts_at_one_sixth_of_the_usual_fills(fills: int, alerted: bool) -> None:
    only("trade-rate-anomaly")  # median 12, threshold 6: at most 2 fills
    bot = new_bot()
    history(bot, HOUR, [12, 11, 13, 12, 12, 10, 14, 12])
    fill(bot, HOUR + dt.timedelta(minutes=30), fills)
    later = HOUR + dt.timedelta(hours=1, minutes=3)
    hours.record_hours(later)
    evaluate_schedule(now=later)
    evaluate_schedule(now=later + dt.timedelta(minutes=1))  # each pass judges the ended hour again
    quiet = alerts("trade_rate_anomaly")
    assert len(quiet) == (1 if alerted else 0)
    if alerted:
        assert quiet[0].message == (
            f"steady filled {fills} times in the hour from 10:00 UTC while its market was open; at this"
            " hour it usually fills 12, and never fewer than 10."
        )


@pytest.mark.parametrize(("fewest", "alerted"), [(5, True), (4, False)])
def test_only_a_bot_that_always_fills_the_minimum_at_this_hour_is_quiet(fewest: int, alerted: bool) -> None:
    only("trade-rate-anomaly")
    bot = new_bot()
    history(bot, HOUR, [12, 12, 12, fewest, 12, 12, 12, 12])
    later = HOUR + dt.timedelta(hours=1, minutes=3)
    hours.record_hours(later)  # the 10:00 hour: no fills
    evaluate_schedule(now=later)
    assert len(alerts("trade_rate_anomaly")) == (1 if alerted else 0)


def test_a_closed_market_hour_is_never_quiet() -> None:
    """A New York bot that fills every weekday at 10:00: on Saturday the same hour of the day is
    closed, and silence is expected; on the Friday before it alerts."""
    only("trade-rate-anomaly")
    bot = new_bot("nyse", calendar="XNYS")
    saturday = dt.datetime(2026, 3, 7, 10, tzinfo=NY)
    calendar = market.calendar_for(bot)
    for days in range(2, 57):  # the Friday before is made below, quiet
        day = saturday - dt.timedelta(days=days)
        if calendar.is_trading_day(day.date()):
            HourFigures.objects.create(
                bot=bot, hour_start=day.astimezone(UTC), market_open=True, fills=12, realized_pnl=0
            )
    for at in (saturday - dt.timedelta(days=1), saturday):
        HourFigures.objects.create(
            bot=bot,
            hour_start=at.astimezone(UTC),
            market_open=hours.hour_is_open(calendar, at),
            fills=0,
            realized_pnl=0,
        )
    evaluate_schedule(now=saturday + dt.timedelta(hours=1, minutes=3))
    assert alerts("trade_rate_anomaly") == []
    evaluate_schedule(now=saturday - dt.timedelta(days=1) + dt.timedelta(hours=1, minutes=3))
    assert len(alerts("trade_rate_anomaly")) == 1


# --- the market's clock, not UTC's --------------------------------------------------------------


def test_the_same_hour_is_the_markets_across_a_change_of_daylight_saving_time() -> None:
    """10:00 in New York is 15:00 UTC before 8 March 2026 and 14:00 UTC after it: the history of the
    hour after the change is the 10:00 hours before it, not the 09:00 ones."""
    bot = new_bot("nyse", calendar="XNYS")
    judged = dt.datetime(2026, 3, 26, 10, tzinfo=NY)  # Thursday, daylight time since 8 March
    assert judged.astimezone(UTC).hour == 14
    for weeks in range(1, 9):
        ten = judged - dt.timedelta(weeks=weeks)  # wall clock: 10:00 New York, EST before 8 March
        for hour, fills in ((ten, 10), (ten - dt.timedelta(hours=1), 99)):
            HourFigures.objects.create(
                bot=bot, hour_start=hour.astimezone(UTC), market_open=True, fills=fills, realized_pnl=0
            )
    same = hours.same_hour(bot, judged.astimezone(UTC))
    assert [s.fills for s in same.week] == [10] * 8
    assert {s.hour_start.hour for s in same.week} == {14, 15}


# --- what an operator types ----------------------------------------------------------------------


def test_the_seeded_rules_are_on_at_warning_with_a_score_of_six() -> None:
    seeded = AlertRule.objects.filter(kind__in=["trade_rate_anomaly", "pnl_anomaly"]).order_by("name")
    assert [(r.name, r.kind, r.threshold, r.level, r.enabled, r.cooldown_minutes) for r in seeded] == [
        ("pnl-anomaly", "pnl_anomaly", 6, "warning", True, 60),
        ("trade-rate-anomaly", "trade_rate_anomaly", 6, "warning", True, 60),
    ]


def test_a_usual_hour_gone_by_does_not_end_a_burst_of_the_current_hour() -> None:
    only("trade-rate-anomaly")
    bot = new_bot()
    for hour in range(-1, 1):  # 09:00 and 10:00 usually fill 3-5
        history(bot, HOUR + dt.timedelta(hours=hour), USUAL)
    fill(bot, HOUR - dt.timedelta(minutes=30), 4)  # a usual 09:00 hour
    at = HOUR + dt.timedelta(minutes=3)
    hours.record_hours(at)
    evaluate_trades(bot.pk, fill(bot, at, 20), now=at)
    evaluate_schedule(now=at)
    evaluate_schedule(now=at + dt.timedelta(minutes=1))
    assert len(alerts("trade_rate_anomaly")) == 1
    assert Condition.objects.get(subject=f"bot-{bot.pk}:fills").active


def test_fills_in_a_closed_market_hour_are_not_judged_against_the_open_days() -> None:
    """A New York bot's Saturday 10:00 has no history (closed hours are in no baseline): a burst then
    is not compared with the weekdays' 10:00, which it would be by the same hour of the day."""
    only("trade-rate-anomaly")
    bot = new_bot("nyse", calendar="XNYS")
    saturday = dt.datetime(2026, 3, 7, 10, tzinfo=NY)
    every_hour(bot, (saturday - dt.timedelta(days=56)).astimezone(UTC), saturday.astimezone(UTC), fills=2)
    friday = saturday - dt.timedelta(days=1) + dt.timedelta(minutes=30)
    for at in (saturday + dt.timedelta(minutes=30), friday):
        evaluate_trades(bot.pk, fill(bot, at, 30), now=at)
    (alert,) = alerts("trade_rate_anomaly")
    assert alert.message.startswith("nyse filled 30 times since 10:00 EST;")
    assert alert.created_at == friday


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("ANOMALY_MIN_HISTORY_DAYS", "56", "56"),  # the baseline's 8 weeks
        ("ANOMALY_MIN_HISTORY_DAYS", "57", "ANOMALY_MIN_HISTORY_DAYS must be at most 56, got 57"),
        ("ANOMALY_MIN_FILLS", "1", "1"),
        ("ANOMALY_MIN_FILLS", "0", "ANOMALY_MIN_FILLS must be at least 1, got 0"),
        ("ANOMALY_MIN_LOSS", "ten", "ANOMALY_MIN_LOSS must be a whole number, got 'ten'"),
    ],
)
def test_the_floors_are_checked_where_they_are_set(tmp_path: Path, name: str, value: str, said: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "ANOMALY_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "monitorsite.settings",
        "DJANGO_SECRET_KEY": "x" * 50,
        "ENV_FILE": str(tmp_path / "no.env"),
        "DATABASE_PATH": str(tmp_path / "db.sqlite3"),
        name: value,
    }
    code = f"import django; django.setup(); from django.conf import settings; print(settings.{name})"
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert said in (run.stdout.strip() if run.returncode == 0 else run.stderr.strip().splitlines()[-1])


# --- scope: the bot as a whole -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scope", "refused"),
    [
        ("trade_rate_anomaly", {"strategy": "momentum"}, "strategy"),
        ("pnl_anomaly", {"symbol": "AAPL"}, "symbol"),
        ("pnl_anomaly", {}, None),
        ("trade_frequency", {"strategy": "momentum", "symbol": "AAPL"}, None),  # a day rule takes a scope
    ],
)
def test_a_rule_judging_the_bot_as_a_whole_refuses_a_scope_in_the_admin_and_alerts_yaml(
    admin_client: Any, tmp_path: Path, kind: str, scope: dict[str, str], refused: str | None
) -> None:
    data = {"name": "new-rule", "kind": kind, "event_kind": "", "threshold": "6", "level": "warning"}
    data |= {"enabled": "on", "cooldown_minutes": "60", "bot": "", "strategy": "", "symbol": ""} | scope
    response = admin_client.post("/admin/alerts/alertrule/add/", data)
    text = "rules:\n  from-yaml:\n" + "".join(
        f"    {key}: {value}\n"
        for key, value in {"kind": kind, "threshold": 6, "level": "warning", **scope}.items()
    )
    (tmp_path / "alerts.yaml").write_text(text)
    if refused is None:
        assert response.status_code == 302
        call_command("import_alerts", str(tmp_path / "alerts.yaml"), stdout=StringIO())
        assert AlertRule.objects.get(name="from-yaml").problems == {}
        return
    said = f"A {kind.replace('_', ' ')} rule judges the bot as a whole; leave the {refused} empty."
    assert response.status_code == 200
    assert dict(response.context["adminform"].form.errors) == {refused: [said]}
    with pytest.raises(CommandError) as error:
        call_command("import_alerts", str(tmp_path / "alerts.yaml"), stdout=StringIO())
    assert f"rules.from-yaml.{refused}: {said}" in str(error.value)
    # Stored around both (an older version, the database directly): flagged, never judged.
    AlertRule.objects.filter(name="pnl-anomaly").update(**{refused: "X"})
    assert AlertRule.objects.get(name="pnl-anomaly").problems.keys() == {refused}
    assert not AlertRule.objects.filter(name="pnl-anomaly").judged()


# --- with open positions, where reported ----------------------------------------------------------


def snapshot(bot: Bot, at: dt.datetime, unrealized: Any, positions: bool = True) -> None:
    BotSnapshot.objects.create(
        bot=bot,
        taken_at=at,
        positions=[{"symbol": "AAPL", "quantity": "10"}] if positions else None,
        unrealized_pnl=Decimal(unrealized) if positions else None,
    )


def test_the_hourly_task_stores_the_open_positions_change_when_reported_at_both_ends() -> None:
    bot = new_bot()
    fill(bot, HOUR - dt.timedelta(hours=2), 1)
    snapshot(bot, HOUR - dt.timedelta(minutes=10), 100)
    snapshot(bot, HOUR + dt.timedelta(minutes=20), 50)
    snapshot(bot, HOUR + dt.timedelta(minutes=55), -300)
    snapshot(bot, HOUR + dt.timedelta(minutes=58), 0, positions=False)  # a heartbeat without positions
    hours.record_hours(HOUR + dt.timedelta(hours=2, minutes=3))
    rows = dict(HourFigures.objects.filter(bot=bot).values_list("hour_start", "open_change"))
    assert rows[HOUR] == Decimal(-400)  # from 100 as of 10:00 to -300 as of 11:00
    assert rows[HOUR + dt.timedelta(hours=1)] is None  # nothing within the hour before 12:00
    assert rows[HOUR - dt.timedelta(hours=1)] is None  # nothing within the hour before 09:00


@pytest.mark.parametrize(("unrealized", "alerted"), [("-889.55", False), ("-889.56", True)])
def test_an_open_loss_alerts_on_the_heartbeat_at_the_threshold_not_a_cent_before(
    unrealized: str, alerted: bool
) -> None:
    only("pnl-anomaly")  # with open positions: median 0, MAD 100, x 1.4826 x 6 = 889.56
    bot = new_bot()
    history(bot, HOUR, [4] * 8, opened=PNL)
    snapshot(bot, HOUR - dt.timedelta(minutes=10), 0)
    snapshot(bot, HOUR + dt.timedelta(minutes=20), unrealized)
    evaluate_state(bot.pk, HOUR + dt.timedelta(minutes=20), now=HOUR + dt.timedelta(minutes=20))
    found = alerts("pnl_anomaly")
    assert len(found) == (1 if alerted else 0)
    if alerted:
        assert found[0].message == (
            "steady lost 889.56 this hour (since 10:00 UTC) with its open positions marked to market"
            " (realized 0.00, open positions -889.56); at this hour its P&L with open positions is usually"
            " between -100.00 and 100.00."
        )


def test_an_open_loss_is_not_judged_without_positions_reported_in_the_hour_before() -> None:
    only("pnl-anomaly")
    bot = new_bot()
    history(bot, HOUR, [4] * 8, opened=PNL)
    snapshot(bot, HOUR - dt.timedelta(minutes=61), 0)  # too old to say what the hour began with
    snapshot(bot, HOUR + dt.timedelta(minutes=20), -5000)
    evaluate_state(bot.pk, HOUR + dt.timedelta(minutes=20), now=HOUR + dt.timedelta(minutes=20))
    assert alerts("pnl_anomaly") == []


def test_an_open_loss_that_lasts_is_not_over_with_the_clock_hour() -> None:
    only("pnl-anomaly")
    bot = new_bot()
    for hour in range(3):
        history(bot, HOUR + dt.timedelta(hours=hour), [4] * 8, opened=PNL)
    fill(bot, HOUR - dt.timedelta(hours=1), 1)
    snapshot(bot, HOUR - dt.timedelta(minutes=10), 0)
    snapshot(bot, HOUR + dt.timedelta(minutes=20), -2000)
    evaluate_state(bot.pk, HOUR + dt.timedelta(minutes=20), now=HOUR + dt.timedelta(minutes=20))
    assert len(alerts("pnl_anomaly")) == 1
    eleven = HOUR + dt.timedelta(hours=1, minutes=3)  # the 10:00 hour lost 2,000 with open positions
    hours.record_hours(eleven)
    evaluate_schedule(now=eleven)
    assert Condition.objects.get(subject=f"bot-{bot.pk}:pnl").active
    snapshot(bot, HOUR + dt.timedelta(hours=1, minutes=30), -2000)  # 11:00: no change
    twelve = HOUR + dt.timedelta(hours=2, minutes=3)
    hours.record_hours(twelve)
    evaluate_schedule(now=twelve)
    assert not Condition.objects.get(subject=f"bot-{bot.pk}:pnl").active
    assert Alert.objects.filter(title="steady: hourly P&L back to usual").count() == 1
