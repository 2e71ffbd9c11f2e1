from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from trades import market
from trades.models import Bot, Trade
from trades.signals import period_summary_send
from trades.tables import parse_day


class Command(BaseCommand):
    help = "Print a period's performance figures (default: the last 30 trading days, up to today)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--start", help="first trading day, YYYY-MM-DD")
        parser.add_argument("--end", help="last trading day (included), YYYY-MM-DD")
        parser.add_argument("--bot", help="only this bot's trades")
        parser.add_argument("--send", action="store_true", help="also send it through the alert channels")

    def handle(self, *args: Any, **options: Any) -> None:
        given = {name: parse_day(options[name], name) if options[name] else None for name in ("start", "end")}
        if given["start"] and given["end"] and given["end"] < given["start"]:
            raise CommandError(f"--end ({given['end']}) is before --start ({given['start']}).")
        start, end = market.period(given["start"], given["end"])
        trades = Trade.objects.all()
        bot = None
        if options["bot"]:
            bot = Bot.objects.filter(name=options["bot"]).first()
            if bot is None:
                raise CommandError(f"No bot named {options['bot']!r}.")
            trades = trades.for_bot(bot)
        title = f"Performance of {bot.name}" if bot else "Performance of every bot"
        self.stdout.write(trades.period_summary(start, end).render_text(title))
        if options["send"]:
            self.stdout.write(send_report(start, end, bot))


def send_report(start: Any, end: Any, bot: Bot | None) -> str:
    """Hand the report to whoever sends reports (the alerts app listens); trades knows no channel."""
    answers = period_summary_send.send_robust(sender=Trade, start=start, end=end, bot=bot)
    if not answers:
        raise CommandError("--send needs the alerts app, which is not installed.")
    for _, answer in answers:
        if isinstance(answer, Exception):
            raise CommandError(f"sending the report failed: {answer}")
    return "\n".join(str(answer) for _, answer in answers)
