from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from backups import objects
from backups.cli import BackupCommand
from backups.restore import SAFETY_COPY_MARK, restore, restore_postgres, safety_copies
from backups.upload import live_database_path, on_postgres
from trades.formats import format_size


class Command(BackupCommand):
    help = (
        "Download a backup, verify it, and put it in place of the database, keeping the one it "
        "replaces as a safety copy beside it. Refuses to replace an existing database without --yes, "
        "and while the site runs on it without --while-running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", default="latest", help="an object name, or latest (default)")
        parser.add_argument("--output", type=Path, help="restore to this file instead of the site's database")
        parser.add_argument("--yes", action="store_true", help="replace an existing database")
        parser.add_argument(
            "--while-running",
            action="store_true",
            help="replace the database even though the web server or the task cluster runs on it "
            "(what they write until restarted is lost)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if on_postgres() and options["output"] is None:
            if options["while_running"]:
                raise CommandError(
                    "--while-running is for a site on SQLite; on PostgreSQL stop the web servers and "
                    "task clusters first (a restore drops the tables they write to)"
                )
            restored = restore_postgres(
                self.provider(), options["name"], overwrite=options["yes"], progress=self.progress
            )
        else:
            restored = restore(
                self.provider(),
                options["name"],
                options["output"] or live_database_path(),
                overwrite=options["yes"],
                while_running=options["while_running"],
                progress=self.progress,
            )
        backup = restored.backup
        against = ", ".join(backup.checked_against) or "no stored checksum"
        check = "pg_restore check ok" if objects.is_dump(backup.name) else "integrity_check ok"
        self.stdout.write(
            f"restored {backup.name} to {backup.path}: {backup.trade_count} trades, "
            f"{check}, sha256 checked against {against}"
        )
        if restored.safety_copy is not None:
            self.stdout.write(
                f"the database it replaced is kept as {restored.safety_copy} "
                "(to undo the restore, see docs/BACKUP_RESTORE.md)"
            )
            kept = restored.safety_copy
            earlier = [
                path
                for path in safety_copies(kept.with_name(kept.name.split(SAFETY_COPY_MARK)[0]))
                if path != kept
            ]
            if earlier:
                size = sum(path.stat().st_size for path in earlier)
                self.stdout.write(
                    f"{len(earlier)} safety copies of earlier restores beside it take {format_size(size)}; "
                    "delete them once you no longer need them"
                )
        if restored.site_was_running:
            self.stdout.write(
                "the site was running: restart the web server and the task cluster now, "
                "until then what they write goes to the replaced file"
            )
        if options["output"] is None:
            self.stdout.write("run manage.py migrate before starting the site, in case the backup is older")
