from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import stored_trade
from trades.market import trading_day_of
from trades.models import Bot, Trade

NY = dt.timezone(dt.timedelta(hours=-5))  # New York in winter
DAY = dt.date(2026, 1, 15)


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


@pytest.fixture
def day_of_trades(bot: Bot) -> None:
    """One trading day, with figures worked out by hand in the tests below."""
    trades = [
        # momentum: AAPL +150.50, AAPL -40.25, MSFT opening fill (no P&L)
        stored_trade(1, symbol="AAPL", strategy="momentum", pnl=Decimal("150.50"), executed_at=at(9, 45)),
        stored_trade(2, symbol="AAPL", strategy="momentum", pnl=Decimal("-40.25"), executed_at=at(11)),
        stored_trade(3, symbol="MSFT", strategy="momentum", pnl=None, executed_at=at(12)),
        # meanrev: MSFT +10, TSLA -200.125, TSLA break-even 0
        stored_trade(4, symbol="MSFT", strategy="meanrev", pnl=Decimal("10"), executed_at=at(13)),
        stored_trade(5, symbol="TSLA", strategy="meanrev", pnl=Decimal("-200.125"), executed_at=at(14)),
        stored_trade(6, symbol="TSLA", strategy="meanrev", pnl=Decimal("0"), executed_at=at(15)),
        # no strategy, filled at 21:30 New York = 02:30 UTC next day: still this trading day
        stored_trade(7, symbol="AAPL", strategy="", pnl=Decimal("5"), executed_at=at(21, 30)),
        # the day before and the day after do not count
        stored_trade(8, symbol="AAPL", pnl=Decimal("1000"), executed_at=at(15, day=dt.date(2026, 1, 14))),
        stored_trade(9, symbol="AAPL", pnl=Decimal("-1000"), executed_at=at(0, 1, day=dt.date(2026, 1, 16))),
    ]
    Trade.objects.record_batch(bot, trades)


def test_summary_figures_match_hand_computed_ones(bot: Bot, day_of_trades: None) -> None:
    summary = Trade.objects.daily_summary(DAY).as_dict()
    assert summary["date"] == DAY
    assert summary["total_trades"] == 7
    assert summary["closed_trades"] == 6  # ord-3 has no P&L
    # 150.50 - 40.25 + 10 - 200.125 + 0 + 5
    assert summary["total_pnl"] == Decimal("-74.875")
    assert summary["wins"] == 3  # ord-1, ord-4, ord-7
    assert summary["losses"] == 2  # ord-2, ord-5; ord-6 broke even
    assert summary["win_rate"] == 50.0  # 3 of 6 closed
    assert summary["best_trade"]["external_id"] == "ord-1"
    assert summary["best_trade"]["pnl"] == Decimal("150.5")
    assert summary["worst_trade"]["external_id"] == "ord-5"
    assert summary["worst_trade"]["symbol"] == "TSLA"
    assert summary["by_strategy"] == {
        "": {"trades": 1, "pnl": Decimal("5"), "win_rate": 100.0},
        "meanrev": {"trades": 3, "pnl": Decimal("-190.125"), "win_rate": 33.33},
        "momentum": {"trades": 3, "pnl": Decimal("110.25"), "win_rate": 50.0},
    }
    assert summary["by_symbol"] == {
        "AAPL": {"trades": 3, "pnl": Decimal("115.25"), "win_rate": 66.67},
        "MSFT": {"trades": 2, "pnl": Decimal("10"), "win_rate": 100.0},
        "TSLA": {"trades": 2, "pnl": Decimal("-200.125"), "win_rate": 0.0},
    }


def test_summary_of_an_empty_day(db: Any) -> None:
    summary = Trade.objects.daily_summary(DAY).as_dict()
    assert summary["total_trades"] == 0 and summary["closed_trades"] == 0
    assert summary["total_pnl"] == 0
    assert summary["win_rate"] is None
    assert summary["best_trade"] is None and summary["worst_trade"] is None
    assert summary["by_strategy"] == {} and summary["by_symbol"] == {}


