from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from trades import market
from trades.models import Bot, Trade
from trades.signals import daily_summary_send
from trades.tables import parse_day


class Command(BaseCommand):
    help = "Print the summary of one trading day (default: today in MARKET_TIMEZONE)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--date", help="trading day, YYYY-MM-DD")
        parser.add_argument("--bot", help="only this bot's trades")
        parser.add_argument("--send", action="store_true", help="also send it through the alert channels")

    def handle(self, *args: Any, **options: Any) -> None:
        day = parse_day(options["date"]) if options["date"] else market.today()
        trades = Trade.objects.all()
        bot = None
        if options["bot"]:
            bot = Bot.objects.filter(name=options["bot"]).first()
            if bot is None:
                raise CommandError(f"No bot named {options['bot']!r}.")
            trades = trades.for_bot(bot)
        self.stdout.write(trades.daily_summary(day).render_text())
        if options["send"]:
            self.stdout.write(send_summary(day, bot))


def send_summary(day: Any, bot: Bot | None) -> str:
    """Hand the summary to whoever sends summaries (the alerts app listens); trades knows no channel."""
    answers = daily_summary_send.send_robust(sender=Trade, day=day, bot=bot)
    if not answers:
        raise CommandError("--send needs the alerts app, which is not installed.")
    for _, answer in answers:
        if isinstance(answer, Exception):
            raise CommandError(f"sending the summary failed: {answer}")
    return "\n".join(str(answer) for _, answer in answers)
