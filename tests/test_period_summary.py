"""A period's performance figures: hand-computed values, the API, the command and the weekly report."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from io import StringIO
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from alerts.models import Alert, Channel, SummarySchedule
from alerts.summary import send_weekly_if_due
from tests.alert_fixtures import *  # noqa: F403  (the discord, channel and fast_http fixtures)
from tests.conftest import stored_trade
from tests.discord_server import DiscordServer
from trades import market
from trades.models import Bot, Trade
from trades.summary import DayPnl, Drawdown, max_drawdown, performance_lines, pnl_units

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
D = dt.date


def day(d: int) -> dt.date:
    return dt.date(2026, 1, d)


# (day of January 2026, symbol, strategy, P&L); 10:00 New York, one trading day each.
# Cumulative P&L by day: 5th +70 → 70; 6th +50 → 120 (peak); 7th -100 → 20; 8th -40 → -20
# (trough: a 140 drawdown from the 6th); 9th +150 → 130 (recovered); 12th -60 → 70 (a 60
# drawdown from the 9th, still open); 13th break-even → 70. Trade by trade (fill n at 10:n):
# 100 (0), 70 (1), 120 (2, peak), 40 (3), 20 (4), -20 (6, trough), 70 (7), 130 (8, recovered),
# 70 (9), 70 (10).
FILLS = [
    (5, "AAPL", "momentum", "100"),
    (5, "MSFT", "momentum", "-30"),
    (6, "AAPL", "momentum", "50"),
    (7, "TSLA", "meanrev", "-80"),
    (7, "AAPL", "momentum", "-20"),
    (7, "MSFT", "momentum", None),  # an opening fill: a trade, not a closed one
    (8, "TSLA", "meanrev", "-40"),
    (9, "MSFT", "meanrev", "90"),
    (9, "AAPL", "momentum", "60"),
    (12, "AAPL", "momentum", "-60"),
    (13, "TSLA", "meanrev", "0"),
]


def at(n: int) -> tuple[dt.datetime, dt.date]:
    """When FILLS[n] was executed, and its trading day."""
    d = FILLS[n][0]
    return dt.datetime(2026, 1, d, 10, n, tzinfo=NY), day(d)


def drawdown(
    amount: str,
    peak: tuple[dt.datetime, dt.date] | None,
    trough: tuple[dt.datetime, dt.date],
    recovered: tuple[dt.datetime, dt.date] | None,
) -> Drawdown:
    """A drawdown from the (time, trading day) of its peak, trough and recovery."""
    none = (None, None)
    return Drawdown(Decimal(amount), *(peak or none), *trough, *(recovered or none))


@pytest.fixture
def fills(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(
                n,
                symbol=symbol,
                strategy=strategy,
                pnl=None if pnl is None else Decimal(pnl),
                executed_at=dt.datetime(2026, 1, d, 10, n, tzinfo=NY),
            )
            for n, (d, symbol, strategy, pnl) in enumerate(FILLS)
        ],
    )


def test_figures_match_hand_computed_ones_with_a_drawdown_inside_the_period(bot: Bot, fills: None) -> None:
    summary = Trade.objects.period_summary(day(5), day(13))
    p = summary.overall
    assert (p.total_trades, p.closed_trades, p.wins, p.losses) == (11, 10, 4, 5)
    assert p.total_pnl == Decimal("70")
    assert p.win_rate == 40.0
    assert p.average_win == Decimal("75")  # (100 + 50 + 90 + 60) / 4
    assert p.average_loss == Decimal("-46")  # (-30 - 80 - 20 - 40 - 60) / 5
    assert p.profit_factor == 1.3043  # 300 / 230 = 1.30434..., four places
    assert p.expectancy == Decimal("7")  # 70 over 10 closed trades
    assert p.max_drawdown == drawdown("140", at(2), at(6), at(8))
    assert p.best_day == DayPnl(day(9), Decimal("150"), Decimal("130"))
    assert p.worst_day == DayPnl(day(7), Decimal("-100"), Decimal("20"))
    assert [(d.date.day, d.pnl, d.cumulative) for d in summary.days] == [
        (5, 70, 70),
        (6, 50, 120),
        (7, -100, 20),
        (8, -40, -20),
        (9, 150, 130),
        (12, -60, 70),
        (13, 0, 70),
    ]


def test_the_cockpits_figures_without_a_breakdown_are_the_same(bot: Bot, fills: None) -> None:
    full = Trade.objects.for_bot(bot).period_summary(day(5), day(13))
    cockpit = Trade.objects.for_bot(bot).period_summary(day(5), day(13), breakdown=False)
    assert (cockpit.overall, cockpit.days) == (full.overall, full.days)
    assert cockpit.by_strategy == {} and cockpit.by_symbol == {}


def test_a_one_day_period_counts_that_day_alone(bot: Bot, fills: None) -> None:
    one = Trade.objects.period_summary(day(9), day(9))
    assert [(d.date, d.pnl) for d in one.days] == [(day(9), Decimal("150"))]
    assert one.overall.total_pnl == Decimal("150")


def test_breakdown_per_strategy_and_symbol(bot: Bot, fills: None) -> None:
    summary = Trade.objects.period_summary(day(5), day(13))
    assert list(summary.by_strategy) == ["meanrev", "momentum"]
    momentum = summary.by_strategy["momentum"]
    # +100 -30 +50 -20 +60 -60 = 100; trades: 100, 70, 120, 100, 160 (peak 9th), 100 (open)
    assert (momentum.total_trades, momentum.closed_trades, momentum.total_pnl) == (7, 6, Decimal("100"))
    assert momentum.win_rate == 50.0
    assert momentum.profit_factor == 1.9091  # 210 / 110 = 1.90909...
    assert momentum.max_drawdown == drawdown("60", at(8), at(9), None)
    meanrev = summary.by_strategy["meanrev"]
    # -80 -40 +90 0 = -30: falls from the start (no peak day) to -120 on the 8th, never recovers
    assert (meanrev.total_pnl, meanrev.wins, meanrev.losses, meanrev.win_rate) == (Decimal("-30"), 1, 2, 25.0)
    assert meanrev.profit_factor == 0.75
    assert meanrev.max_drawdown == drawdown("120", None, at(6), None)
    assert summary.by_symbol["AAPL"].total_pnl == Decimal("130")
    assert summary.by_symbol["TSLA"].average_win is None  # no winning TSLA trade
    assert summary.by_symbol["MSFT"].total_trades == 3


def test_a_drawdown_still_open_at_the_period_end(bot: Bot, fills: None) -> None:
    p = Trade.objects.period_summary(day(9), day(13)).overall
    # 150 (peak on the 9th), 90, 90: down 60 and not recovered by the 13th
    assert p.total_pnl == Decimal("90")
    assert p.max_drawdown == drawdown("60", at(8), at(9), None)


def test_a_drawdown_from_the_period_start_has_no_peak_day(bot: Bot, fills: None) -> None:
    p = Trade.objects.period_summary(day(7), day(8)).overall
    assert p.max_drawdown == drawdown("140", None, at(6), None)
    assert p.profit_factor == 0.0  # no gross profit over a gross loss of 140
    assert p.best_day == DayPnl(day(8), Decimal("-40"), Decimal("-140"))


def test_a_period_without_closed_trades_has_nulls_not_zero_divisions(bot: Bot, fills: None) -> None:
    only_opening = Trade.objects.filter(pnl__isnull=True)
    p = only_opening.period_summary(day(5), day(13)).overall
    assert (p.total_trades, p.closed_trades, p.total_pnl) == (1, 0, Decimal(0))
    assert p.win_rate is p.average_win is p.average_loss is p.profit_factor is p.expectancy is None
    assert p.max_drawdown is p.best_day is p.worst_day is None
    empty = Trade.objects.period_summary(day(14), day(16))
    assert empty.overall.total_trades == 0 and empty.days == () and empty.by_strategy == {}


def test_gains_only_have_a_zero_drawdown_and_no_profit_factor(bot: Bot, fills: None) -> None:
    p = Trade.objects.period_summary(day(9), day(9)).overall
    assert p.max_drawdown == Drawdown(Decimal(0))
    assert p.profit_factor is None  # no loss: infinite, shown as null


@pytest.mark.parametrize("by", [(), ("strategy",)], ids=["per-day", "per-strategy"])
def test_the_cockpit_figures_read_the_index_not_the_table(bot: Bot, fills: None, by: tuple[str, ...]) -> None:
    with CaptureQueriesContext(connection) as queries:
        Trade.objects.for_bot(bot).figures_per_day(day(5), day(13), by=by)
    sql, params = queries.captured_queries[0]["sql"], ()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            # Either (bot, trading day, ...) index that covers it; per strategy, in the order grouped.
            assert "COVERING INDEX trade_bot_day_" in plan and "TEMP B-TREE" not in plan, plan
        else:
            # PostgreSQL picks by cost, and a sequential scan is cheapest on a test's few rows:
            # the question is whether the (bot, day, time, id, pnl) index answers. Whether it reads the
            # table's pages too depends on the visibility map (set by VACUUM, which cannot run in
            # the test's transaction), so an index scan of it, plain or bitmap, is the answer.
            # On a test's few rows its planner chooses freely among the bot's and the day's indexes
            # (each run differently): what holds is that an index answers, never a table scan.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("ANALYZE trades_trade")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = " ".join(str(row[0]) for row in cursor.fetchall())
            assert "Seq Scan" not in plan and " on trades_trade" in plan, plan


# --- the default period -----------------------------------------------------------------


def test_default_period_is_the_last_30_trading_days() -> None:
    # 2026-01-16 back 30 sessions: skips weekends, New Year's Day and Christmas.
    start, end = market.period(None, day(16))
    assert end == day(16)
    sessions = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    assert sum(market.is_trading_day(s) for s in sessions) == 30
    assert market.is_trading_day(start)
    assert start == dt.date(2025, 12, 4)  # 11 sessions in January, 19 from December 4th


def test_last_trading_day_of_the_week() -> None:
    assert market.is_last_trading_day_of_week(day(9))  # a Friday
    assert not market.is_last_trading_day_of_week(day(8))
    # Good Friday 2026 is April 3: the week ends on Thursday
    assert market.is_last_trading_day_of_week(D(2026, 4, 2))
    assert not market.is_last_trading_day_of_week(D(2026, 4, 3))


# --- the API ----------------------------------------------------------------------------


def test_api_answers_the_same_figures(api: APIClient, bot: Bot, fills: None) -> None:
    response = api.get("/api/v1/summary/period/?start=2026-01-05&end=2026-01-13")
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["start"] == "2026-01-05" and body["end"] == "2026-01-13"
    assert body["total_pnl"] == 70 and body["win_rate"] == 40.0 and body["profit_factor"] == 1.3043
    # Times in UTC: New York's 10:02 is 15:02 in January.
    assert body["max_drawdown"] == {
        "amount": 140,
        "peak_at": "2026-01-06T15:02:00Z",
        "peak_day": "2026-01-06",
        "trough_at": "2026-01-08T15:06:00Z",
        "trough_day": "2026-01-08",
        "recovered_at": "2026-01-09T15:08:00Z",
        "recovered_day": "2026-01-09",
    }
    assert body["best_day"] == {"date": "2026-01-09", "pnl": 150, "cumulative": 130}
    meanrev = body["by_strategy"]["meanrev"]["max_drawdown"]
    assert meanrev["peak_at"] is meanrev["peak_day"] is meanrev["recovered_at"] is None
    assert len(body["days"]) == 7


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start=2026-13-01", "start"),
        ("end=yesterday", "end"),
        ("start=2026-01-09&end=2026-01-08", "end"),
        # Outside the years the market calendar is built for (a 500 from pandas before).
        ("end=1999-12-31", "end"),
        ("end=0001-01-01", "end"),
        ("start=2200-01-01", "start"),
        ("start=2000-01-03&end=2003-01-06", "end"),  # one day over the longest period
    ],
)
def test_api_refuses_bad_dates_naming_the_field(api: APIClient, query: str, field: str) -> None:
    response = api.get(f"/api/v1/summary/period/?{query}")
    assert response.status_code == 400
    assert list(json.loads(response.content)["errors"]) == [field]


@pytest.mark.parametrize(
    "query", ["start=2000-01-03&end=2000-01-10", "end=2199-12-31", "start=2002-01-04&end=2005-01-06"]
)
def test_api_takes_days_at_the_edges_of_its_years(api: APIClient, query: str) -> None:
    assert api.get(f"/api/v1/summary/period/?{query}").status_code == 200


def test_api_end_equal_to_start_is_one_day(api: APIClient, bot: Bot, fills: None) -> None:
    body = json.loads(api.get("/api/v1/summary/period/?start=2026-01-09&end=2026-01-09").content)
    assert body["total_pnl"] == 150 and body["total_trades"] == 2


def test_api_default_period(api: APIClient) -> None:
    body = json.loads(api.get("/api/v1/summary/period/").content)
    assert (D.fromisoformat(body["start"]), D.fromisoformat(body["end"])) == market.period()


def test_openapi_documents_the_period_endpoint() -> None:
    schema = json.loads(APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").content)
    operation = schema["paths"]["/api/v1/summary/period/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"start", "end"}
    # Its own answers, and the error answers every read operation documents (trades.schema).
    assert set(operation["responses"]) == {"200", "400", "401", "404", "406", "413"}
    error = operation["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error.endswith("/Error")
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
    assert {"profit_factor", "expectancy", "max_drawdown", "best_day", "by_strategy"} <= set(properties)


# --- the command and the reports --------------------------------------------------------


def test_command_prints_the_figures(bot: Bot, fills: None) -> None:
    out = StringIO()
    args = ("--start", "2026-01-05", "--end", "2026-01-13", "--bot", "alpha")
    call_command("period_summary", *args, stdout=out)
    text = out.getvalue()
    assert "Performance of alpha, trading days 2026-01-05 to 2026-01-13" in text
    assert "Realized P&L: 70.00" in text
    assert "Profit factor: 1.30" in text
    assert "Max drawdown: -140.00" in text
    assert "Drawdown began: 2026-01-06 10:02:00 EST" in text
    assert "Drawdown bottomed: 2026-01-08 10:06:00 EST" in text
    assert "Drawdown recovered: 2026-01-09 10:08:00 EST" in text
    assert "Best day: Fri 2026-01-09 150.00" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-02-30"], "--start must be YYYY-MM-DD"),
        (["--start", "2026-01-09", "--end", "2026-01-08"], "--end (2026-01-08) is before --start"),
        (["--bot", "nobody"], "No bot named 'nobody'"),
        # The API's rules too, as the report page has them: its years and its longest period.
        (["--end", "2200-01-01"], "--end: Must be a day in the years 2000 to 2199."),
        (["--start", "2000-01-03", "--end", "2003-01-06"], "--end: A period is at most 1098 days long."),
    ],
)
def test_command_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("period_summary", *args, stdout=StringIO())


def test_command_send_reaches_the_channel(
    bot: Bot, fills: None, channel: Channel, discord: DiscordServer
) -> None:
    out = StringIO()
    call_command("period_summary", "--start", "2026-01-05", "--end", "2026-01-13", "--send", stdout=out)
    assert "Sent 1 summary message(s)." in out.getvalue()
    assert discord.titles() == ["🔔 Performance: alpha, 2026-01-05 to 2026-01-13"]
    (embed,) = discord.embeds()
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Realized P&L"] == "70.00"
    assert fields["Expectancy per closed trade"] == "7.00"


def friday(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, 9, hour, minute, second, tzinfo=NY)


def test_weekly_report_goes_out_once_after_the_weeks_last_close(
    bot: Bot, fills: None, channel: Channel, discord: DiscordServer
) -> None:
    assert send_weekly_if_due(now=dt.datetime(2026, 1, 8, 17, tzinfo=NY)) == []  # Thursday
    assert send_weekly_if_due(now=friday(16, 14, 59)) == []  # a second before the time
    (alert,) = send_weekly_if_due(now=friday(16, 15))  # exactly the time
    assert alert.source == "weekly_report"
    assert send_weekly_if_due(now=friday(16, 16)) == []
    assert discord.titles() == ["🔔 Weekly report: alpha, 2026-01-05 to 2026-01-09"]
    fields = {f["name"]: f["value"] for f in discord.embeds()[0]["fields"]}
    assert fields["Realized P&L"] == "130.00"  # Monday to Friday


def test_weekly_report_switched_off_in_the_admin_sends_nothing(bot: Bot, channel: Channel) -> None:
    SummarySchedule.objects.update_or_create(pk=1, defaults={"weekly_enabled": False})
    assert send_weekly_if_due(now=friday(17)) == []
    assert not Alert.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_send_the_weekly_report_once(bot: Bot) -> None:
    SummarySchedule.current()
    results: list[int] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(len(send_weekly_if_due(now=friday(17))))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    assert Alert.objects.filter(source="weekly_report").count() == 1


# --- ties and edges ------------------------------------------------------------------------


def closed_days(bot: Bot, *pnls: str) -> list[dt.date]:
    """One closed trade a trading day from Monday January 5th 2026 on, with these P&Ls; their days."""
    days = [d for d in (day(5) + dt.timedelta(days=i) for i in range(14)) if market.is_trading_day(d)]
    days = days[: len(pnls)]
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(n, pnl=Decimal(pnl), executed_at=dt.datetime(d.year, d.month, d.day, 11, tzinfo=NY))
            for n, (d, pnl) in enumerate(zip(days, pnls, strict=True))
        ],
    )
    return days


def eleven(d: dt.date) -> tuple[dt.datetime, dt.date]:
    """The time and trading day of ``closed_days``' trade on ``d``."""
    return dt.datetime(d.year, d.month, d.day, 11, tzinfo=NY), d


