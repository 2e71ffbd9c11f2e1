from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from backups.cli import BackupCommand
from backups.models import Kind
from backups.upload import back_up
from trades.formats import format_duration, format_size


class Command(BackupCommand):
    help = "Snapshot the database and upload trades_latest.db now (and a timestamped copy with --daily)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--daily", action="store_true", help="also upload backups/trades_<time>.db")

    def handle(self, *args: Any, **options: Any) -> None:
        kinds = [Kind.LATEST, Kind.DAILY] if options["daily"] else [Kind.LATEST]
        outcomes = back_up(kinds, force=True, provider=self.provider(), progress=self.progress)
        for outcome in outcomes:
            record = outcome.record
            if outcome.state == "succeeded" and record is not None:
                self.stdout.write(
                    f"uploaded {record.object_name}: {format_size(record.size or 0)}, "
                    f"{record.trade_count} trades, sha256 {record.sha256}, {format_duration(record.duration)}"
                )
        failed = [outcome for outcome in outcomes if outcome.state in ("failed", "busy")]
        if failed:
            raise CommandError("; ".join(f"{o.object_name}: {o.detail}" for o in failed))
