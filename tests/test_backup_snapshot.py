"""Snapshots of the live WAL database: consistent under concurrent writers, checked, private."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backups.providers.local import LocalStorage
from backups.restore import restore
from backups.snapshot import BackupError, check_database, content_fingerprint, take_snapshot
from backups.upload import upload_with_checksum

# A writer process: inserts trades numbered 1, 2, 3, ... one per transaction,
# as the site does (WAL, IMMEDIATE, busy timeout), until the stop file appears.
WRITER = r"""
import sqlite3, sys, os, time
db_path, writer, stop = sys.argv[1], sys.argv[2], sys.argv[3]
db = sqlite3.connect(db_path, timeout=30, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
n = 0
while not os.path.exists(stop):
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO trades_trade (bot_id, external_id, symbol, side, quantity, price, strategy, pnl,"
        " executed_at, trading_day, metadata, received_at)"
        " VALUES (1, ?, 'AAPL', 'BUY', 1, 100, 'momentum', NULL,"
        " '2026-01-15 15:31:00', '2026-01-15', '{}', '2026-01-15 15:31:00')",
        (f"w{writer}-{n:08d}",),
    )
    db.execute("COMMIT")
print(n)
"""


def add_bot(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO trades_bot (id, name, description, is_active, created_at, last_heartbeat_status,"
            " last_heartbeat_details) VALUES (1, 'alpha', '', 1, '2026-01-15 00:00:00', '', '{}')"
        )
    db.close()


@pytest.fixture
def live_db(tmp_path: Path, migrated_sqlite_template: Path) -> Path:
    """A migrated database in WAL mode with one bot, as the site leaves it."""
    path = tmp_path / "data" / "trades.db"
    path.parent.mkdir()
    shutil.copy(migrated_sqlite_template, path)
    add_bot(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
    db.close()
    return path


def count(path: Path, sql: str = "SELECT count(*) FROM trades_trade") -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def sequence_numbers(path: Path, writer: int) -> list[int]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT external_id FROM trades_trade WHERE external_id LIKE ? ORDER BY external_id",
            (f"w{writer}-%",),
        ).fetchall()
    finally:
        db.close()
    return [int(external_id.split("-")[1]) for (external_id,) in rows]


def insert_trade(path: Path, external_id: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO trades_trade (bot_id, external_id, symbol, side, quantity, price, strategy, pnl,"
            " executed_at, trading_day, metadata, received_at) VALUES (1, ?, 'AAPL', 'BUY', 1, 100, '',"
            " NULL, '2026-01-15 15:31:00', '2026-01-15', '{}', '2026-01-15 15:31:00')",
            (external_id,),
        )
    db.close()


def execute(path: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, params)
    db.close()


@pytest.mark.django_db  # the restore looks for a backup record
def test_snapshot_under_continuous_writers_holds_a_prefix_of_each_writers_trades(
    live_db: Path, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(live_db), str(writer), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for writer in (1, 2)
    ]
    snapshots = []
    try:
        deadline = time.monotonic() + 60
        while count(live_db) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(3):
            workdir = tmp_path / f"snap-{i}"
            workdir.mkdir()
            snapshots.append(take_snapshot(live_db, workdir))
            time.sleep(0.2)
    finally:
        stop.touch()
        written = [int(writer.communicate(timeout=60)[0]) for writer in writers]

    for snapshot in snapshots:
        assert check_database(snapshot.path) == snapshot.trade_count
        for writer in (1, 2):
            numbers = sequence_numbers(snapshot.path, writer)
            # Exactly 1..k: every commit before the copy's read transaction, none after.
            assert numbers == list(range(1, len(numbers) + 1))
        assert snapshot.trade_count == sum(len(sequence_numbers(snapshot.path, writer)) for writer in (1, 2))
    counts = [snapshot.trade_count for snapshot in snapshots]
    assert counts == sorted(counts) and counts[0] >= 200
    assert counts[-1] < sum(written) == count(live_db)  # the writers went on after the last copy

    provider = LocalStorage(tmp_path / "store")
    upload_with_checksum(provider, snapshots[-1].path, "trades_latest.db", snapshots[-1].sha256)
    restored = restore(provider, "latest", tmp_path / "restored" / "trades.db", overwrite=False).backup
    assert count(restored.path) == snapshots[-1].trade_count == restored.trade_count
    db = sqlite3.connect(restored.path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


def test_snapshot_file_is_private_and_self_contained(live_db: Path, tmp_path: Path) -> None:
    insert_trade(live_db, "a-1")
    workdir = tmp_path / "work"
    workdir.mkdir()
    snapshot = take_snapshot(live_db, workdir)
    assert stat.S_IMODE(snapshot.path.stat().st_mode) == 0o600
    assert snapshot.trade_count == 1
    # Rollback-journal mode: the single file is the whole database, no -wal needed.
    assert count(snapshot.path, "PRAGMA journal_mode") == "delete"


def test_compressed_snapshot_is_private_gzip(live_db: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    snapshot = take_snapshot(live_db, workdir, compress=True)
    assert snapshot.path.name == "trades.db.gz" and snapshot.compressed
    assert snapshot.path.read_bytes()[:2] == b"\x1f\x8b"
    assert stat.S_IMODE(snapshot.path.stat().st_mode) == 0o600
    assert list(workdir.iterdir()) == [snapshot.path]


def test_fingerprint_ignores_the_task_cluster_but_sees_every_change_to_trading_data(
    live_db: Path, tmp_path: Path
) -> None:
    insert_trade(live_db, "a-1")
    insert_trade(live_db, "a-2")

    def fingerprint() -> str | None:
        workdir = Path(tempfile_dir(tmp_path))
        return take_snapshot(live_db, workdir).fingerprint

    first = fingerprint()
    assert first is not None
    # What the cluster writes every minute, and the backup records themselves.
    execute(
        live_db,
        "INSERT INTO django_q_schedule (func, schedule_type, repeats, next_run, name, minutes, cluster,"
        " intended_date_kwarg) VALUES ('monitorsite.tasks.cluster_heartbeat', 'I', -1,"
        " '2026-01-15 15:31:00', 'x', 1, NULL, NULL)",
    )
    execute(
        live_db,
        "INSERT INTO backups_backuprecord (object_name, provider, kind, state, sha256, fingerprint, error,"
        " created_at) VALUES ('trades_latest.db', 'local', 'latest', 'failed', '', '', 'x', '2026-01-15')",
    )
    assert fingerprint() == first

    execute(live_db, "UPDATE trades_trade SET price = 101 WHERE external_id = 'a-1'")
    edited = fingerprint()
    assert edited != first
    insert_trade(live_db, "a-3")
    inserted = fingerprint()
    assert inserted not in (first, edited)
    execute(live_db, "DELETE FROM trades_trade WHERE external_id = 'a-3'")
    assert fingerprint() not in (first, edited, inserted)


_dirs = iter(range(1000))


def tempfile_dir(tmp_path: Path) -> Path:
    path = tmp_path / f"fp-{next(_dirs)}"
    path.mkdir()
    return path


def test_snapshot_of_a_missing_database_is_a_backup_error(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no database"):
        take_snapshot(tmp_path / "nothing.db", tmp_path)


def test_check_database_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 500)
    with pytest.raises(BackupError, match="not a sound SQLite database"):
        check_database(junk)
    empty_db = tmp_path / "other.db"
    sqlite3.connect(empty_db).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BackupError, match="no trades_trade table"):
        check_database(empty_db)


def test_fingerprint_of_a_snapshot_is_stable(live_db: Path, tmp_path: Path) -> None:
    insert_trade(live_db, "a-1")
    workdir = tmp_path / "w"
    workdir.mkdir()
    snapshot = take_snapshot(live_db, workdir)
    assert content_fingerprint(snapshot.path) == snapshot.fingerprint


def corrupt_an_index(path: Path, trades: int = 20) -> None:
    """A database that opens and counts fine but fails ``PRAGMA integrity_check``.

    An index is redefined under its stored entries (the way SQLite's own tests
    damage one), so its b-tree is intact and every query that does not use it works.
    """
    db = sqlite3.connect(path)
    try:
        for n in range(trades):
            db.execute(
                "INSERT INTO trades_trade (bot_id, external_id, symbol, side, quantity, price, strategy, pnl,"
                " executed_at, trading_day, metadata, received_at) VALUES (1, ?, ?, ?, 1, 100, '', NULL,"
                " '2026-01-15 15:31:00', '2026-01-15', '{}', '2026-01-15 15:31:00')",
                (f"c-{n}", f"S{n}", "BUY" if n % 2 else "SELL"),
            )
        db.execute("CREATE INDEX test_damaged ON trades_trade (symbol)")
        db.commit()
        db.execute("PRAGMA writable_schema=ON")
        db.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, '(symbol)', '(side)') WHERE name = 'test_damaged'"
        )
        db.commit()
    finally:
        db.close()
    assert count(path) == trades  # it opens and counts fine


def test_a_database_that_counts_fine_but_fails_integrity_check_is_not_backed_up(
    live_db: Path, tmp_path: Path
) -> None:
    corrupt_an_index(live_db)
    workdir = tmp_path / "w"
    workdir.mkdir()
    with pytest.raises(BackupError, match="integrity_check failed: row 1 missing from index test_damaged"):
        take_snapshot(live_db, workdir, method="backup")
