from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.config_file import export


class Command(BaseCommand):
    help = "Write the alert rules, channels and summary time as alerts.yaml (to FILE, or print them)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", nargs="?", help="where to write; default: standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        text = export()
        if not options["file"]:
            self.stdout.write(text, ending="")
            return
        path = Path(options["file"])
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror}") from None
        self.stdout.write(f"wrote {path}")
