"""The daily summary as a value: one trading day's figures, and their one text rendering.

The API serialises it (``as_dict``), ``manage.py daily_summary`` prints it and the
summary the alert channels receive is rendered from it, so the three cannot disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trades.tables import format_number, render_table


def win_rate(wins: int, closed: int) -> float | None:
    """Wins over closed trades in percent (two decimals), None when nothing was closed."""
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

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON shape (decimals and dates left for the renderer to encode), the day first."""
        return {"date": self.date, **dataclasses.asdict(self)}

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
                        format_number(self.total_pnl),
                    )
                ],
                right=range(6),
            ),
        ]
        for label, trade in (("Best trade", self.best_trade), ("Worst trade", self.worst_trade)):
            if trade:
                lines.append(f"{label}: {trade.symbol} {format_number(trade.pnl)} ({trade.external_id})")
        for title, groups in (("strategy", self.by_strategy), ("symbol", self.by_symbol)):
            if groups:
                rows = [
                    (name or "(none)", row.trades, format_number(row.pnl), format_rate(row.win_rate))
                    for name, row in groups.items()
                ]
                lines += ["", render_table((title, "trades", "P&L", "win rate"), rows, right=(1, 2, 3))]
        return "\n".join(lines)


def format_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


# --- a period's performance -------------------------------------------------------------

# Averages and expectancy keep the stored precision (eight places), not a division's thirty.
PLACES = Decimal("0.00000001")


@dataclass(frozen=True)
class DayPnl:
    """A trading day's realized P&L, and the period's cumulative P&L at its end."""

    date: dt.date
    pnl: Decimal
    cumulative: Decimal


@dataclass(frozen=True)
class Drawdown:
    """The largest fall of the cumulative realized P&L from a peak, day by day.

    ``peak_day`` is None when the peak is the period's starting point (nothing
    realized yet); ``recovered_day`` is the first day the cumulative P&L was back
    at the peak (exactly back counts: that drawdown is over), None while the
    drawdown is still open at the period's end. An amount of zero (the P&L never
    fell) has no days.

    Ties, as a trader reads them: the peak is the first day of the latest stretch
    at the high (a break-even day at the high does not move it; a return to the
    high after a fall does, since it ended the fall before); of two drawdowns
    equally deep, the earlier is the maximum.
    """

    amount: Decimal
    peak_day: dt.date | None
    trough_day: dt.date | None
    recovered_day: dt.date | None


def max_drawdown(days: list[DayPnl]) -> Drawdown:
    """The deepest peak-to-trough fall of ``cumulative`` over ``days`` (oldest first), starting at zero.

    Ties are settled as ``Drawdown`` says: the earlier of equal drawdowns, and the peak
    from the day the high was reached again after a fall.
    """
    peak, peak_day = Decimal(0), None
    below = False  # fallen under the peak since it was reached
    worst = Drawdown(Decimal(0), None, None, None)
    worst_peak = Decimal(0)
    for day in days:
        if day.cumulative > peak or (below and day.cumulative == peak):
            peak, peak_day, below = day.cumulative, day.date, False
        elif day.cumulative < peak:
            below = True
            if peak - day.cumulative > worst.amount:
                worst = Drawdown(peak - day.cumulative, peak_day, day.date, None)
                worst_peak = peak
    if worst.trough_day is not None:
        recovered = next(
            (d.date for d in days if d.date > worst.trough_day and d.cumulative >= worst_peak), None
        )
        worst = dataclasses.replace(worst, recovered_day=recovered)
    return worst


@dataclass(frozen=True)
class Performance(Totals):
    """What a trader reads off a period: P&L, hit rate, edge, and the worst stretch.

    Every ratio is None, never a division by zero, when what it divides by is
    absent: the win rate and expectancy without closed trades, the averages
    without wins or losses, the profit factor without losses (it would be infinite).
    """

    average_win: Decimal | None
    average_loss: Decimal | None
    profit_factor: float | None  # gross profit over gross loss
    expectancy: Decimal | None  # realized P&L per closed trade
    max_drawdown: Drawdown | None
    # Among days with a closed trade; of two days with the same P&L, the earlier.
    best_day: DayPnl | None
    worst_day: DayPnl | None

    @classmethod
    def from_days(cls, figures: list[DayFigures]) -> Performance:
        """The figures of a group from its per-day rows (any order; a day may appear more than once)."""
        by_day: dict[dt.date, DayFigures] = {}
        for row in figures:
            by_day[row.day] = by_day[row.day] + row if row.day in by_day else row
        total = DayFigures.total(dt.date.min, by_day.values())
        days = daily_pnl(by_day.values())
        return cls(
            **total.totals(),
            average_win=(total.gross_profit / total.wins).quantize(PLACES) if total.wins else None,
            average_loss=(total.gross_loss / total.losses).quantize(PLACES) if total.losses else None,
            profit_factor=(
                round(float(total.gross_profit / -total.gross_loss), 2) if total.gross_loss else None
            ),
            expectancy=(total.pnl / total.closed).quantize(PLACES) if total.closed else None,
            max_drawdown=max_drawdown(days) if days else None,
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

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON shape: the overall figures at the top level, then the daily series and groups."""
        return {
            "start": self.start,
            "end": self.end,
            **dataclasses.asdict(self.overall),
            "days": [dataclasses.asdict(day) for day in self.days],
            "by_strategy": {name: dataclasses.asdict(p) for name, p in self.by_strategy.items()},
            "by_symbol": {name: dataclasses.asdict(p) for name, p in self.by_symbol.items()},
        }

    def render_text(self, title: str = "Performance") -> str:
        """Plain text: a figures table for the whole period, then one row per strategy and per symbol."""
        lines = [f"{title}, trading days {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}", ""]
        lines += [f"{label}: {value}" for label, value in performance_lines(self.overall)]
        for title_, groups in (("strategy", self.by_strategy), ("symbol", self.by_symbol)):
            if groups:
                headers, rows = group_table(title_, groups)
                lines += ["", render_table(headers, rows, right=range(1, 7))]
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
            format_money(p.max_drawdown.amount if p.max_drawdown else None),
        )
        for name, p in groups.items()
    ]
    return headers, rows


def format_money(value: Decimal | None) -> str:
    """Money as traders read it: two decimals, a thousands separator; ``-`` when absent."""
    return "-" if value is None else f"{value:,.2f}"


def format_factor(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_drawdown(drawdown: Drawdown | None) -> str:
    if drawdown is None:
        return "-"
    if not drawdown.amount:
        return "0.00"
    peak = f"{drawdown.peak_day:%Y-%m-%d}" if drawdown.peak_day else "the start"
    until = f"recovered {drawdown.recovered_day:%Y-%m-%d}" if drawdown.recovered_day else "still open"
    return f"{format_money(-drawdown.amount)} from {peak} to {drawdown.trough_day:%Y-%m-%d} ({until})"


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
        ("Max drawdown", format_drawdown(p.max_drawdown)),
        ("Best day", format_day(p.best_day)),
        ("Worst day", format_day(p.worst_day)),
    ]
