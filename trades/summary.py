"""The daily summary as a value: one trading day's figures, and their one text rendering.

The API serialises it (``as_dict``), ``manage.py daily_summary`` prints it and the
Discord summary is rendered from it, so the three cannot disagree.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from trades.tables import format_number, render_table


def win_rate(wins: int, closed: int) -> float | None:
    """Wins over closed trades in percent (two decimals), None when nothing was closed."""
    return round(100.0 * wins / closed, 2) if closed else None


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
class DailySummary:
    """One trading day's figures over a set of trades (see CONTRACT.md, "Daily summary fields").

    A trade with a P&L is closed; it is a win above zero and a loss below zero
    (a break-even fill is closed but neither).
    """

    date: dt.date
    total_trades: int
    closed_trades: int
    total_pnl: Decimal
    wins: int
    losses: int
    win_rate: float | None
    best_trade: TradeRef | None
    worst_trade: TradeRef | None
    by_strategy: Mapping[str, Breakdown]
    by_symbol: Mapping[str, Breakdown]

    def as_dict(self) -> dict[str, Any]:
        """The API's JSON shape (decimals and dates left for the renderer to encode)."""
        return dataclasses.asdict(self)

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
