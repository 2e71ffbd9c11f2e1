from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from trades import market, positions
from trades.management.options import chosen_bot, send_through_alerts
from trades.models import Trade
from trades.serializers import PeriodQuerySerializer
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
        # The rest of the period API's rules (its years, its longest period), in its words.
        period = PeriodQuerySerializer(
            data={name: options[name] for name in ("start", "end") if options[name]}
        )
        if not period.is_valid():
            field, messages = next(iter(period.errors.items()))
            raise CommandError(f"--{field}: {messages[0]}")
        bot = chosen_bot(options["bot"])
        calendar = market.calendar_for(bot) if bot else market.site_calendar()
        start, end = calendar.period(given["start"], given["end"])
        title = f"Performance of {bot.name}" if bot else "Performance of every bot"
        summary = (
            positions.period_summary(bot, start, end)
            if bot
            else Trade.objects.all().period_summary(start, end)
        )
        self.stdout.write(summary.render_text(title))
        if options["send"]:
            sent = send_through_alerts(period_summary_send, "report", start=start, end=end, bot=bot)
            self.stdout.write(sent)
