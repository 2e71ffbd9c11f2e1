from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create an admin user when there is none. The password comes from ADMIN_PASSWORD, "
        "else one is generated and printed once."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default=os.environ.get("ADMIN_USERNAME") or "admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write("An admin user exists already; nothing to do.")
            return
        password = os.environ.get("ADMIN_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(16)
        users.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(
                f"Created admin user {username!r} with password: {password}\n"
                "It is shown only this once; change it in the admin (or set ADMIN_PASSWORD)."
            )
        else:
            self.stdout.write(f"Created admin user {username!r} with the password from ADMIN_PASSWORD.")
