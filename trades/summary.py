"""The daily summary as a value: one trading day's figures, and their one text rendering.

The API serialises it (``as_dict``), ``manage.py daily_summary`` prints it and the
summary the alert channels receive is rendered from it, so the three cannot disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from monitor_client.wire import DECIMAL_PLACES, SIGNIFICANT_DIGITS
from trades.formats import MISSING, format_factor, format_market_time, format_money, format_rate, to_cent
from trades.tables import render_table


def win_rate(wins: int, closed: int) -> float | None:
    """Wins over closed trades in percent (two decimals: the ratio to four places), None when
    nothing was closed."""
    return round(100.0 * wins / closed, 2) if closed else None


@dataclass(frozen=True)
class DayFigures:
    """A trading day's outcome counts over a group of trades: what one GROUP BY row of
    ``Trade.objects.figures_per_day`` gives, or the total of several for the same day.

    The daily summary, the period summary and the day rules all count from these
    (closed, win and loss as ``Totals`` says).
    """

    day: dt.date
    trades: int = 0
    closed: int = 0
    pnl: Decimal = Decimal(0)
    wins: int = 0
    losses: int = 0
    gross_profit: Decimal = Decimal(0)
    gross_loss: Decimal = Decimal(0)  # zero or negative

    def __add__(self, other: DayFigures) -> DayFigures:
        return DayFigures(
            self.day,
            self.trades + other.trades,
            self.closed + other.closed,
            self.pnl + other.pnl,
            self.wins + other.wins,
            self.losses + other.losses,
            self.gross_profit + other.gross_profit,
            self.gross_loss + other.gross_loss,
        )

    @classmethod
    def total(cls, day: dt.date, figures: Iterable[DayFigures]) -> DayFigures:
        """The sum of ``figures``, dated ``day``; all zero when there are none."""
        result = cls(day)
        for each in figures:
            result = result + each
        return result

    @property
    def win_rate(self) -> float | None:
        return win_rate(self.wins, self.closed)

    def totals(self) -> dict[str, Any]:
        """These figures under the names a summary gives them: ``Totals``' fields."""
        return {
            "total_trades": self.trades,
            "closed_trades": self.closed,
            "total_pnl": self.pnl,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": self.win_rate,
        }


@dataclass(frozen=True)
class Totals:
    """How a set of trades ended, as the daily summary and a period's performance both begin.

    A trade with a P&L is closed; it is a win above zero and a loss below zero
    (a break-even fill is closed but neither). The win rate is wins over closed
    trades in percent, None without a closed trade.
    """

    total_trades: int
    closed_trades: int
    total_pnl: Decimal
    wins: int
    losses: int
    win_rate: float | None


@dataclass(frozen=True)
class TradeRef:
    """A trade singled out by the summary (the best or the worst of the day)."""

    symbol: str
    pnl: Decimal
    external_id: str
    executed_at: dt.datetime


@dataclass(frozen=True)
class Breakdown:
    """Figures of one strategy or one symbol."""

    trades: int
    pnl: Decimal
    win_rate: float | None


