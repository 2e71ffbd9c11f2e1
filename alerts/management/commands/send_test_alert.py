from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.delivery import send_test_alert
from alerts.models import Level


class Command(BaseCommand):
    help = (
        "Send one test alert through every enabled channel and say, one line per channel, what happened. "
        "Exits non-zero when no channel took it."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--level", choices=Level.values, default=Level.INFO)

    def handle(self, *args: Any, **options: Any) -> None:
        results = send_test_alert(level=options["level"])
        if not results:
            raise CommandError(
                "No enabled channel: add one in the admin or set a channel's variables (see .env.example)"
            )
        for result in results:
            self.stdout.write(f"{result.channel.name}: {result.words}")
        if not any(result.ok for result in results):
            raise CommandError("the test alert reached no channel (see above)")
