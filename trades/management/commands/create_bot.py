from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from trades.market import validate_calendar_code, validate_timezone_name
from trades.models import Bot


class Command(BaseCommand):
    help = (
        "Create a bot and its write key, or with --read-only a read-only key for a bot "
        "(created if missing). The key is printed alone on the last line, and only once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the bot's name, e.g. momentum-1")
        parser.add_argument("--read-only", action="store_true", help="issue a read-only key")
        parser.add_argument(
            "--calendar",
            help="the market it trades: an exchange code (XNYS, XLON, XTKS, XHKG ...), 24/7 or 24/5"
            " (default MARKET_CALENDAR); for a new bot only",
        )
        parser.add_argument(
            "--timezone", help="for 24/7 and 24/5, the IANA time zone its days start in (default UTC)"
        )

    def handle(
        self,
        *args: Any,
        name: str,
        read_only: bool,
        calendar: str | None = None,
        timezone: str | None = None,
        **options: Any,
    ) -> None:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters.")
        market: dict[str, str] = {}
        try:
            if calendar is not None:
                market["calendar"] = calendar.strip().upper()
                validate_calendar_code(market["calendar"])
            if timezone is not None:
                market["timezone"] = timezone.strip()
                validate_timezone_name(market["timezone"])
        except ValidationError as exc:
            option = "--calendar" if "timezone" not in market else "--timezone"
            raise CommandError(f"{option}: {exc.messages[0]}") from None
        with transaction.atomic():
            bot, created = Bot.objects.get_or_create(name=name, defaults=market)
            if not created and market:
                raise CommandError(
                    f"Bot {name!r} exists already: change its calendar in the admin, then run"
                    f" recompute_trading_days {name}."
                )
            if not created and not read_only:
                raise CommandError(
                    f"Bot {name!r} exists already. Use --read-only for a read-only key, "
                    "or issue a new write key in the admin."
                )
            key_obj, key = bot.issue_key(read_only=read_only)
        kind = "read-only" if read_only else "write"
        if created:
            self.stdout.write(f"Created bot {bot.name!r}.")
        self.stdout.write(
            f"Its {kind} key (prefix {key_obj.prefix}) is below. It is stored hashed and "
            "will not be shown again. Send it as 'Authorization: Bearer <key>'."
        )
        self.stdout.write(key)
