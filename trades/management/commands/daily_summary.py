from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from trades import market
from trades.models import Bot, Trade
from trades.tables import parse_day


class Command(BaseCommand):
    help = "Print the summary of one trading day (default: today in MARKET_TIMEZONE)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--date", help="trading day, YYYY-MM-DD")
        parser.add_argument("--bot", help="only this bot's trades")
        parser.add_argument("--send", action="store_true", help="also send it to Discord")

    def handle(self, *args: Any, **options: Any) -> None:
        day = parse_day(options["date"]) if options["date"] else market.today()
        trades = Trade.objects.all()
        if options["bot"]:
            bot = Bot.objects.filter(name=options["bot"]).first()
            if bot is None:
                raise CommandError(f"No bot named {options['bot']!r}.")
            trades = trades.for_bot(bot)
        if options["send"]:
            raise CommandError("--send needs the Discord integration, which is not built yet.")
        self.stdout.write(trades.daily_summary(day).render_text())