def test_of_two_days_with_the_same_pnl_the_earlier_is_the_best_and_the_worst(bot: Bot) -> None:
    mon, tue, _, thu = closed_days(bot, "80", "-30", "80", "-30")
    summary = Trade.objects.period_summary(mon, thu)
    for p in (summary.overall, summary.by_strategy["momentum"], summary.by_symbol["AAPL"]):
        assert p.best_day == DayPnl(mon, Decimal("80"), Decimal("80"))
        assert p.worst_day == DayPnl(tue, Decimal("-30"), Decimal("50"))


def test_a_fall_back_exactly_to_the_peak_ends_the_drawdown_that_day(bot: Bot) -> None:
    # Cumulative: 100 (peak), 60, 100 (back exactly: recovered), 90.
    mon, tue, wed, thu = closed_days(bot, "100", "-40", "40", "-10")
    p = Trade.objects.period_summary(mon, thu).overall
    assert p.max_drawdown == drawdown("40", eleven(mon), eleven(tue), eleven(wed))
    lines = dict(performance_lines(p))
    assert lines["Max drawdown"] == "-40.00"
    assert lines["Drawdown began"] == "2026-01-05 11:00:00 EST"
    assert lines["Drawdown bottomed"] == "2026-01-06 11:00:00 EST"
    assert lines["Drawdown recovered"] == "2026-01-07 11:00:00 EST"


