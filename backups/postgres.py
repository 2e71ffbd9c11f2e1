"""Backups of a site on PostgreSQL: ``pg_dump`` in its custom format, checked with ``pg_restore``.

The SQLite side copies pages with the backup API (``backups.snapshot``); here the copy is
``pg_dump -Fc``, which is compressed already (zlib), so ``BACKUP_COMPRESS`` adds nothing and
is not applied to a dump. The fingerprint of the trading data and the trade count are read in
the same snapshot the dump is taken in (``pg_export_snapshot`` + ``pg_dump --snapshot``), so a
record always describes exactly the dump it names.

The password reaches ``pg_dump`` and ``pg_restore`` through ``PGPASSWORD`` in the child's
environment only, never on a command line (which ``ps`` shows to every user) or in a message.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from backups.site_lock import LIBPQ_OPTIONS, connect_postgres
from backups.snapshot import VOLATILE_TABLE_PREFIXES, BackupError, Snapshot, create_private_file
from trades.models import Trade

# ``pg_dump -Fc`` files start with this; anything else is not a dump.
DUMP_MAGIC = b"PGDMP"
# Where Debian (and the Docker image) install each major version's client programs.
CLIENT_FOLDERS = Path("/usr/lib/postgresql")
# A dump of a million trades takes about as long as SQLite's copy and check; an hour
# means a server that stopped answering, not a big database.
_TIMEOUT_SECONDS = 3600


def is_dump(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(DUMP_MAGIC)) == DUMP_MAGIC


def connect(settings_dict: dict[str, Any], **kwargs: Any) -> psycopg.Connection[Any]:
    """A new connection of its own to the site's database (not Django's: it must outlive requests)."""
    return connect_postgres(settings_dict, **kwargs)


def client_env(settings_dict: dict[str, Any]) -> dict[str, str]:
    """The environment that points ``pg_dump``/``pg_restore`` at the site's database, password included."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    wanted = {
        "PGDATABASE": settings_dict["NAME"],
        "PGUSER": settings_dict.get("USER"),
        "PGPASSWORD": settings_dict.get("PASSWORD"),
        "PGHOST": settings_dict.get("HOST"),
        "PGPORT": settings_dict.get("PORT"),
    }
    for key, variable in LIBPQ_OPTIONS.items():
        wanted[variable] = settings_dict.get("OPTIONS", {}).get(key)
    env.update({key: str(value) for key, value in wanted.items() if value not in (None, "")})
    return env


