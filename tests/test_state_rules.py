"""The rules that judge the bot's reported state: the daily losses with open positions marked to
market (``trades.positions.day_pnl``), the host rules (disk, memory, restarts), and the
``state`` moment that judges them on the heartbeat that reports them. Heartbeats go through
the real API (``/api/v1/heartbeat/``) at a given clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from alerts.evaluation import evaluate_schedule, evaluate_state, evaluate_trades
from alerts.models import Alert, AlertRule, Condition, PendingStateEvaluation, TradingHalt
from alerts.tasks import evaluate_state as evaluate_state_task
from tests.conftest import stored_trade
from tests.queued import clear_queue, queued
from trades.models import Bot, BotSnapshot, Trade
from trades.positions import day_pnl

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
DAY = dt.date(2026, 1, 15)  # a Thursday, a trading day
YESTERDAY = dt.date(2026, 1, 14)
GB = 2**30
SECOND = dt.timedelta(seconds=1)


def at(hour: int, minute: int = 0, second: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY)


@contextmanager
def clock(moment: dt.datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def position(symbol: str, quantity: str, avg: str, market: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "quantity": float(quantity),
        "avg_price": float(avg),
        "market_price": float(market),
    }


def beat(api: APIClient, when: dt.datetime | None = None, **state: Any) -> BotSnapshot | None:
    """A heartbeat with ``state`` (positions, equity, cash, host) at ``when`` (now when None)."""
    body = {"status": "trading", **state}
    with clock(when or timezone.now()):
        response = api.post("/api/v1/heartbeat/", body, format="json")
    assert response.status_code == 200, response.json()
    return BotSnapshot.objects.order_by("-taken_at", "-id").first()


def host(**figures: Any) -> dict[str, Any]:
    return {"pid": 4242, "started_at": "2026-01-15T09:00:00-05:00", **figures}


def disk(free: int, total: int = 50 * GB) -> dict[str, Any]:
    return host(disk_free_bytes=free, disk_total_bytes=total)


MEMORY = 100 * 2**24  # 1.6 GB, a whole number of bytes in each percent


def memory(available: int, total: int = MEMORY) -> dict[str, Any]:
    return host(memory_available_bytes=available, memory_total_bytes=total)


def only(*names: str) -> None:
    """Every default rule off except ``names`` (on)."""
    AlertRule.objects.exclude(name__in=names).update(enabled=False)
    AlertRule.objects.filter(name__in=names).update(enabled=True)


def alerts(source: str | None = None) -> list[Alert]:
    qs = Alert.objects.order_by("pk")
    return list(qs.filter(source=source) if source else qs)


def judge(bot: Bot, now: dt.datetime, since: dt.datetime | None = None) -> list[Alert]:
    """What the state moment finds for heartbeats from ``since`` (default: ``now``) on."""
    return evaluate_state(bot.pk, since or now, now=now)


def realized(bot: Bot, *amounts: str, when: dt.datetime, start: int = 1) -> list[int]:
    trades = [
        stored_trade(start + i, side="SELL", pnl=Decimal(amount), executed_at=when)
        for i, amount in enumerate(amounts)
    ]
    return Trade.objects.record_batch(bot, trades).ids


# --- the daily losses with open positions -------------------------------------------------


def test_an_open_loss_with_no_realized_loss_halts_on_the_heartbeat_that_crosses(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    only("max-daily-loss")  # -1000, halts
    with django_capture_on_commit_callbacks(execute=True):
        beat(api, positions=[position("AAPL", "100", "50", "41")])  # -900: not yet
    (task,) = queued()
    assert (task.func(), task.args()) == ("alerts.tasks.evaluate_state", (bot.pk,))
    evaluate_state_task(*task.args())
    assert not TradingHalt.objects.exists()
    assert api.get("/api/v1/status/").json()["trading_allowed"] is True
    clear_queue()
    with django_capture_on_commit_callbacks(execute=True):
        beat(api, positions=[position("AAPL", "100", "50", "35")])  # -1,500 open, nothing realized
    (task,) = queued()
    evaluate_state_task(*task.args())
    status = api.get("/api/v1/status/").json()
    assert status["trading_allowed"] is False
    day = timezone.now().astimezone(NY).date()
    assert f"max daily loss: day P&L -1,500.00 on {day} (open positions -1,500.00)" in status["reason"]
    (alert,) = alerts("max_daily_loss")
    assert alert.title == f"alpha: day P&L -1,500.00 on {day} (open positions -1,500.00)"
    assert ["Realized", "0.00"] in alert.fields and ["Open positions", "-1,500.00"] in alert.fields
    assert ["Day P&L", "-1,500.00"] in alert.fields and ["Limit", "-1,000.00"] in alert.fields
    assert "Trading is halted until" in alert.message


def test_the_alert_says_how_much_of_the_day_is_open(bot: Bot, api: APIClient) -> None:
    only("max-daily-loss")
    realized(bot, "-20", when=at(10))
    beat(api, at(11), positions=[position("AAPL", "100", "50", "35")])
    (alert,) = judge(bot, at(11))
    assert alert.title == "alpha: day P&L -1,520.00 on 2026-01-15 (open positions -1,500.00)"
    assert [["Realized", "-20.00"], ["Open positions", "-1,500.00"], ["Day P&L", "-1,520.00"]] == [
        field for field in alert.fields if field[0] in ("Realized", "Open positions", "Day P&L")
    ]
    halt = TradingHalt.objects.get()
    assert halt.reason == "max daily loss: day P&L -1,520.00 on 2026-01-15 (open positions -1,500.00)"


@pytest.mark.parametrize(
    ("realized_pnl", "positions", "breached"),
    [
        ("0", [position("AAPL", "100", "50", "40")], True),  # -1,000.00 open: the limit exactly
        ("0", [position("AAPL", "1", "1000", "0.01")], False),  # -999.99: one cent short
        ("-400", [position("AAPL", "100", "50", "44")], True),  # -400 realized + -600 open
        ("-400", [position("AAPL", "1", "600", "0.01")], False),  # -400 + -599.99
        ("-1000", [], True),  # flat: realized alone reaches it
    ],
)
def test_the_limit_exactly_reached_is_breached_and_one_cent_short_is_not(
    bot: Bot, api: APIClient, realized_pnl: str, positions: list[dict[str, Any]], breached: bool
) -> None:
    only("max-daily-loss")
    if realized_pnl != "0":
        realized(bot, realized_pnl, when=at(10))
    beat(api, at(11), positions=positions)
    judge(bot, at(11))
    assert TradingHalt.objects.exists() is breached
    assert len(alerts()) == int(breached)


def test_a_bot_that_reports_no_positions_is_judged_on_realized_pnl_alone(bot: Bot, api: APIClient) -> None:
    only("daily-loss-warning")  # -500
    # Positions yesterday only; today the heartbeats carry host figures, no positions.
    beat(api, at(15, day=YESTERDAY), positions=[position("AAPL", "100", "50", "30")])
    beat(api, at(11), host=disk(20 * GB))
    assert day_pnl(bot, DAY) is None
    assert judge(bot, at(11)) == []  # yesterday's -2,000 open is not today's
    evaluate_trades(bot.pk, realized(bot, "-500", when=at(11, 5)), now=at(11, 5))
    (alert,) = alerts()
    assert alert.title == "alpha: realized P&L -500.00 on 2026-01-15"
    assert ["Realized P&L", "-500.00"] in alert.fields
    assert not any(name == "Open positions" for name, _ in alert.fields)


def test_a_rule_scoped_to_a_strategy_judges_its_realized_pnl_alone(bot: Bot, api: APIClient) -> None:
    only()
    AlertRule.objects.create(name="momentum-loss", kind="daily_loss", threshold=-500, strategy="momentum")
    beat(api, at(11), positions=[position("AAPL", "100", "50", "30")])  # -2,000 open
    assert judge(bot, at(11)) == []
    trade = stored_trade(1, side="SELL", pnl=Decimal("-500"), executed_at=at(11), strategy="momentum")
    evaluate_trades(bot.pk, Trade.objects.record_batch(bot, [trade]).ids, now=at(11, 1))
    (alert,) = alerts()
    assert alert.title == "alpha: realized P&L -500.00 on 2026-01-15"
    assert ["Scope", "strategy momentum"] in alert.fields


def test_a_second_crossing_within_the_cooldown_does_not_alert_again(bot: Bot, api: APIClient) -> None:
    only("daily-loss-warning")  # -500, cooldown 60 minutes
    beat(api, at(11), positions=[position("AAPL", "100", "50", "44")])  # -600
    assert len(judge(bot, at(11))) == 1
    beat(api, at(11, 10), positions=[position("AAPL", "100", "50", "46")])  # -400: back above
    assert judge(bot, at(11, 10)) == []
    beat(api, at(11, 20), positions=[position("AAPL", "100", "50", "40")])  # -1,000: crosses again
    assert judge(bot, at(11, 20)) == []
    assert evaluate_schedule(now=at(11, 59)) == []
    (again,) = evaluate_schedule(now=at(12, 0))  # still breached when the cooldown ends
    assert "-1,000.00" in again.title


# --- day_pnl: positions carried over, opened and closed -----------------------------------


@pytest.mark.parametrize(
    ("morning_at", "counts_as_morning"),
    [
        (at(23, 59, 59, day=YESTERDAY), True),  # 04:59:59 UTC today: still yesterday in New York
        (at(0, 0, 0), False),  # the market's midnight: within today, not this morning's
    ],
)
def test_day_pnl_counts_what_a_position_carried_over_from_yesterday_moved_today(
    bot: Bot, api: APIClient, morning_at: dt.datetime, counts_as_morning: bool
) -> None:
    beat(api, morning_at, positions=[position("AAPL", "10", "100", "90")])  # -100 unrealized
    beat(api, at(11), positions=[position("AAPL", "10", "100", "85")])  # -150 unrealized
    found = day_pnl(bot, DAY)
    assert found is not None and found.as_of == at(11)
    assert found.realized == 0 and found.unrealized == Decimal("-150")
    if counts_as_morning:
        assert (found.unrealized_before, found.open_part, found.total) == (-100, -50, -50)
    else:
        assert (found.unrealized_before, found.open_part, found.total) == (0, -150, -150)
    # The rule judges the same figure: -50 is above a -100 limit, -150 is not.
    only()
    AlertRule.objects.create(name="tight", kind="daily_loss", threshold=-100)
    assert len(judge(bot, at(11))) == int(not counts_as_morning)


def test_day_pnl_counts_all_of_a_position_opened_today(bot: Bot, api: APIClient) -> None:
    beat(api, at(20, day=YESTERDAY), positions=[])  # flat last night
    realized(bot, "25", when=at(10))
    beat(api, at(11), positions=[position("MSFT", "-20", "400", "410"), position("AAPL", "5", "100", "104")])
    found = day_pnl(bot, DAY)
    assert found is not None
    # A short loses as the price rises: -20 x 10 = -200; the long gains 5 x 4 = 20.
    assert (found.realized, found.unrealized, found.unrealized_before) == (25, -180, 0)
    assert (found.open_part, found.total) == (-180, -155)


def test_day_pnl_of_a_position_closed_today_is_its_realized_pnl_less_the_mornings_unrealized(
    bot: Bot, api: APIClient
) -> None:
    beat(api, at(20, day=YESTERDAY), positions=[position("AAPL", "10", "100", "90")])  # -100 last night
    realized(bot, "-120", when=at(10))  # closed at 88: -120 since entry, as the bot reports a fill's pnl
    beat(api, at(10, 1), positions=[])  # flat
    found = day_pnl(bot, DAY)
    assert found is not None
    assert (found.realized, found.unrealized, found.unrealized_before) == (-120, 0, -100)
    assert found.total == -20  # what the day itself lost: from 90 to 88 on 10 shares


def test_one_day_pnl_per_bot_and_day_in_a_pass(bot: Bot, api: APIClient) -> None:
    only("daily-loss-warning", "max-daily-loss")
    beat(api, at(11), positions=[position("AAPL", "100", "50", "49")])
    with mock.patch("alerts.rules.daily_loss.day_pnl", wraps=day_pnl) as counted:
        evaluate_schedule(now=at(11, 1))
        assert counted.call_count == 1
        judge(bot, at(11, 2))
        assert counted.call_count == 2


# --- the state moment: one evaluation for a burst of heartbeats ---------------------------


def test_a_burst_of_heartbeats_queues_one_evaluation_that_judges_the_newest_state(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    only("daily-loss-warning")
    with django_capture_on_commit_callbacks(execute=True):
        beat(api, status="no state")  # a heartbeat without state queues nothing
    assert queued() == []
    with django_capture_on_commit_callbacks(execute=True):
        for market_price in ("49", "48", "47", "44"):  # the last one: -600
            beat(api, positions=[position("AAPL", "100", "50", market_price)])
    (task,) = queued()
    assert task.args() == (bot.pk,)
    evaluate_state_task(*task.args())
    (alert,) = alerts()
    assert "-600.00" in alert.title
    # That evaluation has run: the next heartbeat with state queues one of its own.
    with django_capture_on_commit_callbacks(execute=True):
        beat(api, host=disk(20 * GB))
    assert len(queued()) == 2


def test_no_rule_judged_on_the_state_queues_nothing(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    only("trade-frequency", "bot-stopped")
    with django_capture_on_commit_callbacks(execute=True):
        beat(api, positions=[position("AAPL", "100", "50", "10")], host=disk(1))
    assert queued() == [] and not PendingStateEvaluation.objects.exists()


def test_a_lost_state_evaluation_is_made_up_for_by_the_schedule(
    bot: Bot, api: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    only("max-daily-loss")
    # 23:59:59 in New York: the snapshot belongs to Thursday, judged after the market's midnight.
    late = at(23, 59, 59)
    with clock(late), django_capture_on_commit_callbacks(execute=True):
        beat(api, late, positions=[position("AAPL", "100", "50", "35")])
    assert PendingStateEvaluation.objects.get().since == late
    clear_queue()  # the task was lost
    evaluate_schedule(now=late + PendingStateEvaluation.STALE + SECOND)
    assert TradingHalt.objects.get().trading_day == DAY
    assert not PendingStateEvaluation.objects.exists()


# --- host disk ------------------------------------------------------------------------


def test_disk_free_exactly_at_the_threshold_is_not_below_it(bot: Bot, api: APIClient) -> None:
    only("host-disk")  # 10%, critical
    beat(api, at(11), host=disk(5 * GB))  # 10.00% of 50 GB
    assert judge(bot, at(11)) == []
    beat(api, at(11, 1), host=disk(5 * GB - 1))  # one byte less
    (alert,) = judge(bot, at(11, 1))
    assert (alert.source, alert.level, alert.subject) == ("host_disk", "critical", f"bot-{bot.pk}:disk")
    assert alert.title == "alpha's host: disk 10.0% free (5.0 GB of 50.0 GB)"
    assert ["Limit", "10.0%"] in alert.fields


def test_the_words_of_a_low_disk(bot: Bot, api: APIClient) -> None:
    only("host-disk")
    beat(api, at(11), host=disk(int(Decimal("3.1") * GB)))
    (alert,) = judge(bot, at(11))
    assert alert.title == "alpha's host: disk 6.2% free (3.1 GB of 50.0 GB)"


def test_a_disk_hovering_at_the_threshold_alerts_once_until_clearly_back(bot: Bot, api: APIClient) -> None:
    only("host-disk")  # 10%: over once back at 12% free
    minute = 0
    for free in (4.9, 5.1, 4.9, 5.9, 4.8, 5.99):  # 9.8%, 10.2%, ... 11.98%: never clearly back
        minute += 1
        beat(api, at(11, minute), host=disk(int(free * GB)))
        judge(bot, at(11, minute))
    assert len(alerts()) == 1
    beat(api, at(11, 10), host=disk(6 * GB))  # 12%: over, silently
    assert judge(bot, at(11, 10)) == []
    beat(api, at(11, 11), host=disk(int(4.9 * GB)))  # below again: a new breach
    assert len(judge(bot, at(11, 11))) == 1


def test_a_low_disk_repeats_once_per_cooldown_and_is_judged_on_the_schedule(bot: Bot, api: APIClient) -> None:
    only("host-disk")  # cooldown 60 minutes
    beat(api, at(11), host=disk(GB))
    assert len(evaluate_schedule(now=at(11, 0, 30))) == 1
    beat(api, at(11, 30), host=disk(GB))
    assert judge(bot, at(11, 30)) == []
    beat(api, at(12, 0), host=disk(GB))
    assert len(evaluate_schedule(now=at(12, 0, 30))) == 1
    # Figures older than half an hour are not judged: a silent bot's old disk does not page forever.
    assert evaluate_schedule(now=at(13, 30, 31)) == []


def rising_use(api: APIClient, first_free: int, last_free: int, total: int = 1000 * GB) -> None:
    """A day of snapshots: free space from ``first_free`` 24 hours ago to ``last_free`` now."""
    beat(api, at(11, day=YESTERDAY), host=disk(first_free, total))
    beat(api, at(20, day=YESTERDAY), host=disk((first_free + last_free) // 2, total))
    beat(api, at(11), host=disk(last_free, total))


@pytest.mark.parametrize(
    ("first_free", "warned"),
    [
        (400 * GB, True),  # fell 200 GB in 24 h, 200 GB left: full in exactly 24 hours
        (400 * GB - 1, False),  # one byte less fell: full a moment after 24 hours
    ],
)
def test_the_disk_filling_within_24_hours_warns_at_its_boundary(
    bot: Bot, api: APIClient, first_free: int, warned: bool
) -> None:
    only("host-disk")
    rising_use(api, first_free, 200 * GB)  # 20% free: not low
    found = judge(bot, at(11))
    assert len(found) == int(warned)
    if warned:
        (alert,) = found
        assert (alert.source, alert.level) == ("host_disk_filling", "warning")
        assert alert.subject == f"bot-{bot.pk}:disk-filling"
        assert alert.title == "alpha's host: disk fills in about 1 d"


def test_the_filling_warning_and_the_low_disk_are_open_together(bot: Bot, api: APIClient) -> None:
    only("host-disk")
    rising_use(api, 150 * GB, 50 * GB)  # 5% free, and full within 12 hours
    assert sorted(alert.source for alert in judge(bot, at(11))) == ["host_disk", "host_disk_filling"]
    # It stops falling (110 GB free, more than 100 GB at 20:00 yesterday): the warning is over; at
    # 11% free the low disk is above its threshold but not clearly back (12%), so it stays open.
    beat(api, at(11, 30), host=disk(110 * GB, 1000 * GB))
    judge(bot, at(11, 30))
    assert list(Condition.objects.filter(active=True).values_list("subject", flat=True)) == [
        f"bot-{bot.pk}:disk"
    ]


def test_an_hour_of_history_is_too_little_to_tell_a_rate(bot: Bot, api: APIClient) -> None:
    only("host-disk")
    beat(api, at(10, 1), host=disk(400 * GB, 1000 * GB))
    beat(api, at(11), host=disk(200 * GB, 1000 * GB))  # would be full in 2 hours
    assert judge(bot, at(11)) == []
    beat(api, at(11, 1), host=disk(200 * GB - 1, 1000 * GB))  # an hour of history now
    assert [alert.source for alert in judge(bot, at(11, 1))] == ["host_disk_filling"]


# --- host memory ----------------------------------------------------------------------


def test_memory_available_exactly_at_the_threshold_is_not_below_it(bot: Bot, api: APIClient) -> None:
    only("host-memory")  # 10%, warning; over once back at 12%
    percent = MEMORY // 100
    beat(api, at(11), host=memory(10 * percent))
    assert judge(bot, at(11)) == []
    beat(api, at(11, 1), host=memory(10 * percent - 1))
    (alert,) = judge(bot, at(11, 1))
    assert (alert.source, alert.level) == ("host_memory", "warning")
    assert alert.subject == f"bot-{bot.pk}:memory"
    assert alert.title == "alpha's host: memory 10.0% available (160.0 MB of 1.6 GB)"
    # One byte short of 12%: still open, so the next dip is no new alert.
    beat(api, at(11, 2), host=memory(12 * percent - 1))
    judge(bot, at(11, 2))
    beat(api, at(11, 3), host=memory(5 * percent))
    assert judge(bot, at(11, 3)) == []
    # 12% exactly: over (silently), and the next dip alerts.
    beat(api, at(11, 4), host=memory(12 * percent))
    assert judge(bot, at(11, 4)) == []
    beat(api, at(11, 5), host=memory(5 * percent))
    assert len(judge(bot, at(11, 5))) == 1


def test_the_host_rules_are_seeded_on() -> None:
    seeded = AlertRule.objects.filter(name__in=["host-disk", "host-memory", "bot-restart"]).order_by("name")
    assert [(r.name, r.kind, r.threshold, r.level, r.enabled) for r in seeded] == [
        ("bot-restart", "bot_restart", None, "warning", True),
        ("host-disk", "host_disk", 10, "critical", True),
        ("host-memory", "host_memory", 10, "warning", True),
    ]
    assert all(rule.problems == {} for rule in seeded)


# --- restarts -------------------------------------------------------------------------


def process(pid: int, started: dt.datetime) -> dict[str, Any]:
    return {"pid": pid, "started_at": started.isoformat(), "rss_bytes": 50_000_000}


def shutdown(api: APIClient, occurred: dt.datetime) -> None:
    body = {"kind": "shutdown", "level": "info", "message": "bye", "occurred_at": occurred.isoformat()}
    with clock(occurred):
        assert api.post("/api/v1/events/", body, format="json").status_code == 201


def test_a_new_process_without_a_shutdown_is_a_restart(bot: Bot, api: APIClient) -> None:
    only("bot-restart")
    beat(api, at(9, 30), host=process(100, at(9)))
    beat(api, at(10), host=process(100, at(9)))
    assert judge(bot, at(10)) == []  # the same process: nothing
    beat(api, at(10, 5), host=process(200, at(10, 4)))
    (alert,) = judge(bot, at(10, 5))
    assert (alert.source, alert.level, alert.title) == ("bot_restart", "warning", "alpha restarted")
    assert ["Previous process", "pid 100"] in alert.fields and ["New process", "pid 200"] in alert.fields
    # The same restart is not news again: not on the next heartbeat, nor after the cooldown.
    beat(api, at(10, 6), host=process(200, at(10, 4)))
    assert judge(bot, at(10, 6)) == []
    assert evaluate_schedule(now=at(11, 5)) == [] and evaluate_schedule(now=at(12, 30)) == []


def test_a_restart_after_a_shutdown_says_nothing(bot: Bot, api: APIClient) -> None:
    only("bot-restart")
    beat(api, at(10), host=process(100, at(9)))
    shutdown(api, at(10, 1))
    beat(api, at(10, 5), host=process(200, at(10, 4)))
    assert judge(bot, at(10, 5)) == []


@pytest.mark.parametrize(
    ("shutdown_at", "restarted"),
    [
        (at(9, 59, 31), False),  # within the heartbeat in flight before the old process's last one
        (at(9, 59, 30), True),  # older: a shutdown of an earlier process, not of this one
    ],
)
def test_a_shutdown_counts_from_just_before_the_old_processs_last_heartbeat(
    bot: Bot, api: APIClient, shutdown_at: dt.datetime, restarted: bool
) -> None:
    only("bot-restart")
    beat(api, at(9, 50), host=process(100, at(9)))
    shutdown(api, shutdown_at)
    beat(api, at(10), host=process(100, at(9)))
    beat(api, at(10, 5), host=process(200, at(10, 4)))
    assert len(judge(bot, at(10, 5))) == int(restarted)


def test_a_container_restart_keeps_its_pid_and_changes_its_start(bot: Bot, api: APIClient) -> None:
    only("bot-restart")
    beat(api, at(10), host=process(1, at(9)))
    beat(api, at(10, 5), host=process(1, at(10, 4)))
    assert [alert.title for alert in judge(bot, at(10, 5))] == ["alpha restarted"]


def test_a_crash_loop_alerts_once_per_cooldown(bot: Bot, api: APIClient) -> None:
    only("bot-restart")  # cooldown 60 minutes
    beat(api, at(9), host=process(100, at(8)))
    raised = []
    for n in range(1, 13):  # a restart every 10 minutes for two hours
        when = at(9) + dt.timedelta(minutes=10 * n)
        beat(api, when, host=process(100 + n, when))
        raised += judge(bot, when)
    assert len(raised) == 2  # 09:10, and 10:10 when the cooldown had passed
    # Quiet for a whole cooldown: over; the next restart alerts again.
    assert evaluate_schedule(now=at(12, 0)) == []
    beat(api, at(12, 5), host=process(999, at(12, 4)))
    assert len(judge(bot, at(12, 5))) == 1


def test_a_late_heartbeat_of_the_old_process_does_not_make_a_restart_alert_twice(
    bot: Bot, api: APIClient
) -> None:
    only("bot-restart")
    beat(api, at(9, 30), host=process(100, at(9)))
    beat(api, at(10), host=process(100, at(9)))
    beat(api, at(10, 5), host=process(200, at(10, 4)))
    assert [a.title for a in judge(bot, at(10, 5))] == ["alpha restarted"]
    beat(api, at(10, 5, 10), host=process(100, at(9)))  # the old process's heartbeat in flight
    assert judge(bot, at(10, 5, 10)) == []
    beat(api, at(10, 6), host=process(200, at(10, 4)))
    assert judge(bot, at(10, 6)) == []


def test_two_processes_on_one_key_alert_once_per_cooldown_not_at_each_change(
    bot: Bot, api: APIClient
) -> None:
    only("bot-restart")
    beat(api, at(9, 0), host=process(100, at(8)))
    beat(api, at(9, 30), host=process(100, at(8)))
    raised = []
    for n in range(20):  # a worker with its own Monitor on the bot's key: two processes beating
        when = at(10) + dt.timedelta(seconds=30 * n)
        pid, started = (200, at(9, 59)) if n % 2 == 0 else (100, at(8))
        beat(api, when, host=process(pid, started))
        raised += judge(bot, when)
    assert len(raised) == 1, [a.title for a in raised]