def test_a_break_even_day_at_the_high_keeps_the_first_day_as_the_peak(bot: Bot) -> None:
    # Cumulative: 100 (peak), 100 (a closed trade at zero), 40.
    mon, _, wed = closed_days(bot, "100", "0", "-60")
    p = Trade.objects.period_summary(mon, wed).overall
    assert p.max_drawdown == drawdown("60", eleven(mon), eleven(wed), None)


def test_a_fall_after_the_high_was_regained_is_measured_from_the_day_it_was_regained(bot: Bot) -> None:
    # Cumulative: 100 (peak), 50, 100 (regained: the first fall is over), 20 (a new, deeper fall).
    mon, _, wed, thu = closed_days(bot, "100", "-50", "50", "-80")
    p = Trade.objects.period_summary(mon, thu).overall
    assert p.max_drawdown == drawdown("80", eleven(wed), eleven(thu), None)
    lines = dict(performance_lines(p))
    assert (lines["Max drawdown"], lines["Drawdown began"]) == ("-80.00", "2026-01-07 11:00:00 EST")
    assert lines["Drawdown recovered"] == "not recovered"


def test_of_two_equally_deep_drawdowns_the_earlier_is_the_maximum(bot: Bot) -> None:
    # Cumulative: 100 (peak), 60, 120 (new high), 80: two falls of 40.
    mon, tue, wed, thu = closed_days(bot, "100", "-40", "60", "-40")
    p = Trade.objects.period_summary(mon, thu).overall
    assert p.max_drawdown == drawdown("40", eleven(mon), eleven(tue), eleven(wed))