def test_a_day_of_only_opening_fills_has_no_win_rate(bot: Bot) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1, executed_at=at(10))])
    summary = Trade.objects.daily_summary(DAY).as_dict()
    assert summary["total_trades"] == 1 and summary["closed_trades"] == 0
    assert summary["win_rate"] is None
    assert summary["by_symbol"]["AAPL"] == {"trades": 1, "pnl": Decimal(0), "win_rate": None}


def test_summary_api_answers_every_contract_field(bot: Bot, api: APIClient, day_of_trades: None) -> None:
    body = api.get("/api/v1/summary/daily/?date=2026-01-15").json()
    assert set(body) == {
        "date",
        "total_trades",
        "closed_trades",
        "total_pnl",
        "wins",
        "losses",
        "win_rate",
        "best_trade",
        "worst_trade",
        "by_strategy",
        "by_symbol",
        "day_pnl",
        "open_pnl",
        "day_pnl_as_of",
    }
    assert body["day_pnl"] is body["open_pnl"] is body["day_pnl_as_of"] is None  # no positions reported
    assert body["date"] == "2026-01-15"
    assert body["total_pnl"] == -74.875
    assert body["best_trade"] == {
        "symbol": "AAPL",
        "pnl": 150.5,
        "external_id": "ord-1",
        "executed_at": "2026-01-15T14:45:00Z",
    }
    assert body["by_symbol"]["TSLA"] == {"trades": 2, "pnl": -200.125, "win_rate": 0.0}


def test_summary_api_is_per_bot(bot: Bot, api: APIClient, day_of_trades: None) -> None:
    other = Bot.objects.create(name="beta")
    Trade.objects.record_batch(other, [stored_trade(1, pnl=Decimal("999"), executed_at=at(10))])
    assert api.get("/api/v1/summary/daily/?date=2026-01-15").json()["total_trades"] == 7
    assert Trade.objects.daily_summary(DAY).total_trades == 8


def test_summary_api_defaults_to_today_in_market_time(bot: Bot, api: APIClient) -> None:
    before = trading_day_of(dt.datetime.now(dt.UTC))
    body = api.get("/api/v1/summary/daily/").json()
    after = trading_day_of(dt.datetime.now(dt.UTC))
    # Either side of midnight in New York: the day the request was answered on.
    assert body["date"] in {str(before), str(after)}


def test_summary_api_rejects_a_bad_date(api: APIClient) -> None:
    response = api.get("/api/v1/summary/daily/?date=2026-02-30")
    assert response.status_code == 400
    assert "date" in response.json()["errors"]


# --- the trading day --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "day"),
    [
        # winter (UTC-5): 21:30 New York is 02:30 UTC the next calendar day
        (dt.datetime(2026, 1, 16, 2, 30, tzinfo=dt.UTC), dt.date(2026, 1, 15)),
        (dt.datetime(2026, 1, 16, 4, 59, tzinfo=dt.UTC), dt.date(2026, 1, 15)),
        (dt.datetime(2026, 1, 16, 5, 0, tzinfo=dt.UTC), dt.date(2026, 1, 16)),
        # summer (UTC-4)
        (dt.datetime(2026, 7, 16, 3, 59, tzinfo=dt.UTC), dt.date(2026, 7, 15)),
        (dt.datetime(2026, 7, 16, 4, 0, tzinfo=dt.UTC), dt.date(2026, 7, 16)),
    ],
)
def test_trading_day_is_the_new_york_date(utc: dt.datetime, day: dt.date) -> None:
    assert trading_day_of(utc) == day


def test_trading_day_is_stored_from_the_market_time_zone(bot: Bot, api: APIClient) -> None:
    api.post(
        "/api/v1/trades/",
        {
            "external_id": "late",
            "symbol": "AAPL",
            "side": "SELL",
            "quantity": 1,
            "price": 1,
            "executed_at": "2026-01-15T21:30:00-05:00",
        },
        format="json",
    )
    trade = Trade.objects.get()
    assert trade.executed_at == dt.datetime(2026, 1, 16, 2, 30, tzinfo=dt.UTC)
    assert trade.trading_day == dt.date(2026, 1, 15)


@override_settings(MARKET_TIMEZONE="Asia/Tokyo")
def test_trading_day_follows_market_timezone(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot, [stored_trade(1, executed_at=dt.datetime(2026, 1, 15, 16, tzinfo=dt.UTC))]
    )
    assert Trade.objects.get().trading_day == dt.date(2026, 1, 16)


