"""How a restore knows that the site is running on the database it would replace.

The web server and the task cluster each hold a shared ``flock`` on a file beside the
database (``trades.db.site-lock``) for as long as they run. A restore takes the
exclusive lock without waiting, and holds it while it swaps the file; when it cannot
have it, a process of the site has the database open, and replacing the file would
leave that process writing its trades into the old, unlinked one, where they are lost.

``flock`` rather than a pid file: the kernel drops the lock when the process ends in
any way (SIGKILL, an OOM kill, a container stop), so a lock never goes stale and no
pid is ever mistaken for another process's. A forked child shares its parent's lock,
so django-q2's sentinel and workers keep the site marked running even when the
``qcluster`` process above them was killed alone and they go on writing.

The backups app owns both halves of the protocol; ``monitorsite`` (which may import
every app, see docs/ARCHITECTURE.md) takes the shared half when the web server and
the task cluster start.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from backups.errors import BackupError

SUFFIX = ".site-lock"

# The descriptors this process holds its shared lock through. Never closed: the lock
# lasts as long as the process (and the children it forks).
_held: list[int] = []


class SiteRunning(BackupError):
    """A process of the site holds the database; the message names it and says what to do."""


def lock_path(database: Path) -> Path:
    """The lock file of ``database``: ``trades.db.site-lock`` beside ``trades.db``.

    It is never removed: a process could open the old file just before the removal and
    then hold a lock that nobody else sees.
    """
    return database.with_name(database.name + SUFFIX)


def _open(database: Path) -> int:
    return os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)


def hold_while_running(database: Path, on_wait: Callable[[str], None] | None = None) -> None:
    """Mark this process as part of the site running on ``database``, until it ends.

    When a restore of that database is under way this waits for it to finish (telling
    ``on_wait`` why), so the site never opens a file that is about to be replaced.
    ``OSError`` when the lock file cannot be made.
    """
    fd = _open(database)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        if on_wait is not None:
            on_wait(f"waiting for the restore of {database} to finish ({lock_path(database)} is held)")
        fcntl.flock(fd, fcntl.LOCK_SH)
    _held.append(fd)


@contextmanager
def held_for_restore(database: Path, *, while_running: bool = False) -> Iterator[bool]:
    """The exclusive lock on ``database`` for a restore; yields whether the site was running.

    Raises ``SiteRunning`` when a process of the site holds it, unless ``while_running``
    (the user's explicit choice to replace the file under it anyway), and
    ``BackupError`` when the lock file cannot be made.
    """
    try:
        fd = _open(database)
    except OSError as exc:
        raise BackupError(f"cannot write in {database.parent}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            running = False
        except BlockingIOError:
            if not while_running:
                raise SiteRunning(
                    f"the site is running on {database}: stop {_holders(lock_path(database))} first "
                    "(docker compose stop web qcluster, or Ctrl-C scripts/serve.sh), or pass "
                    "--while-running to replace the database under it and lose what it writes afterwards"
                ) from None
            running = True
        yield running
    finally:
        os.close(fd)


def _holders(lock: Path) -> str:
    """What holds ``lock``, as the user would stop it: from ``/proc/locks`` on Linux, else in general."""
    try:
        stat = lock.stat()
        key = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
        with open("/proc/locks") as table:
            # "1: FLOCK  ADVISORY  READ  4242 fe:00:2779565 0 EOF"; "1: -> FLOCK ..." waits.
            rows = [line.split() for line in table]
        pids = sorted({int(row[4]) for row in rows if row[1] == "FLOCK" and row[5] == key})
    except (OSError, ValueError, IndexError):
        pids = []
    named = [name for name in map(_process_name, pids) if name]
    if not named:
        return "the web server and the task cluster"
    return " and ".join(named)


def _process_name(pid: int) -> str:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""  # gone, or in another container: not something this message can name
    if "monitorsite.serve" in command:
        return f"the web server (pid {pid})"
    if "qcluster" in command:
        return f"the task cluster (pid {pid})"
    return f"pid {pid} ({command.strip()[:60]})"


# --- PostgreSQL: several machines share the database, so the lock lives in the server. ---------
#
# Every web process and task cluster holds a shared session advisory lock on this key, on a
# connection of its own kept open for the life of the process (and, inherited, of the workers it
# forks: the server ends the session only when the last of them closes the socket). A restore
# takes the exclusive lock without waiting. Advisory locks belong to one database, so two sites on
# one server do not see each other's. The key is arbitrary and fixed: "MONITOR!" as 8 bytes.
ADVISORY_KEY = int.from_bytes(b"MONITOR!", "big") - (1 << 63)
_held_connections: list[object] = []
# The connection options a DATABASE_URL may carry that libpq also reads from the environment.
LIBPQ_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}


def connect_postgres(settings_dict: dict[str, Any], **kwargs: Any) -> Any:
    """A psycopg connection of its own to the site's PostgreSQL database (``DATABASES["default"]``).

    Django-free, like the rest of this module: the web server takes its lock before Django is set
    up. ``BackupError`` naming the database (never the password) when it cannot connect.
    """
    import psycopg

    options = {key: value for key, value in settings_dict.get("OPTIONS", {}).items() if key in LIBPQ_OPTIONS}
    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
        **options,
    }
    try:
        return psycopg.connect(**{k: v for k, v in params.items() if v is not None}, **kwargs)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackupError(f"cannot connect to PostgreSQL {settings_dict['NAME']}: {reason}") from None


def _application_name() -> str:
    """How a holder names itself in ``pg_stat_activity``, for the message of a refused restore."""
    import socket
    import sys

    role = "task cluster" if "qcluster" in " ".join(sys.argv) else "web server"
    return f"monitor {role} on {socket.gethostname()} (pid {os.getpid()})"[:63]


def hold_postgres_while_running(
    settings_dict: dict[str, Any], on_wait: Callable[[str], None] | None = None
) -> None:
    """The PostgreSQL form of ``hold_while_running``: a shared advisory lock, held until this
    process ends. Waits while a restore holds the exclusive one. ``OSError`` when the server
    cannot be reached (its ``filename`` names the database), as the callers expect of a lock file.
    """
    try:
        connection = connect_postgres(settings_dict, autocommit=True, application_name=_application_name())
    except BackupError as exc:
        raise OSError(0, str(exc), f"PostgreSQL {settings_dict['NAME']}") from None
    got = connection.execute("SELECT pg_try_advisory_lock_shared(%s)", [ADVISORY_KEY]).fetchone()[0]
    if not got:
        if on_wait is not None:
            on_wait(f"waiting for the restore of PostgreSQL {settings_dict['NAME']} to finish")
        connection.execute("SELECT pg_advisory_lock_shared(%s)", [ADVISORY_KEY])
    _held_connections.append(connection)


@contextmanager
def held_postgres_for_restore(settings_dict: dict[str, Any]) -> Iterator[None]:
    """The exclusive advisory lock for a restore of the site's PostgreSQL database.

    ``SiteRunning`` naming the holders (from ``pg_locks`` and ``pg_stat_activity``) when a web
    process or task cluster of the site holds its shared lock.
    """
    with connect_postgres(settings_dict, autocommit=True) as connection:
        got = connection.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()[0]
        if not got:
            raise SiteRunning(
                f"the site is running on PostgreSQL {settings_dict['NAME']}: stop "
                f"{_postgres_holders(connection)} first (on every machine), then run the restore again"
            )
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_KEY])


def _postgres_holders(connection: object) -> str:
    key = ADVISORY_KEY & 0xFFFFFFFFFFFFFFFF
    rows = connection.execute(  # type: ignore[attr-defined]
        "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1 ORDER BY 1",
        [key >> 32, key & 0xFFFFFFFF],
    ).fetchall()
    named = [
        f"the {name.removeprefix('monitor ')}" + (f" from {addr}" if addr else "") for name, addr in rows
    ]
    return " and ".join(named) or "the web servers and task clusters"