# --- trade by trade -------------------------------------------------------------------------


def fills_on(bot: Bot, *fills: tuple[dt.datetime, str]) -> None:
    """Closed trades of ``bot`` at these times with these P&Ls (ids in the order given)."""
    Trade.objects.record_batch(
        bot, [stored_trade(n, pnl=Decimal(pnl), executed_at=when) for n, (when, pnl) in enumerate(fills)]
    )


def monday(hour: int, minute: int = 0) -> tuple[dt.datetime, dt.date]:
    return dt.datetime(2026, 1, 5, hour, minute, tzinfo=NY), day(5)


def test_a_fall_and_recovery_inside_one_day_is_the_maximum_drawdown(bot: Bot) -> None:
    # Cumulative: 100 at 10:00 (peak), -50 at 11:00 (bottom, 150 down), 150 at 12:00 (recovered).
    # Day by day the P&L only rose (+150 on Monday, +10 on Tuesday): no drawdown at all.
    fills_on(
        bot,
        (monday(10)[0], "100"),
        (monday(11)[0], "-150"),
        (monday(12)[0], "200"),
        (dt.datetime(2026, 1, 6, 10, tzinfo=NY), "10"),
    )
    summary = Trade.objects.period_summary(day(5), day(6))
    assert [d.cumulative for d in summary.days] == [150, 160]
    assert summary.overall.max_drawdown == drawdown("150", monday(10), monday(11), monday(12))
    lines = dict(performance_lines(summary.overall))
    assert lines["Max drawdown"] == "-150.00"
    assert lines["Drawdown began"] == "2026-01-05 10:00:00 EST"
    assert lines["Drawdown bottomed"] == "2026-01-05 11:00:00 EST"
    assert lines["Drawdown recovered"] == "2026-01-05 12:00:00 EST"


