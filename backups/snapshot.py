"""Consistent copies of the live database, and the checks every copy must pass.

A live WAL database is never copied as a file: its committed state is spread
over the main file and the ``-wal`` file, and a byte copy taken while a writer
commits can be torn (see litestream's docs). SQLite's online backup API copies
the pages of one read transaction instead, so the copy is exactly the database
as of one commit.

The whole copy runs as one ``backup`` step. In WAL mode the read transaction it
holds does not block writers (they append to the WAL), and a stepped backup
would restart from the first page whenever another connection commits between
steps: with the bot inserting every few seconds a large copy would never finish.
``bench/backup.py`` measures the one-step backup against ``VACUUM INTO`` for the
worst single-trade insert latency while it runs; the backup API is the default
because it is faster and keeps page images as they are, which the change
fingerprint below relies on.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from backups.errors import BackupError
from trades.models import Trade

Method = Literal["backup", "vacuum"]

# Tables whose rows change with no change to the trading data: the task
# cluster's queue, results and schedules (written every minute), the backup
# records themselves, sessions, and SQLite's autoincrement counters (whose
# rows for those tables move with them; a trade's own counter moves with its
# pages). The change fingerprint leaves them out.
VOLATILE_TABLE_PREFIXES = ("django_q_", "backups_", "django_session", "sqlite_sequence")

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1024 * 1024
# Level 1: measured on a million trades (320 MB), level 1 shrinks it 4.3x in
# 5.4 s and level 6 4.8x in 12.5 s.
_GZIP_LEVEL = 1


@dataclass(frozen=True)
class Snapshot:
    """A checked copy of the database, ready to upload."""

    path: Path  # the file to upload: a SQLite database, gzip-compressed when ``compressed``
    size: int
    sha256: str  # of the file at ``path``, as stored
    trade_count: int
    fingerprint: str | None  # of the trading data; None when SQLite cannot compute it
    compressed: bool
    duration: float  # seconds, from the start of the copy to the checksum

    @classmethod
    def of_file(
        cls, path: Path, *, trade_count: int, fingerprint: str | None, compressed: bool, started: float
    ) -> Snapshot:
        """The checked copy at ``path``, its size and checksum read now; ``started`` is the
        ``time.monotonic()`` of the copy's start."""
        return cls(
            path=path,
            size=path.stat().st_size,
            sha256=sha256_file(path),
            trade_count=trade_count,
            fingerprint=fingerprint,
            compressed=compressed,
            duration=time.monotonic() - started,
        )


def create_private_file(path: Path) -> None:
    """An empty file only the owner can read: snapshots hold every trade."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def take_snapshot(
    source: Path,
    workdir: Path,
    *,
    compress: bool = False,
    method: Method = "backup",
    unless_fingerprint: str | None = None,
) -> Snapshot | None:
    """Copy the live database at ``source`` into ``workdir``, check it and checksum it.

    Returns None, before the costly checks, when the copy's fingerprint equals
    ``unless_fingerprint`` (nothing changed since that snapshot). Raises
    ``BackupError`` when the copy cannot be made or fails ``PRAGMA integrity_check``.
    """
    started = time.monotonic()
    copy = workdir / "trades.db"
    try:
        copy_database(source, copy, method=method)
        fingerprint = content_fingerprint(copy)
        if unless_fingerprint and fingerprint == unless_fingerprint:
            return None
        # The check costs more than the copy (about 4x at a million trades).
        trade_count = check_database(copy)
        if compress:
            packed = workdir / "trades.db.gz"
            gzip_file(copy, packed)
            copy.unlink()
            copy = packed
        return Snapshot.of_file(
            copy, trade_count=trade_count, fingerprint=fingerprint, compressed=compress, started=started
        )
    except OSError as exc:
        raise BackupError(f"cannot write the snapshot in {workdir}: {exc.strerror or exc}") from None


def copy_database(source: Path, target: Path, *, method: Method = "backup") -> None:
    """A consistent copy of ``source`` (a live database) as the new file ``target`` (mode 0600)."""
    if not source.is_file():
        raise BackupError(f"there is no database at {source}")
    create_private_file(target)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            if method == "vacuum":
                src.execute("VACUUM INTO ?", (str(target),))
            else:
                dst = sqlite3.connect(target)
                try:
                    src.backup(dst)  # pages=-1: one step, see the module docstring
                finally:
                    dst.close()
        finally:
            src.close()
        # A copy in rollback-journal mode is one self-contained file that opens
        # read-only; the site switches it back to WAL when it opens it.
        dst = sqlite3.connect(target)
        try:
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy the database {source}: {exc}") from None


def check_database(path: Path) -> int:
    """Run ``PRAGMA integrity_check`` on a database file; return its trade count.

    Raises ``BackupError`` when the file is not a sound database of this site.
    """
    table = Trade._meta.db_table
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(f"integrity_check failed: {problems[0]}")
            found = db.execute("SELECT 1 FROM sqlite_schema WHERE type='table' AND name=?", (table,))
            if found.fetchone() is None:
                raise BackupError(f"not a database of this site (no {table} table)")
            return db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"not a sound SQLite database: {exc}") from None


def content_fingerprint(path: Path) -> str | None:
    """A hash of the trading data in a snapshot made with the backup API, or None.

    The sync uploads ``trades_latest.db`` only when this differs from the last
    good upload's. A checksum of the whole file would differ every time, because
    the task cluster writes its tables every minute, and counting rows would
    miss a trade edited in the admin. So this hashes the page images of every
    table and index outside ``VOLATILE_TABLE_PREFIXES``, found through the
    ``dbstat`` table, plus the schema: the backup API copies pages verbatim, so a
    table nobody wrote to has the same pages with the same bytes, and any
    insert, update or delete changes at least one of them. It reads about as
    much as the integrity check (a second or two at a million trades).
    Returns None (always upload) when SQLite was built without ``dbstat``.
    """
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            schema = db.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name"
            ).fetchall()
            kept = {name for _, name, table, _ in schema if not table.startswith(VOLATILE_TABLE_PREFIXES)}
            pages = db.execute("SELECT name, pageno FROM dbstat ORDER BY name, pageno").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return None
    digest = hashlib.sha256(repr(schema).encode())
    with open(path, "rb") as handle:
        for name, pageno in pages:
            # sqlite_schema's page 1 also holds the file header, which changes
            # with every write; the schema rows above stand for it.
            if name not in kept or name == "sqlite_schema":
                continue
            handle.seek((pageno - 1) * page_size)
            digest.update(name.encode())
            digest.update(handle.read(page_size))
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def gzip_file(source: Path, target: Path) -> None:
    create_private_file(target)
    with open(source, "rb") as plain, gzip.open(target, "wb", compresslevel=_GZIP_LEVEL) as packed:
        shutil.copyfileobj(plain, packed, _CHUNK)


def gunzip_file(source: Path, target: Path) -> None:
    """Decompress ``source`` into the new file ``target``; ``BackupError`` when it is damaged."""
    create_private_file(target)
    try:
        with gzip.open(source, "rb") as packed, open(target, "wb") as plain:
            shutil.copyfileobj(packed, plain, _CHUNK)
    except (OSError, EOFError) as exc:
        raise BackupError(f"the compressed backup is damaged: {exc}") from None
