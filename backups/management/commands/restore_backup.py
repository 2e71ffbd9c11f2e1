from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from backups.cli import BackupCommand
from backups.restore import restore
from backups.upload import live_database_path


class Command(BackupCommand):
    help = (
        "Download a backup, verify it, and put it in place of the database (stop the site first). "
        "Refuses to replace an existing database without --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", default="latest", help="an object name, or latest (default)")
        parser.add_argument("--output", type=Path, help="restore to this file instead of the site's database")
        parser.add_argument("--yes", action="store_true", help="replace an existing database")

    def handle(self, *args: Any, **options: Any) -> None:
        target = options["output"] or live_database_path()
        restored = restore(
            self.provider(), options["name"], target, overwrite=options["yes"], progress=self.progress
        )
        against = ", ".join(restored.checked_against) or "no stored checksum"
        self.stdout.write(
            f"restored {restored.name} to {restored.path}: {restored.trade_count} trades, "
            f"integrity_check ok, sha256 checked against {against}"
        )
        if options["output"] is None:
            self.stdout.write("run manage.py migrate before starting the site, in case the backup is older")