def test_of_two_equal_peaks_the_drawdown_began_at_the_one_it_fell_from(bot: Bot) -> None:
    # 100 at 10:00 (peak), 60 at 10:30, 100 at 11:00 (the high regained: that fall of 40 is over,
    # and the peak is now 11:00), 10 at 11:30 (90 down from 11:00's 100, never recovered).
    fills_on(
        bot,
        (monday(10)[0], "100"),
        (monday(10, 30)[0], "-40"),
        (monday(11)[0], "40"),
        (monday(11, 30)[0], "-90"),
    )
    p = Trade.objects.period_summary(day(5), day(5)).overall
    assert p.max_drawdown == drawdown("90", monday(11), monday(11, 30), None)
    assert dict(performance_lines(p))["Drawdown recovered"] == "not recovered"


def test_a_break_even_trade_at_the_high_does_not_move_the_peak(bot: Bot) -> None:
    # 100 at 10:00 (peak), 100 at 10:30 (a trade at zero: still the same stretch at the high), 40.
    fills_on(bot, (monday(10)[0], "100"), (monday(10, 30)[0], "0"), (monday(11)[0], "-60"))
    p = Trade.objects.period_summary(day(5), day(5)).overall
    assert p.max_drawdown == drawdown("60", monday(10), monday(11), None)