@dataclass(frozen=True)
class DailySummary(Totals):
    """One trading day's figures over a set of trades: what ``GET /api/v1/summary/daily/`` answers."""

    date: dt.date
    best_trade: TradeRef | None
    worst_trade: TradeRef | None
    by_strategy: Mapping[str, Breakdown]
    by_symbol: Mapping[str, Breakdown]
    # The day's P&L with open positions marked to market at its last snapshot with positions, and
    # the open positions' part of it (``trades.positions``): None when the bot reported none that
    # day, or for a summary of several bots.
    day_pnl: Decimal | None = None
    open_pnl: Decimal | None = None
    day_pnl_as_of: dt.datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON shape (decimals and dates left for the renderer to encode), the day first."""
        return {"date": self.date, **dataclasses.asdict(self)}

    def day_pnl_words(self) -> str | None:
        """The day P&L in words, "-1,520.00 (realized -20.00, open -1,500.00)"; None without one."""
        if self.day_pnl is None:
            return None
        return (
            f"{format_money(self.day_pnl)} (realized {format_money(self.total_pnl)},"
            f" open {format_money(self.open_pnl)})"
        )

    def render_text(self) -> str:
        """Plain text: a totals table, the best and worst trade, a table per strategy and per symbol."""
        lines = [
            f"Daily summary for {self.date:%A %Y-%m-%d}",
            "",
            render_table(
                ("trades", "closed", "wins", "losses", "win rate", "total P&L"),
                [
                    (
                        self.total_trades,
                        self.closed_trades,
                        self.wins,
                        self.losses,
                        format_rate(self.win_rate),
                        format_money(self.total_pnl),
                    )
                ],
                right=range(6),
            ),
        ]
        if (marked := self.day_pnl_words()) is not None:
            lines.append(
                f"Day P&L with open positions: {marked}, as of {format_market_time(self.day_pnl_as_of)}"
            )
        for label, trade in (("Best trade", self.best_trade), ("Worst trade", self.worst_trade)):
            if trade:
                lines.append(f"{label}: {trade.symbol} {format_money(trade.pnl)} ({trade.external_id})")
        for title, groups in (("strategy", self.by_strategy), ("symbol", self.by_symbol)):
            if groups:
                rows = [
                    (name or "(none)", row.trades, format_money(row.pnl), format_rate(row.win_rate))
                    for name, row in groups.items()
                ]
                lines += ["", render_table((title, "trades", "P&L", "win rate"), rows, right=(1, 2, 3))]
        return "\n".join(lines)


# --- a period's performance -------------------------------------------------------------

# Derived figures answer what they mean (``docs/api.md``, *Numbers in answers*): an average of
# money to the cent, a ratio to four places; a sum of stored P&L keeps its eight.
RATIO_PLACES = 4


@dataclass(frozen=True)
class DayPnl:
    """A trading day's realized P&L, and the period's cumulative P&L at its end."""

    date: dt.date
    pnl: Decimal
    cumulative: Decimal


@dataclass(frozen=True)
class Drawdown:
    """The largest fall of the cumulative realized P&L from a peak, trade by trade.

    The cumulative P&L starts at zero before the period's first closed trade (as
    freqtrade starts from the starting balance), and moves at each closed trade in
    the order they were executed (ties by id). ``peak_at`` is when the trade that
    reached the peak was executed, None when the peak is that zero at the period's
    start; ``trough_at`` the trade at the bottom; ``recovered_at`` the first trade
    after it that brought the cumulative P&L back to the peak (exactly back counts:
    that drawdown is over), None while the drawdown is still open at the period's
    end. Each ``*_day`` is that trade's trading day. An amount of zero (the P&L
    never fell) has no times.

    Ties, as a trader reads them: the peak is the first trade of the latest stretch
    at the high (a break-even trade at the high does not move it; a return to the
    high after a fall does, since it ended the fall before); of two drawdowns
    equally deep, the earlier is the maximum.
    """

    amount: Decimal
    peak_at: dt.datetime | None = None
    peak_day: dt.date | None = None
    trough_at: dt.datetime | None = None
    trough_day: dt.date | None = None
    recovered_at: dt.datetime | None = None
    recovered_day: dt.date | None = None


# Where a trade is when it marks a drawdown: (executed at, trading day).
Moment = tuple[dt.datetime, dt.date]


class DrawdownMeter:
    """Follows the cumulative realized P&L one closed trade at a time (oldest first) and keeps its
    deepest fall, settling ties as ``Drawdown`` says. One pass, a few numbers of state.

    A trade is named by a key (its id): only the three that mark the deepest fall (the
    peak, the bottom, the recovery) need their times, looked up once at the end. Measured
    on 84,000 closed trades (42 days of 2,000) on a busy 2-core machine: 0.15 to 0.2 s
    reading (id, P&L) in order from the covering index, over 3 s reading each trade's
    time and day from the table and sorting them (Django parsing 84,000 SQLite date-times).
    """

    def __init__(self) -> None:
        # Numbers of one kind: Decimals, or whole units of 1e-8 as ints (``pnl_units``), which add
        # several times faster; ``result`` gives the amount as money either way.
        self.cumulative: Decimal | int = 0
        self.peak: Decimal | int = 0
        self.peak_key: Any = None  # None: the zero before the first trade
        self.below = False  # fallen under the peak since it was reached
        self.amount: Decimal | int = 0
        self.marks: tuple[Any, Any, Any] | None = None  # the deepest fall's peak, bottom, recovery
        self.worst_peak: Decimal | int = 0
        self.closed = 0

    def add(self, key: Any, pnl: Decimal | int) -> None:
        self.closed += 1
        self.cumulative += pnl
        cumulative = self.cumulative
        if self.marks is not None and self.marks[2] is None and cumulative >= self.worst_peak:
            self.marks = (self.marks[0], self.marks[1], key)
        if cumulative > self.peak or (self.below and cumulative == self.peak):
            self.peak, self.peak_key, self.below = cumulative, key, False
        elif cumulative < self.peak:
            self.below = True
            if self.peak - cumulative > self.amount:
                self.amount, self.worst_peak = self.peak - cumulative, self.peak
                self.marks = (self.peak_key, key, None)

    def keys(self) -> set[Any]:
        """The trades whose moments ``result`` needs."""
        return {key for key in self.marks or () if key is not None}

    def result(self, moments: Mapping[Any, Moment], *, in_units: bool = False) -> Drawdown | None:
        """The deepest fall, its marks placed by ``moments`` (key to moment); None before any closed
        trade. ``in_units``: the meter was given whole units of 1e-8 (``pnl_units``)."""
        if not self.closed:
            return None
        if self.marks is None:
            return Drawdown(Decimal(0))
        amount = Decimal(self.amount).scaleb(-DECIMAL_PLACES) if in_units else Decimal(self.amount)
        peak, trough, recovered = (moments[key] if key is not None else (None, None) for key in self.marks)
        return Drawdown(amount, *peak, *trough, *recovered)


# Whole units of 1e-8 (the P&L column's decimal places) are exact as ints: a P&L read as a float
# (SQLite) below this size is within 0.22 units of its value after the multiplication, so rounding
# gives the value itself; a larger one takes Django's own way (15 significant digits, as stored).
_FLOAT_EXACT_BELOW = 10**7
_FIFTEEN_DIGITS = decimal.Context(prec=SIGNIFICANT_DIGITS)


def pnl_units(value: float | int | Decimal) -> int:
    """A stored P&L as it comes from the database cursor (SQLite: a float or an int; PostgreSQL: a
    Decimal), in whole units of 1e-8: what Django's converter would read, as an int."""
    if type(value) is float:
        if -_FLOAT_EXACT_BELOW < value < _FLOAT_EXACT_BELOW:
            return round(value * 10**DECIMAL_PLACES)
        return int(_FIFTEEN_DIGITS.create_decimal_from_float(value).scaleb(DECIMAL_PLACES))
    if type(value) is int:
        return value * 10**DECIMAL_PLACES
    return int(Decimal(value).scaleb(DECIMAL_PLACES))


