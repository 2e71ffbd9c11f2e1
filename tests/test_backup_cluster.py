"""The scheduled sync run by the real task cluster, as ``setup_schedules`` registers it."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.harness import Site, site_env, stop

pytestmark = pytest.mark.server


def finished_records(tmp_path: Path) -> list[tuple[str, str, str, str, str]]:
    db = sqlite3.connect(tmp_path / "trades.db", timeout=30)
    try:
        return db.execute(
            # The sync's record alone: past 16:30 on a trading day the daily backup runs too.
            "SELECT object_name, state, provider, sha256, error FROM backups_backuprecord"
            " WHERE state != 'running' AND kind = 'latest'"
        ).fetchall()
    finally:
        db.close()


def test_the_task_cluster_runs_the_scheduled_sync_into_storage(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    # SQLite in both runs: the snapshot of the file a worker takes is what is checked here.
    shutil.copy(migrated_sqlite_template, tmp_path / "trades.db")  # schedules registered, due now
    store = tmp_path / "store"
    env = site_env(tmp_path, sqlite=True, CLOUD_STORAGE_PROVIDER="local", LOCAL_STORAGE_PATH=str(store))
    site = Site(url="", env=env, tmp=tmp_path, processes=[])
    site.start_cluster()
    try:
        # The cluster's scheduler first looks for due tasks about 30 s after it starts;
        # generous, for a machine shared with other test runs.
        deadline = time.monotonic() + 240
        while not finished_records(tmp_path) and time.monotonic() < deadline:
            time.sleep(1)
    finally:
        for process in site.processes:
            stop(process)
    rows = finished_records(tmp_path)
    assert rows, site.log("qcluster.log")[-3000:]
    assert rows[0][:3] == ("trades_latest.db", "succeeded", "local"), rows
    assert (store / "trades_latest.db.sha256").read_text().split()[0] == rows[0][3]
    # The snapshot taken inside a worker, while the cluster wrote its own tables, is sound.
    backup = sqlite3.connect(store / "trades_latest.db")
    assert backup.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    backup.close()