def test_a_drawdown_from_the_start_says_so(bot: Bot) -> None:
    # The peak is the zero before the first trade, as freqtrade starts from the starting balance.
    fills_on(bot, (monday(10)[0], "-30"), (monday(11)[0], "-20"), (monday(12)[0], "50"))
    p = Trade.objects.period_summary(day(5), day(5)).overall
    assert p.max_drawdown == drawdown("50", None, monday(11), monday(12))
    lines = dict(performance_lines(p))
    assert lines["Drawdown began"] == "at the start (nothing realized)"
    assert lines["Drawdown recovered"] == "2026-01-05 12:00:00 EST"


def test_trades_at_the_same_moment_count_in_the_order_they_were_stored(bot: Bot) -> None:
    # Both at 10:00: +100 (stored first, the peak) then -100 (the bottom), then 50. In the other
    # order the fall would start at the period's start (no peak time) and recover at 11:00.
    fills_on(bot, (monday(10)[0], "100"), (monday(10)[0], "-100"), (monday(11)[0], "50"))
    p = Trade.objects.period_summary(day(5), day(5)).overall
    assert p.max_drawdown == drawdown("100", monday(10), monday(10), None)


def test_no_trades_no_drawdown(bot: Bot) -> None:
    p = Trade.objects.period_summary(day(5), day(9)).overall
    assert p.max_drawdown is None
    assert dict(performance_lines(p))["Max drawdown"] == "-"
    assert "Drawdown began" not in dict(performance_lines(p))


