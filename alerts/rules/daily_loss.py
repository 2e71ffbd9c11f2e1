"""Daily loss and max daily loss: the day's P&L at or below a negative limit.

The figure is the day's P&L as a broker reports it (``trades.positions.day_pnl``) when the
bot reported its positions that trading day: realized P&L plus what the open positions
gained or lost since the day began, marked to market at the bot's last snapshot. A bot
that did not report positions that day is judged on realized P&L alone. A rule limited
to a strategy or a symbol (``rule.strategy`` / ``rule.symbol``) always judges the realized
P&L of its scope alone: a reported position carries no strategy, and a symbol's open part
would count a position the bot may hold for another strategy.

They are judged after new trades, on the schedule, and after heartbeats that carried the
bot's state (an open loss crosses the limit on the heartbeat that reports it). The alert
says how much of the figure is open.

The max daily loss also halts trading: the status endpoint tells the bot to stop until
the next trading day, or until an admin resumes it. The halt's reason names the figure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from alerts.models import TradingHalt
from alerts.rules.base import Memo, Moment, Notice, Rule
from alerts.rules.trading_day import DayRule, day_totals
from trades.formats import format_market_time, format_money
from trades.models import Bot
from trades.positions import DayPnl, day_pnl


@dataclass(frozen=True)
class DayLoss:
    """What a daily loss rule judges: realized P&L, and the open positions' part when reported."""

    realized: Decimal
    marked: DayPnl | None = None  # None: positions not reported that day, or a scoped rule

    @property
    def total(self) -> Decimal:
        return self.marked.total if self.marked is not None else self.realized

    def title(self, bot: Bot, day: dt.date) -> str:
        """``alpha: day P&L -1,520.00 on 2026-01-15 (open positions -1,500.00)``, or realized alone."""
        if self.marked is None:
            return f"{bot.name}: realized P&L {format_money(self.realized)} on {day}"
        open_part = format_money(self.marked.open_part)
        return f"{bot.name}: day P&L {format_money(self.total)} on {day} (open positions {open_part})"


def day_pnl_memo(bot: Bot, day: dt.date, realized: Decimal, memo: Memo) -> DayPnl | None:
    """One ``day_pnl`` per bot and day in an evaluation pass, shared by the daily loss rules."""
    key = ("day_pnl", bot.pk, day)
    if key not in memo:
        memo[key] = day_pnl(bot, day, realized=realized)
    return memo[key]


class DailyLoss(DayRule):
    summary = "day P&L (open positions marked to market when reported) at or below the threshold"
    threshold_means = "day P&L, negative, e.g. -500"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"trades", "schedule", "state"})

    def threshold_problem(self, threshold: Decimal) -> str:
        if threshold >= 0:
            return (
                "A loss limit is negative (the day's P&L at or below which it alerts, e.g. -500), "
                f"got {threshold}."
            )
        return ""

    def measure(self, rule: Rule, bot: Bot, day: dt.date, memo: Memo) -> DayLoss:
        realized = day_totals(rule, bot, day, memo).pnl
        if rule.strategy or rule.symbol:
            return DayLoss(realized)  # positions carry no strategy: the scope's realized P&L alone
        return DayLoss(realized, day_pnl_memo(bot, day, realized, memo))

    def breached(self, figure: DayLoss, threshold: Decimal) -> bool:
        return figure.total <= threshold

    def words(self, bot: Bot, day: dt.date, figure: DayLoss, threshold: Decimal) -> Notice:
        limit = format_money(threshold)
        if figure.marked is None:
            return Notice(
                title=figure.title(bot, day),
                message=f"Realized P&L is at or below the {self.label} limit of {limit}.",
                fields=[("Realized P&L", format_money(figure.realized)), ("Limit", limit)],
            )
        marked = figure.marked
        return Notice(
            title=figure.title(bot, day),
            message=f"The day's P&L with open positions marked to market is at or below the {self.label}"
            f" limit of {limit}: realized {format_money(marked.realized)}, open positions"
            f" {format_money(marked.open_part)} (as of {format_market_time(marked.as_of)}).",
            fields=[
                ("Realized", format_money(marked.realized)),
                ("Open positions", format_money(marked.open_part)),
                ("Day P&L", format_money(marked.total)),
                ("Limit", limit),
            ],
        )


class MaxDailyLoss(DailyLoss):
    summary = "also halts trading"
    threshold_means = "day P&L, negative, e.g. -1000"

    def consequence(self, bot: Bot, day: dt.date, figure: DayLoss, now: dt.datetime) -> str:
        what = figure.title(bot, day).removeprefix(f"{bot.name}: ")
        halt = TradingHalt.objects.halt(bot, day, f"{self.label}: {what}", now)
        if halt.resumed_at is None:
            return f"Trading is halted until {halt.ends_on}, or until an admin resumes it."
        return f"An admin resumed trading after the halt ({halt.resumed_by or 'admin'})."
