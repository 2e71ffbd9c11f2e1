from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from monitorsite.move_to_postgres import CopyError, copy_site


class Command(BaseCommand):
    help = (
        "Copy the SQLite site (DATABASE_PATH, or --from PATH) into the empty PostgreSQL database of "
        "DATABASE_URL, which it migrates first; then check that every table's row count and every "
        "bot's daily summary of every trading day are equal. One transaction: a failure changes nothing. "
        "Stop the site first. See docs/SCALING.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="source", type=Path, default=None, help="the SQLite file (default DATABASE_PATH)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["source"] or Path(settings.DATABASE_PATH)
        try:
            copied = copy_site(source)
        except CopyError as exc:
            raise CommandError(str(exc)) from None
        for table, count in copied.rows.items():
            if count:
                self.stdout.write(f"{table}: {count} rows")
        self.stdout.write(
            f"copied {source} into {settings.DATABASE_DESCRIPTION}: {sum(copied.rows.values())} rows in "
            f"{len(copied.rows)} tables, row counts equal, {copied.days_checked} daily summaries "
            "(per bot and trading day) equal"
        )