def test_the_drawdowns_are_measured_from_one_read_of_the_trades(
    bot: Bot, fills: None, django_assert_num_queries: Any
) -> None:
    # One GROUP BY for the counting, one ordered read of (id, P&L[, strategy, symbol]), and one
    # of the few trades that mark a drawdown (their times).
    with django_assert_num_queries(3):
        Trade.objects.for_bot(bot).period_summary(day(5), day(13))
    with django_assert_num_queries(3):
        Trade.objects.for_bot(bot).period_summary(day(5), day(13), breakdown=False)
    with django_assert_num_queries(2):  # no closed trade: nothing marks a drawdown
        Trade.objects.for_bot(bot).period_summary(day(14), day(16))


@pytest.mark.parametrize("breakdown", [False, "strategy"])
def test_the_cockpits_drawdown_reads_the_index_in_order_not_the_table(
    bot: Bot, fills: None, breakdown: bool | str
) -> None:
    with CaptureQueriesContext(connection) as queries:
        Trade.objects.for_bot(bot).drawdowns(day(5), day(13), breakdown=breakdown)
    read = queries.captured_queries[0]["sql"]
    assert "ORDER BY" in read, read
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {read}")
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            # Index only, already in the order of execution: no table, no sort.
            assert "COVERING INDEX trade_bot_day_time_pnl" in plan and "TEMP B-TREE" not in plan, plan
        else:
            # As for the counting above: on a test's few rows only "an index, never a table scan" holds.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("ANALYZE trades_trade")
            cursor.execute(f"EXPLAIN {read}")
            plan = " ".join(str(row[0]) for row in cursor.fetchall())
            assert "Seq Scan" not in plan, plan


def test_max_drawdown_of_bare_fills() -> None:
    ten, eleven_ = monday(10), monday(11)
    assert max_drawdown([]) is None
    assert max_drawdown([(*ten, Decimal(5)), (*eleven_, Decimal(-7))]) == drawdown("7", ten, eleven_, None)


# --- derived figures in the API --------------------------------------------------------------


def test_api_answers_derived_money_to_the_cent_and_ratios_to_four_places(api: APIClient, bot: Bot) -> None:
    # Monday: 100.42, 0, 0: expectancy 100.42 / 3 = 33.47333... (the example).
    # Tuesday: 10, -1, -1, -0.01: average loss -2.01 / 3 = -0.67, profit factor 10 / 2.01 = 4.97512...
    tuesday = dt.datetime(2026, 1, 6, 10, tzinfo=NY)
    fills_on(
        bot,
        (monday(10)[0], "100.42"),
        (monday(11)[0], "0"),
        (monday(12)[0], "0"),
        *((tuesday + dt.timedelta(minutes=n), pnl) for n, pnl in enumerate(("10", "-1", "-1", "-0.01"))),
    )
    response = api.get("/api/v1/summary/period/?start=2026-01-05&end=2026-01-05")
    assert b'"expectancy":33.47,' in response.content
    body = json.loads(response.content)
    assert body["average_win"] == 100.42 and body["win_rate"] == 33.33
    body = json.loads(api.get("/api/v1/summary/period/?start=2026-01-06&end=2026-01-06").content)
    assert body["average_loss"] == -0.67 and body["profit_factor"] == 4.9751
    assert body["expectancy"] == 2.0  # 7.99 over 4 closed trades = 1.9975
    # What is stored keeps its precision: a day's P&L is a sum, not a quotient.
    both = json.loads(api.get("/api/v1/summary/period/?start=2026-01-05&end=2026-01-06").content)
    assert both["total_pnl"] == 108.41 and both["days"][1]["pnl"] == 7.99


