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
