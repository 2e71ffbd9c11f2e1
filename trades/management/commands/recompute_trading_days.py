from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from trades.market import calendar_for
from trades.models import Bot, Trade

BATCH = 2000


def recompute(bot: Bot, batch: int = BATCH) -> tuple[int, int]:
    """Sets the trading day of each of ``bot``'s trades from its calendar, ``batch`` trades (by id)
    to a short transaction, one UPDATE per day that changes: the trades table is never locked for
    long and trades stored meanwhile (already on the new calendar) are left as they are. Returns
    (trades read, trades changed)."""
    calendar = calendar_for(bot)
    read = changed = 0
    after = 0
    while True:
        with transaction.atomic():
            rows = list(
                Trade.objects.filter(bot=bot, pk__gt=after)
                .order_by("pk")
                .values_list("pk", "executed_at", "trading_day")[:batch]
            )
            if not rows:
                return read, changed
            moves: dict[Any, list[int]] = defaultdict(list)
            for pk, executed_at, stored in rows:
                day = calendar.trading_day_of(executed_at)
                if day != stored:
                    moves[day].append(pk)
            for day, pks in moves.items():
                changed += Trade.objects.filter(pk__in=pks).update(trading_day=day)
        read += len(rows)
        after = rows[-1][0]


def mismatches(bot: Bot, batch: int = BATCH) -> int:
    """How many of ``bot``'s trades have a trading day other than their calendar's."""
    calendar = calendar_for(bot)
    wrong, after = 0, 0
    while True:
        rows = list(
            Trade.objects.filter(bot=bot, pk__gt=after)
            .order_by("pk")
            .values_list("pk", "executed_at", "trading_day")[:batch]
        )
        if not rows:
            return wrong
        wrong += sum(calendar.trading_day_of(at) != day for _, at, day in rows)
        after = rows[-1][0]


class Command(BaseCommand):
    help = (
        "Recompute the trading day of every trade of a bot from its calendar (after its calendar or"
        " time zone changed), in short batches while the site runs, then verify every trade."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("bot", help="the bot's name")

    def handle(self, *args: Any, bot: str, **options: Any) -> None:
        found = Bot.objects.filter(name=bot).first()
        if found is None:
            raise CommandError(f"No bot named {bot!r}.")
        read, changed = recompute(found)
        wrong = mismatches(found)
        calendar = calendar_for(found)
        if wrong:
            raise CommandError(
                f"{found.name}: {wrong} trades still have another trading day than {calendar.code}'s;"
                " run the command again."
            )
        self.stdout.write(
            f"{found.name}: trading days recomputed on {calendar.code} ({calendar.zone.key}):"
            f" {changed} of {read} trades changed, every trade verified."
        )
