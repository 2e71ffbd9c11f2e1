from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from trades import market, positions
from trades.management.options import chosen_bot, send_through_alerts
from trades.models import Trade
from trades.signals import daily_summary_send
from trades.tables import parse_day


class Command(BaseCommand):
    help = (
        "Print the summary of one trading day (default: today on the bot's calendar, or in MARKET_TIMEZONE)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--date", help="trading day, YYYY-MM-DD")
        parser.add_argument("--bot", help="only this bot's trades")
        parser.add_argument("--send", action="store_true", help="also send it through the alert channels")

    def handle(self, *args: Any, **options: Any) -> None:
        bot = chosen_bot(options["bot"])
        day = (
            parse_day(options["date"])
            if options["date"]
            else (market.calendar_for(bot) if bot else market.site_calendar()).today()
        )
        summary = positions.daily_summary(bot, day) if bot else Trade.objects.all().daily_summary(day)
        self.stdout.write(summary.render_text())
        if options["send"]:
            self.stdout.write(send_through_alerts(daily_summary_send, "summary", day=day, bot=bot))
