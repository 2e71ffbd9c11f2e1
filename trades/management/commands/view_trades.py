from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from trades.formats import format_money, format_price, format_quantity
from trades.management.options import chosen_bot
from trades.market import market_zone
from trades.models import Trade
from trades.tables import parse_day, render_table


class Command(BaseCommand):
    help = "Show trades as a table, newest first."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--recent", type=int, default=20, metavar="N", help="how many (default 20)")
        parser.add_argument("--date", help="trading day, YYYY-MM-DD")
        parser.add_argument("--symbol")
        parser.add_argument("--strategy")
        parser.add_argument("--bot", help="only this bot's trades")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["recent"] < 1:
            raise CommandError("--recent must be at least 1.")
        day = parse_day(options["date"]) if options["date"] else None
        trades = Trade.objects.matching(symbol=options["symbol"], strategy=options["strategy"], day=day)
        bot = chosen_bot(options["bot"])
        if bot is not None:
            trades = trades.for_bot(bot)
        rows = list(trades.newest_first().select_related("bot")[: options["recent"]])
        if not rows:
            self.stdout.write("No trades match.")
            return
        zone = market_zone()
        table = render_table(
            ("executed (market time)", "bot", "symbol", "side", "quantity", "price", "P&L", "strategy", "id"),
            [
                (
                    timezone.localtime(t.executed_at, zone).strftime("%Y-%m-%d %H:%M:%S"),
                    t.bot.name,
                    t.symbol,
                    t.side,
                    format_quantity(t.quantity),
                    format_price(t.price),
                    format_money(t.pnl),
                    t.strategy,
                    t.external_id,
                )
                for t in rows
            ],
            right=(4, 5, 6),
        )
        self.stdout.write(table)
        self.stdout.write(f"\n{len(rows)} trade(s), times in {zone.key}.")
