from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from backups.cli import BackupCommand
from backups.retention import prune


class Command(BackupCommand):
    help = (
        "Delete timestamped backups older than N days (default BACKUP_RETENTION_DAYS); "
        "lists them only, without --yes. trades_latest.db and the newest backup are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="keep this many days")
        parser.add_argument("--yes", action="store_true", help="delete them")

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.BACKUP_RETENTION_DAYS if options["days"] is None else options["days"]
        if days < 0:
            raise CommandError("--days must be 0 or more")
        doomed = prune(self.provider(), timezone.now(), days, apply=options["yes"])
        verb = "deleted" if options["yes"] else "would delete"
        for obj in doomed:
            self.stdout.write(f"{verb} {obj.name}")
        if not doomed:
            self.stdout.write(f"no backups older than {days} days")
        elif not options["yes"]:
            self.stdout.write(f"{len(doomed)} backup(s) older than {days} days; --yes deletes them")