def test_the_cockpit_shows_the_drawdown_with_its_times(admin_client: Client, bot: Bot) -> None:
    # Thursday: 100 at 10:00 (peak), -50 at 11:00 (bottom, 150 down), -30 at 12:00 (not back).
    thursday = dt.date(2026, 1, 15)
    fills_on(
        bot,
        *(
            (dt.datetime(2026, 1, 15, hour, tzinfo=NY), pnl)
            for hour, pnl in ((10, "100"), (11, "-150"), (12, "20"))
        ),
    )
    evening = dt.datetime(2026, 1, 15, 20, 30, tzinfo=NY)
    with mock.patch("django.utils.timezone.now", return_value=evening):
        page = admin_client.get("/admin/").content.decode()
    assert f"today, {thursday:%a %Y-%m-%d}" in page
    assert "<dt>Max drawdown</dt><dd>-150.00</dd>" in page
    assert "<dt>Drawdown began</dt><dd>2026-01-15 10:00:00 EST</dd>" in page
    assert "<dt>Drawdown bottomed</dt><dd>2026-01-15 11:00:00 EST</dd>" in page
    assert "<dt>Drawdown recovered</dt><dd>not recovered</dd>" in page


# --- the drawdowns' read in whole units of 1e-8 ------------------------------------------------


@pytest.mark.parametrize(
    "stored",
    [
        "0.00000001",
        "-0.00000001",
        "57.27",
        "-129.51",
        "0.29",  # times 1e8 as floats: 28999999.999999996, which must round up, not be cut
        "-4.35",
        "5",  # SQLite keeps a whole value as an integer
        "9999999.99999999",  # the last value below 1e7: the float's own product, rounded
        "-9999999.99999999",
        "10000000",
        "10000000.1234567",  # from 1e7 on: 15 significant digits, as Django reads it
        "-12345678.1234567",
        "99999999999.9999",
        "-100000000000",  # the largest loss a trade may carry (MAX_ABS_PNL)
    ],
)
def test_the_drawdowns_read_a_pnl_as_django_reads_it(bot: Bot, stored: str) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal(stored))])
    as_django_reads_it = Trade.objects.values_list("pnl", flat=True).get()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pnl FROM trades_trade")
        (raw,) = cursor.fetchone()
    assert pnl_units(raw) == as_django_reads_it.scaleb(8) == Decimal(stored).scaleb(8)
    assert type(pnl_units(raw)) is int


def test_pnl_units_of_each_kind_a_cursor_gives() -> None:
    assert pnl_units(0.1) == 10_000_000
    assert pnl_units(1.15) == 115_000_000  # 114999999.99999999 as a float product
    assert pnl_units(-2) == -200_000_000
    assert pnl_units(Decimal("-0.00000003")) == -3
    # Just under 1e7 a float's product is exact enough; from 1e7 on it would not be.
    assert pnl_units(9_999_999.99999999) == 999_999_999_999_999
    assert pnl_units(12_345_678.1234567) == 1_234_567_812_345_670


def test_a_drawdown_in_units_is_money_with_eight_places(bot: Bot) -> None:
    mon, tue = closed_days(bot, "100.10", "-40.25")
    p = Trade.objects.period_summary(mon, tue).overall
    assert p.max_drawdown is not None
    assert p.max_drawdown.amount == Decimal("40.25") and p.max_drawdown.amount.as_tuple().exponent == -8
    fills = [(*eleven(mon), Decimal("100.10")), (*eleven(tue), Decimal("-40.25"))]
    assert max_drawdown(fills) == p.max_drawdown  # the Decimal meter agrees
