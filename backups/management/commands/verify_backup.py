from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from backups import objects
from backups.cli import BackupCommand
from backups.restore import verify
from trades.formats import format_size


class Command(BackupCommand):
    help = "Download a backup and check its checksum and integrity, changing nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", default="latest", help="an object name, or latest (default)")

    def handle(self, *args: Any, **options: Any) -> None:
        checked = verify(self.provider(), options["name"], progress=self.progress)
        against = ", ".join(checked.checked_against) or "nothing (no checksum stored; integrity only)"
        check = "pg_restore check" if objects.is_dump(checked.name) else "integrity_check"
        self.stdout.write(
            f"{checked.name} is sound: {format_size(checked.size)}"
            f"{' gzip' if checked.compressed else ''}, {checked.trade_count} trades, "
            f"{check} ok, sha256 {checked.sha256} matches {against}"
        )
