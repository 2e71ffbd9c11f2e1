from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create what the site needs on disk: the data and log folders (owner only) and, "
        "unless DJANGO_SECRET_KEY is set, a secret key file. Safe to run again."
    )
    # It is what makes the secret key check pass, so it must run before that check can.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        folders = {
            settings.DATA_DIR,
            Path(settings.DATABASE_PATH).parent,
            settings.LOG_DIR,
            settings.STATIC_ROOT,
        }
        for folder in sorted(folders):
            if not folder.is_dir():
                try:
                    folder.mkdir(parents=True, mode=0o700)
                except OSError as exc:
                    raise CommandError(f"cannot create {folder}: {exc.strerror}") from None
                self.stdout.write(f"created  {folder}")
        if os.environ.get("DJANGO_SECRET_KEY", "").strip():
            self.stdout.write("secret key from DJANGO_SECRET_KEY")
            return
        self._write_secret_key(settings.SECRET_KEY_FILE)

    def _write_secret_key(self, key_file: Path) -> None:
        try:
            # O_EXCL: two processes starting at once must not write two different keys.
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            self.stdout.write(f"ok       {key_file}")
            return
        except OSError as exc:
            raise CommandError(f"cannot write {key_file}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        self.stdout.write(f"created  {key_file} (the secret key; keep it with your backups)")
