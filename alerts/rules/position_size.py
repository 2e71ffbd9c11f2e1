"""Position size: a fill whose notional (quantity x price) is above the limit.

One alert per bot, trading day and symbol, or one per fill with ``per_trade``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar

from django.db.models import DecimalField, ExpressionWrapper, F

from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, NewTrades, Notice, Rule
from trades.formats import format_money, format_price, format_quantity

NOTIONAL = ExpressionWrapper(
    F("quantity") * F("price"), output_field=DecimalField(max_digits=40, decimal_places=8)
)


class PositionSize(Judge):
    summary = "a fill's notional above the threshold"
    threshold_means = "a fill's notional, e.g. 1000"
    takes_per_trade = True
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"trades"})

    def after_trades(self, rule: Rule, trades: NewTrades, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        if rule.threshold is None:
            return
        bot = trades.bot
        # Breached: a notional above the threshold, found by the database.
        fills = (
            rule.in_scope(trades.trades())
            .annotate(notional=NOTIONAL)
            .filter(notional__gt=rule.threshold)
            .order_by("executed_at", "pk")
        )
        for trade in fills:
            notional = format_money(Decimal(trade.quantity) * Decimal(trade.price))
            quantity = format_quantity(trade.quantity)
            notice = Notice(
                title=f"{bot.name}: large position {trade.side} {quantity} {trade.symbol}",
                message=f"Notional {notional} is above the limit of {format_money(rule.threshold)}.",
                fields=[
                    ("Bot", bot.name),
                    ("Symbol", trade.symbol),
                    ("Side", trade.side),
                    ("Quantity", quantity),
                    ("Price", format_price(trade.price)),
                    ("Notional", notional),
                    ("Strategy", trade.strategy or "-"),
                    ("Trade", trade.external_id),
                ],
            )
            subject = (
                f"trade-{trade.pk}" if rule.per_trade else f"bot-{bot.pk}:{trade.trading_day}:{trade.symbol}"
            )
            yield Breach(subject=subject, notice=notice)
