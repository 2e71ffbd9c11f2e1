"""The scheduled sync run by the real task cluster, as ``setup_schedules`` registers it."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.harness import Site, site_env, stop

pytestmark = pytest.mark.server


def test_the_task_cluster_runs_the_scheduled_sync_into_storage(
    tmp_path: Path, migrated_template: Path
) -> None:
    shutil.copy(migrated_template, tmp_path / "trades.db")  # schedules registered, due now
    store = tmp_path / "store"
    env = site_env(tmp_path, CLOUD_STORAGE_PROVIDER="local", LOCAL_STORAGE_PATH=str(store))
    site = Site(url="", env=env, tmp=tmp_path, processes=[])
    site.start_cluster()
    try:
        # The cluster's scheduler first looks for due tasks about 30 s after it starts.
        deadline = time.monotonic() + 150
        while not (store / "trades_latest.db.sha256").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for process in site.processes:
            stop(process)
    assert (store / "trades_latest.db.sha256").exists(), site.log("qcluster.log")[-3000:]
    db = sqlite3.connect(tmp_path / "trades.db")
    rows = db.execute("SELECT object_name, state, provider, sha256 FROM backups_backuprecord").fetchall()
    db.close()
    assert rows[0][:3] == ("trades_latest.db", "succeeded", "local")
    assert (store / "trades_latest.db.sha256").read_text().split()[0] == rows[0][3]
    # The snapshot taken inside a worker, while the cluster wrote its own tables, is sound.
    backup = sqlite3.connect(store / "trades_latest.db")
    assert backup.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    backup.close()
