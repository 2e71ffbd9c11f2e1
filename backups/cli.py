"""What the backup commands share: the one place their errors become a one-line exit, and progress."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from backups.progress import TransferProgress
from backups.providers import StorageError, StorageProvider, get_provider
from backups.providers.base import Progress
from backups.snapshot import BackupError


class BackupCommand(BaseCommand):
    """A backup command: a ``StorageError`` or ``BackupError`` ends it with one line and exit status 1."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        try:
            return super().execute(*args, **options)
        except (StorageError, BackupError) as exc:
            raise CommandError(str(exc)) from None

    def provider(self) -> StorageProvider:
        return get_provider()

    def progress(self, name: str, size: int) -> Progress:
        # On stderr, so the command's own output stays clean when piped.
        return TransferProgress(name, size, self.stderr._out)