def test_saving_a_trade_in_the_admin_keeps_trading_day_in_step(bot: Bot) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1)])
    trade = Trade.objects.get()
    trade.executed_at = dt.datetime(2026, 3, 2, 3, 0, tzinfo=dt.UTC)
    trade.save()
    trade.refresh_from_db()
    assert trade.trading_day == dt.date(2026, 3, 1)


# --- the command ------------------------------------------------------------------------


def test_daily_summary_command_prints_the_figures(bot: Bot, day_of_trades: None) -> None:
    out = StringIO()
    call_command("daily_summary", "--date", "2026-01-15", stdout=out)
    text = out.getvalue()
    assert "Daily summary for Thursday 2026-01-15" in text
    # Money to the cent, a tie away from zero (half-even would print -74.87 and -200.12).
    assert "-74.88" in text and "-74.875" not in text
    assert "50.0%" in text
    assert "Best trade: AAPL 150.50 (ord-1)" in text
    assert "Worst trade: TSLA -200.13 (ord-5)" in text
    # Every P&L in the tables with its two decimals, side by side ("-92.1" beside "-418.48" before).
    assert "115.25" in text and "10.00" in text and "-200.13" in text
    assert "meanrev" in text and "(none)" in text


def query_plans(action: Any) -> list[str]:
    """The database's plan for every query ``action`` runs, on one line each.

    PostgreSQL is told to avoid sequential scans: on a test's few rows it would rightly
    prefer one, and the question is which index the query can use, not what it costs.
    """
    from django.db import connection

    plans: list[str] = []

    def explain(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("SELECT"):
            # The raw connection, so that this query does not come back through the wrapper.
            if connection.vendor == "sqlite":
                rows = connection.connection.execute("EXPLAIN QUERY PLAN " + sql.replace("%s", "?"), params)
                plans.append(" | ".join(row[-1] for row in rows.fetchall()))
            else:
                with connection.connection.cursor() as cursor:
                    cursor.execute("SET LOCAL enable_seqscan = off")
                    cursor.execute("EXPLAIN " + sql, params)
                    plans.append(" | ".join(row[0].strip() for row in cursor.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        action()
    return plans


def uses_index(plan: str, index: str, *columns: str) -> bool:
    """Whether ``plan`` looks ``index`` up by ``columns`` (SQLite's or PostgreSQL's wording)."""
    sqlite = " AND ".join(f"{column}=?" for column in columns)
    if f"{index} ({sqlite}" in plan:
        return True
    scan = rf"Index (?:Only )?Scan (?:Backward )?using {index} on trades_trade"
    found = re.search(rf"{scan}[^|]*\| Index Cond: ([^|]*)", plan)
    return bool(found) and all(re.search(rf"\b{column}\)?(::\w+)? = ", found.group(1)) for column in columns)


# The (bot, trading day, ...) indexes: each narrows to the bot's day, whichever the planner takes.
DAY_INDEXES = ("trade_bot_day_time", "trade_bot_day_time_pnl", "trade_bot_day_strategy_pnl")


def test_summary_reads_only_the_days_trades(bot: Bot) -> None:
    """Every summary query starts from the (bot, trading day) index, never walking all the bot's trades."""
    from django.db import connection

    # Twenty weekdays of trades of this bot and of four others, so that PostgreSQL's planner, which
    # knows how many rows there are, has a choice to make between the (bot, day) indexes, the bot's
    # and the day's (on an empty table any index will do, and it took the day's).
    new_york = ZoneInfo("America/New_York")
    days = [DAY - dt.timedelta(days=k) for k in range(28) if (DAY - dt.timedelta(days=k)).weekday() < 5][:20]
    for b, owner in enumerate([bot, *(Bot.objects.create(name=f"other-{k}") for k in range(4))]):
        moments = [dt.datetime.combine(day, dt.time(10, 31), new_york) for day in days]
        trades = [
            stored_trade(
                b * 10_000 + n, pnl=Decimal(n % 7 - 3), executed_at=moments[n % 20] + dt.timedelta(seconds=n)
            )
            for n in range(400)
        ]
        Trade.objects.record_batch(owner, trades)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE trades_trade")
    plans = query_plans(lambda: Trade.objects.for_bot(bot).daily_summary(DAY))
    assert len(plans) == 3, plans
    for plan in plans:
        # A (bot, trading day) index: trade_bot_day_time_pnl (the cockpit's) or the strategies'
        # trade_bot_day_strategy_pnl covers the counting and the best and worst trade;
        # trade_bot_day_time what else the day needs.
        assert any(uses_index(plan, index, "bot_id", "trading_day") for index in DAY_INDEXES), plan
        for other in ("trade_bot_time", "trade_bot_symbol_time", "trade_bot_strategy_time"):
            assert f"{other} " not in plan, plan


def test_repeats_are_looked_up_by_the_external_id_index(bot: Bot) -> None:
    from django.db import connection

    # A day of trades, so that PostgreSQL's planner, which knows how many rows there are, has a
    # choice to make between the day's indexes and the external id's.
    Trade.objects.record_batch(bot, [stored_trade(n) for n in range(1, 1001)])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE trades_trade")
    plans = query_plans(lambda: Trade.objects.record_batch(bot, [stored_trade(1)]))
    assert len(plans) == 1

    index = "sqlite_autoindex_trades_trade_1" if connection.vendor == "sqlite" else "trade_unique_external_id"
    assert uses_index(plans[0], index, "bot_id", "external_id"), plans


# --- the value ---------------------------------------------------------------------------


def test_summary_is_an_immutable_value(bot: Bot, day_of_trades: None) -> None:
    import dataclasses

    summary = Trade.objects.daily_summary(DAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.total_trades = 0  # type: ignore[misc]
    assert summary.best_trade is not None and summary.best_trade.external_id == "ord-1"
    assert summary.by_strategy["meanrev"].win_rate == 33.33


def test_the_command_prints_the_values_own_rendering(bot: Bot, day_of_trades: None) -> None:
    out = StringIO()
    call_command("daily_summary", "--date", "2026-01-15", stdout=out)
    assert out.getvalue().rstrip("\n") == Trade.objects.daily_summary(DAY).render_text()


def test_the_day_rules_count_the_day_as_the_summary_does(bot: Bot, day_of_trades: None) -> None:
    figures = Trade.objects.for_bot(bot).day_figures(DAY)
    summary = Trade.objects.for_bot(bot).daily_summary(DAY)

    assert figures.totals() == {
        "total_trades": summary.total_trades,
        "closed_trades": summary.closed_trades,
        "total_pnl": summary.total_pnl,
        "wins": summary.wins,
        "losses": summary.losses,
        "win_rate": summary.win_rate,
    }
    # Scoped as a rule scopes it: TSLA's loss and its break-even fill, closed but neither won nor lost.
    tsla = Trade.objects.for_bot(bot).filter(symbol="TSLA").day_figures(DAY)
    assert (tsla.trades, tsla.closed, tsla.pnl, tsla.wins, tsla.losses) == (2, 2, Decimal("-200.125"), 0, 1)
    assert tsla.gross_loss == Decimal("-200.125") and tsla.gross_profit == 0


def test_a_day_without_trades_counts_zero(bot: Bot, day_of_trades: None) -> None:
    quiet = dt.date(2026, 1, 13)
    figures = Trade.objects.for_bot(bot).day_figures(quiet)
    assert (figures.day, figures.trades, figures.closed, figures.pnl, figures.win_rate) == (
        quiet,
        0,
        0,
        Decimal(0),
        None,
    )
    assert Trade.objects.for_bot(bot).figures_per_day(quiet, by=("strategy", "symbol")) == []


def test_realized_pnl_sums_the_days_closed_trades_of_the_bot(bot: Bot, day_of_trades: None) -> None:
    other = Bot.objects.create(name="other")
    Trade.objects.record_batch(other, [stored_trade(1, pnl=Decimal("-999"), executed_at=at(10))])
    assert Trade.objects.for_bot(bot).realized_pnl(DAY) == Decimal("-74.875")
    assert Trade.objects.realized_pnl(DAY) == Decimal("-1073.875")
    assert Trade.objects.for_bot(bot).realized_pnl(dt.date(2026, 1, 13)) == Decimal(0)
