from __future__ import annotations

from typing import Any

from backups import objects
from backups.cli import BackupCommand
from trades.formats import format_size


class Command(BackupCommand):
    help = "List the backups the storage provider holds, newest first."

    def handle(self, *args: Any, **options: Any) -> None:
        provider = self.provider()
        stored = provider.list()
        names = {obj.name for obj in stored}
        backups = sorted(
            (obj for obj in stored if objects.is_backup(obj.name)), key=lambda obj: obj.modified, reverse=True
        )
        self.stdout.write(f"{len(backups)} backup(s) in {provider.describe()}")
        if not backups:
            return
        width = max(len(obj.name) for obj in backups)
        self.stdout.write(f"{'name':<{width}}  {'size':>10}  {'uploaded (UTC)':<19}  checksum")
        for obj in backups:
            checksum = "yes" if objects.checksum_name(obj.name) in names else "no"
            self.stdout.write(
                f"{obj.name:<{width}}  {format_size(obj.size):>10}  "
                f"{obj.modified:%Y-%m-%d %H:%M:%S}  {checksum}"
            )
