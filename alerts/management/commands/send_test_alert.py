from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.delivery import send_test_alert
from alerts.models import AlertState, Level


class Command(BaseCommand):
    help = "Send one test alert through every enabled channel and say what happened."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--level", choices=Level.values, default=Level.INFO)

    def handle(self, *args: Any, **options: Any) -> None:
        results = send_test_alert(level=options["level"])
        if not results:
            raise CommandError(
                "No enabled channel: add one in the admin or set a channel's variables (see .env.example)"
            )
        for channel, state in results:
            self.stdout.write(f"{channel.name}: {state}")
        if any(not state.startswith(AlertState.SENT) for _, state in results):
            raise CommandError("the test alert did not reach every channel (see above)")
