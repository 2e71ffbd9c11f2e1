from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from trades import market
from trades.models import Bot, Trade
from trades.signals import daily_summary_send
from trades.tables import format_number as _num
from trades.tables import parse_day, render_table


class Command(BaseCommand):
    help = "Print the summary of one trading day (default: today in MARKET_TIMEZONE)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--date", help="trading day, YYYY-MM-DD")
        parser.add_argument("--bot", help="only this bot's trades")
        parser.add_argument("--send", action="store_true", help="also send it to Discord")

    def handle(self, *args: Any, **options: Any) -> None:
        day = parse_day(options["date"]) if options["date"] else market.today()
        trades = Trade.objects.all()
        bot = None
        if options["bot"]:
            bot = Bot.objects.filter(name=options["bot"]).first()
            if bot is None:
                raise CommandError(f"No bot named {options['bot']!r}.")
            trades = trades.for_bot(bot)
        self.stdout.write(format_summary(trades.daily_summary(day)))
        if options["send"]:
            self.stdout.write(send_summary(day, bot))


def send_summary(day: Any, bot: Bot | None) -> str:
    """Hand the summary to whoever sends summaries (the alerts app listens); trades knows no Discord."""
    answers = daily_summary_send.send_robust(sender=Trade, day=day, bot=bot)
    if not answers:
        raise CommandError("--send needs the alerts app, which is not installed.")
    for _, answer in answers:
        if isinstance(answer, Exception):
            raise CommandError(f"sending the summary failed: {answer}")
    return "\n".join(str(answer) for _, answer in answers)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"Daily summary for {summary['date']:%A %Y-%m-%d}",
        "",
        render_table(
            ("trades", "closed", "wins", "losses", "win rate", "total P&L"),
            [
                (
                    summary["total_trades"],
                    summary["closed_trades"],
                    summary["wins"],
                    summary["losses"],
                    _rate(summary["win_rate"]),
                    _num(summary["total_pnl"]),
                )
            ],
            right=range(6),
        ),
    ]
    for label, key in (("Best trade", "best_trade"), ("Worst trade", "worst_trade")):
        trade = summary[key]
        if trade:
            lines.append(f"{label}: {trade['symbol']} {_num(trade['pnl'])} ({trade['external_id']})")
    for title, key in (("strategy", "by_strategy"), ("symbol", "by_symbol")):
        if summary[key]:
            lines += [
                "",
                render_table(
                    (title, "trades", "P&L", "win rate"),
                    [
                        (name or "(none)", row["trades"], _num(row["pnl"]), _rate(row["win_rate"]))
                        for name, row in summary[key].items()
                    ],
                    right=(1, 2, 3),
                ),
            ]
    return "\n".join(lines)
