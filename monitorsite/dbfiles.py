"""The SQLite database and its WAL and shared-memory files are readable by their owner only.

``scripts/serve.sh`` and ``monitorsite.serve`` set a umask of 077, so files
they create start that way; this covers the rest (a database made by another
command, a container with a different umask, a file copied in with a restore).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

from backups.site_lock import hold_postgres_while_running, hold_while_running

SUFFIXES = ("", "-wal", "-shm")


def restrict_database_files(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """``connection_created`` receiver: chmod 600 what others could read (once per connection)."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for suffix in SUFFIXES:
        path = name + suffix
        try:
            mode = os.stat(path).st_mode
            if mode & 0o077:
                os.chmod(path, 0o600)
        except OSError:
            # Not there yet (SQLite makes the WAL on the first write) or not ours to change.
            continue


def mark_site_running() -> None:
    """Hold the running-site lock beside the database until this process ends (``backups.site_lock``).

    The web server and the task cluster call it as they start, so that a restore
    refuses to replace the database under them. It waits while a restore runs.
    ``OSError`` (its ``filename`` the lock file) when the lock file cannot be made.
    """

    def on_wait(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("postgresql"):
        # Several machines share the database: a shared advisory lock in the server.
        hold_postgres_while_running(database, on_wait=on_wait)
        return
    hold_while_running(Path(database["NAME"]), on_wait=on_wait)
