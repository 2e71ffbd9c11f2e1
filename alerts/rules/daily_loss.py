"""Daily loss and max daily loss: the day's realized P&L at or below a negative limit.

The max daily loss also halts trading: the status endpoint tells the bot to stop until
the next trading day, or until an admin resumes it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alerts.models import TradingHalt
from alerts.rules.base import Notice
from alerts.rules.trading_day import DayRule
from trades.formats import format_money
from trades.models import Bot
from trades.summary import DayFigures


class DailyLoss(DayRule):
    summary = "realized P&L at or below the threshold"
    threshold_means = "realized P&L, negative, e.g. -500"

    def threshold_problem(self, threshold: Decimal) -> str:
        if threshold >= 0:
            return (
                "A loss limit is negative (the realized P&L at or below which it alerts, e.g. -500), "
                f"got {threshold}."
            )
        return ""

    def figure(self, totals: DayFigures) -> Decimal:
        return totals.pnl

    def breached(self, figure: Decimal | int, threshold: Decimal) -> bool:
        return figure <= threshold

    def words(self, bot: Bot, day: dt.date, figure: Decimal | int, threshold: Decimal) -> Notice:
        return Notice(
            title=f"{bot.name}: realized P&L {format_money(figure)} on {day}",
            message=f"Realized P&L is at or below the {self.label} limit of {format_money(threshold)}.",
            fields=[("Realized P&L", format_money(figure)), ("Limit", format_money(threshold))],
        )


class MaxDailyLoss(DailyLoss):
    summary = "also halts trading"
    threshold_means = "realized P&L, negative, e.g. -1000"

    def consequence(self, bot: Bot, day: dt.date, figure: Decimal | int, now: dt.datetime) -> str:
        reason = f"{self.label}: realized P&L {format_money(figure)} on {day}"
        halt = TradingHalt.objects.halt(bot, day, reason, now)
        if halt.resumed_at is None:
            return f"Trading is halted until {halt.ends_on}, or until an admin resumes it."
        return f"An admin resumed trading after the halt ({halt.resumed_by or 'admin'})."