def max_drawdown(fills: Iterable[tuple[dt.datetime, dt.date, Decimal]]) -> Drawdown | None:
    """The deepest fall of the cumulative realized P&L over closed trades given as (executed at,
    trading day, P&L), oldest first; None without one."""
    meter = DrawdownMeter()
    for at, day, pnl in fills:
        meter.add((at, day), pnl)
    return meter.result({key: key for key in meter.keys()})


@dataclass(frozen=True)
class Performance(Totals):
    """What a trader reads off a period: P&L, hit rate, edge, and the worst stretch.

    Every ratio is None, never a division by zero, when what it divides by is
    absent: the win rate and expectancy without closed trades, the averages
    without wins or losses, the profit factor without losses (it would be infinite).
    """

    average_win: Decimal | None  # to the cent
    average_loss: Decimal | None  # to the cent
    profit_factor: float | None  # gross profit over gross loss, four places
    expectancy: Decimal | None  # realized P&L per closed trade, to the cent
    max_drawdown: Drawdown | None
    # Among days with a closed trade; of two days with the same P&L, the earlier.
    best_day: DayPnl | None
    worst_day: DayPnl | None

    @classmethod
    def from_days(cls, figures: list[DayFigures], drawdown: Drawdown | None) -> Performance:
        """The figures of a group from its per-day rows (any order; a day may appear more than once)
        and the deepest fall of its cumulative P&L, measured trade by trade (``DrawdownMeter``)."""
        by_day: dict[dt.date, DayFigures] = {}
        for row in figures:
            by_day[row.day] = by_day[row.day] + row if row.day in by_day else row
        total = DayFigures.total(dt.date.min, by_day.values())
        days = daily_pnl(by_day.values())
        return cls(
            **total.totals(),
            average_win=to_cent(total.gross_profit / total.wins) if total.wins else None,
            average_loss=to_cent(total.gross_loss / total.losses) if total.losses else None,
            profit_factor=(
                round(float(total.gross_profit / -total.gross_loss), RATIO_PLACES)
                if total.gross_loss
                else None
            ),
            expectancy=to_cent(total.pnl / total.closed) if total.closed else None,
            max_drawdown=drawdown,
            best_day=max(days, key=lambda d: (d.pnl, -d.date.toordinal())) if days else None,
            worst_day=min(days, key=lambda d: (d.pnl, d.date)) if days else None,
        )


