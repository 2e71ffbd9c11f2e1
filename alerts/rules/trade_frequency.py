"""Trade frequency: more trades in one trading day than the limit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alerts.rules.base import Notice
from alerts.rules.trading_day import DayRule
from trades.formats import format_quantity
from trades.models import Bot
from trades.summary import DayFigures


class TradeFrequency(DayRule):
    summary = "more trades in a day than the threshold"
    threshold_means = "trades in a day, e.g. 50"

    def threshold_problem(self, threshold: Decimal) -> str:
        if threshold <= 0 or threshold != threshold.to_integral_value():
            return f"Must be a whole number of trades above 0, got {threshold}."
        return ""

    def figure(self, totals: DayFigures) -> int:
        return totals.trades

    def breached(self, figure: Decimal | int, threshold: Decimal) -> bool:
        return figure > threshold

    def words(self, bot: Bot, day: dt.date, figure: Decimal | int, threshold: Decimal) -> Notice:
        return Notice(
            title=f"{bot.name}: {figure} trades on {day}",
            message=f"More trades in one trading day than the limit of {format_quantity(threshold)}.",
            fields=[("Trades", figure), ("Limit", format_quantity(threshold))],
        )
