from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from alerts.config_file import ConfigFileError, apply, parse


class Command(BaseCommand):
    help = "Load alert rules, channels and the summary time from an alerts.yaml file (checked first)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="path to alerts.yaml")
        parser.add_argument(
            "--replace", action="store_true", help="remove rules and channels not in the file"
        )
        parser.add_argument("--yes", action="store_true", help="confirm --replace")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            parsed = parse(text)
        except ConfigFileError as exc:
            raise CommandError(f"{path}: {exc}; nothing was changed") from None
        if options["replace"] and not options["yes"]:
            raise CommandError(
                "--replace deletes rules and channels missing from the file; add --yes to confirm"
            )
        try:
            report = apply(parsed, replace=options["replace"])
        except ConfigFileError as exc:
            raise CommandError(f"{path}: {exc}; nothing was changed") from None
        for label, names in (
            ("created", report.created),
            ("updated", report.updated),
            ("unchanged", report.unchanged),
            ("removed", report.removed),
            ("kept (not in the file)", report.kept),
        ):
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