def daily_pnl(rows: Any) -> list[DayPnl]:
    """Days with a closed trade, oldest first, with the running total of realized P&L."""
    result: list[DayPnl] = []
    running = Decimal(0)
    for row in sorted((r for r in rows if r.closed), key=lambda r: r.day):
        running += row.pnl
        result.append(DayPnl(row.day, row.pnl, running))
    return result


@dataclass(frozen=True)
class DayClose:
    """A trading day's close as the bot reported its state (``trades.positions.day_closes``): the
    last equity and cash it reported that day, and the day's P&L with open positions marked to
    market at its last snapshot with positions; None where that day's heartbeats did not carry it."""

    date: dt.date
    as_of: dt.datetime  # the day's last snapshot that gave any of these
    equity: Decimal | None
    cash: Decimal | None
    day_pnl: Decimal | None
    open_pnl: Decimal | None


@dataclass(frozen=True)
class PeriodSummary:
    """A period's performance (trading days ``start`` to ``end``, both included), overall and per group.

    ``manage.py period_summary``, ``GET /api/v1/summary/period/``, the cockpit and
    the weekly report all render this one value.
    """

    start: dt.date
    end: dt.date
    overall: Performance
    days: tuple[DayPnl, ...]
    by_strategy: Mapping[str, Performance]
    by_symbol: Mapping[str, Performance]
    # One bot's state at each day's close where it reported it: the equity curve and each day's
    # P&L with open positions (``trades.positions.with_closes``); empty for several bots.
    closes: tuple[DayClose, ...] = ()
    # Each strategy's days with a closed trade and its own cumulative P&L (as ``days``), in the
    # order of ``by_strategy``; empty without a breakdown. A strategy with opening fills alone has none.
    strategy_days: Mapping[str, tuple[DayPnl, ...]] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON shape: the overall figures at the top level, then the daily series and groups."""
        return {
            "start": self.start,
            "end": self.end,
            **dataclasses.asdict(self.overall),
            "days": [dataclasses.asdict(day) for day in self.days],
            "by_strategy": {name: dataclasses.asdict(p) for name, p in self.by_strategy.items()},
            "by_symbol": {name: dataclasses.asdict(p) for name, p in self.by_symbol.items()},
            "closes": [dataclasses.asdict(close) for close in self.closes],
            "by_strategy_days": {
                name: [dataclasses.asdict(day) for day in days] for name, days in self.strategy_days.items()
            },
        }

    def close_table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """The days' closes as text: the command's table, the report page's and its CSV's."""
        headers = ("day", "equity", "cash", "day P&L", "of it open")
        rows = [
            (
                f"{c.date:%Y-%m-%d}",
                format_money(c.equity),
                format_money(c.cash),
                format_money(c.day_pnl),
                format_money(c.open_pnl),
            )
            for c in self.closes
        ]
        return headers, rows

    def render_text(self, title: str = "Performance") -> str:
        """Plain text: a figures table for the whole period, then one row per strategy and per symbol."""
        lines = [f"{title}, trading days {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}", ""]
        lines += [f"{label}: {value}" for label, value in performance_lines(self.overall)]
        for title_, groups in (("strategy", self.by_strategy), ("symbol", self.by_symbol)):
            if groups:
                headers, rows = group_table(title_, groups)
                lines += ["", render_table(headers, rows, right=range(1, 7))]
        if self.closes:
            headers, rows = self.close_table()
            lines += ["", "Each day's close (equity, and the day's P&L with open positions)"]
            lines += [render_table(headers, rows, right=range(1, 5))]
        return "\n".join(lines)


def group_table(
    title: str, groups: Mapping[str, Performance]
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """One row of figures per strategy or symbol (``title``), as text: the command's tables, the
    report page's and its CSV's."""
    headers = (title, "trades", "P&L", "win rate", "profit factor", "expectancy", "max drawdown")
    rows = [
        (
            name or "(none)",
            str(p.total_trades),
            format_money(p.total_pnl),
            format_rate(p.win_rate),
            format_factor(p.profit_factor),
            format_money(p.expectancy),
            format_money(-p.max_drawdown.amount if p.max_drawdown else None),  # a fall, as in the figures
        )
        for name, p in groups.items()
    ]
    return headers, rows


def format_drawdown(drawdown: Drawdown | None) -> list[tuple[str, str]]:
    """The deepest fall as lines: its amount, and when it began, bottomed and recovered (market time)."""
    if drawdown is None:
        return [("Max drawdown", MISSING)]
    if not drawdown.amount:
        return [("Max drawdown", format_money(0))]
    began = format_market_time(drawdown.peak_at) if drawdown.peak_at else "at the start (nothing realized)"
    recovered = format_market_time(drawdown.recovered_at) if drawdown.recovered_at else "not recovered"
    return [
        ("Max drawdown", format_money(-drawdown.amount)),
        ("Drawdown began", began),
        ("Drawdown bottomed", format_market_time(drawdown.trough_at)),
        ("Drawdown recovered", recovered),
    ]


def format_day(day: DayPnl | None) -> str:
    return "-" if day is None else f"{day.date:%a %Y-%m-%d} {format_money(day.pnl)}"


def performance_lines(p: Performance) -> list[tuple[str, str]]:
    """The figures as (label, text) pairs: the command's lines, the report's fields, the cockpit's rows."""
    return [
        ("Realized P&L", format_money(p.total_pnl)),
        ("Trades", f"{p.total_trades} ({p.closed_trades} closed)"),
        ("Win rate", f"{format_rate(p.win_rate)} ({p.wins} won, {p.losses} lost)"),
        ("Average win / loss", f"{format_money(p.average_win)} / {format_money(p.average_loss)}"),
        ("Profit factor", format_factor(p.profit_factor)),
        ("Expectancy per closed trade", format_money(p.expectancy)),
        *format_drawdown(p.max_drawdown),
        ("Best day", format_day(p.best_day)),
        ("Worst day", format_day(p.worst_day)),
    ]