def client_binary(name: str, server_version: int | None = None) -> str:
    """``pg_dump`` or ``pg_restore``: Debian's of the server's major version when installed, else
    the newest installed, else the one on ``PATH``. A client older than the server refuses to dump it.
    """
    installed = sorted(
        CLIENT_FOLDERS.glob(f"*/bin/{name}"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if server_version is not None:
        major = server_version // 10000
        for path in installed:
            if path.parent.parent.name == str(major):
                return str(path)
    if installed:
        return str(installed[-1])
    from shutil import which

    found = which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: install PostgreSQL's client programs (Debian: apt install "
            "postgresql-client) of the server's version"
        )
    return found


def _run(
    command: list[str], env: dict[str, str], what: str, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=_TIMEOUT_SECONDS, check=False, **kwargs
        )
    except OSError as exc:
        raise BackupError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} did not finish within {_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        reason = errors[0] if errors else f"exit status {done.returncode}"
        raise BackupError(f"{what} failed: {reason.removeprefix(Path(command[0]).name + ': ')}")
    return done


def site_tables(cursor: psycopg.Cursor[Any]) -> list[str]:
    """The site's tables in the ``public`` schema, by name."""
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")
    return [row[0] for row in cursor.fetchall()]


def content_fingerprint(cursor: psycopg.Cursor[Any]) -> str:
    """A hash of the trading data: of every table outside ``VOLATILE_TABLE_PREFIXES``, the row count
    and the sum of a 64-bit hash of each whole row (its text form), plus the column list.

    A sum is independent of the order rows come back in and needs no sort: one sequential scan per
    table. Any insert or delete changes the count; an update changes one row's hash and with it the
    sum (unless two 64-bit hashes collide, odds of about 2^-64).
    """
    digest = hashlib.sha256()
    for table in site_tables(cursor):
        if table.startswith(VOLATILE_TABLE_PREFIXES):
            continue
        cursor.execute(
            "SELECT string_agg(column_name || ' ' || data_type, ',' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
            [table],
        )
        columns = cursor.fetchone()[0]
        cursor.execute(
            sql.SQL(
                "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) FROM {} t"
            ).format(sql.Identifier(table))
        )
        count, total = cursor.fetchone()
        digest.update(f"{table}|{columns}|{count}|{total}\n".encode())
    return digest.hexdigest()


def take_dump(
    settings_dict: dict[str, Any], workdir: Path, *, unless_fingerprint: str | None = None
) -> Snapshot | None:
    """``pg_dump -Fc`` of the site's database into ``workdir``, checked and checksummed.

    None, before the dump, when the trading data's fingerprint equals ``unless_fingerprint``.
    """
    started = time.monotonic()
    dump = workdir / "trades.pgdump"
    with connect(settings_dict) as connection:
        # REPEATABLE READ: the fingerprint, the count and (through the exported snapshot) the dump
        # all see the database as of one moment.
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        with connection.transaction(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_export_snapshot()")
            snapshot_id = cursor.fetchone()[0]
            fingerprint = content_fingerprint(cursor)
            if unless_fingerprint and fingerprint == unless_fingerprint:
                return None
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(Trade._meta.db_table)))
            trade_count = cursor.fetchone()[0]
            try:
                create_private_file(dump)
            except OSError as exc:
                raise BackupError(f"cannot write the snapshot in {workdir}: {exc.strerror or exc}") from None
            _run(
                [
                    client_binary("pg_dump", connection.info.server_version),
                    "--format=custom",
                    f"--snapshot={snapshot_id}",
                    f"--file={dump}",
                ],
                client_env(settings_dict),
                "pg_dump",
            )
    check_dump(dump)
    return Snapshot.of_file(
        dump, trade_count=trade_count, fingerprint=fingerprint, compressed=False, started=started
    )


def check_dump(path: Path) -> int:
    """Prove a file a sound dump of this site: ``pg_restore --list`` reads its table of contents, which
    must list the trades table's data, and ``pg_restore`` then decompresses that data, whose rows it
    counts. Returns the trade count; ``BackupError`` when anything is wrong.
    """
    if not is_dump(path):
        raise BackupError("not a PostgreSQL custom-format dump (pg_dump -Fc)")
    binary = client_binary("pg_restore")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    listing = _run([binary, "--list", str(path)], env, "pg_restore --list").stdout
    table = Trade._meta.db_table
    if not re.search(rf"^\d+; \d+ \d+ TABLE DATA \S+ {table} ", listing, re.MULTILINE):
        raise BackupError(f"not a dump of this site (no {table} table data)")
    # Streamed: the rows of a million trades are about 100 MB of text.
    command = [binary, "--data-only", f"--table={table}", "--file=-", str(path)]
    rows, inside = 0, False
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            if line.startswith("COPY "):
                inside = True
            elif line == "\\.\n":
                inside = False
            elif inside:
                rows += 1
        errors = [line for line in process.stderr.read().splitlines() if line.strip()]
    if process.returncode != 0:
        reason = errors[0] if errors else f"exit status {process.returncode}"
        raise BackupError(f"pg_restore of {table} failed: {reason.removeprefix('pg_restore: ')}")
    return rows


def restore_dump(settings_dict: dict[str, Any], path: Path) -> None:
    """Put the dump at ``path`` in place of the site's tables, in one transaction.

    ``--clean --if-exists`` drops each object the dump holds before making it anew, and
    ``--single-transaction`` makes the whole restore one commit: a restore that fails half-way
    (a full disk, a lost connection) rolls back and leaves the old data as it was.
    """
    with connect(settings_dict) as connection:
        version = connection.info.server_version
    _run(
        [
            client_binary("pg_restore", version),
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            f"--dbname={settings_dict['NAME']}",
            str(path),
        ],
        client_env(settings_dict),
        "pg_restore",
    )
