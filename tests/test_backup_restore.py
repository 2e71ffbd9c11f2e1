"""Restore, verify, list and prune: the commands as an operator runs them."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import resource
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import override_settings

from backups.models import BackupRecord
from backups.progress import TransferProgress
from backups.providers.local import LocalStorage
from backups.site_lock import held_for_restore
from backups.upload import upload_with_checksum
from tests.conftest import make_trade, stored_trade
from tests.harness import Site, free_port, manage, site_env, site_lock_taken, start_web, stop, wait_for
from trades.models import Bot, Trade


@pytest.fixture
def store(tmp_path: Path, sqlite_site_database: Path) -> Iterator[Path]:
    """The local store, for in-process tests of backups of a SQLite file: the site's database is
    SQLite in both runs (test_backup_postgres.py has the PostgreSQL counterparts)."""
    root = tmp_path / "store"
    with override_settings(CLOUD_STORAGE_PROVIDER="local", LOCAL_STORAGE_PATH=root, BACKUP_COMPRESS=False):
        yield root


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def add_trades(*numbers: int) -> None:
    bot, _ = Bot.objects.get_or_create(name="alpha")
    Trade.objects.record_batch(bot, [stored_trade(n) for n in numbers])


def trade_count(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM trades_trade").fetchone()[0]
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def beside(database: Path) -> list[str]:
    """The files in the database's folder, the time in a safety copy's name as ``*``."""
    return sorted(
        re.sub(r"before-restore-\d{8}_\d{6}$", "before-restore-*", path.name)
        for path in database.parent.iterdir()
    )


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """An existing database at the restore target, to be protected."""
    path = tmp_path / "live" / "trades.db"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE keep (x)")
    db.execute("INSERT INTO keep VALUES ('the operator''s data')")
    db.commit()
    db.close()
    return path


@pytest.mark.django_db(transaction=True)
def test_backup_now_then_restore_to_a_new_file(store: Path, tmp_path: Path) -> None:
    add_trades(1, 2, 3)
    out, err = run("backup_now")
    assert out.startswith("uploaded trades_latest.db:") and "3 trades" in out
    assert "trades_latest.db: done" in err  # progress as plain lines: not a terminal
    target = tmp_path / "restored.db"
    out, _ = run("restore_backup", "--output", str(target))
    assert f"restored trades_latest.db to {target}: 3 trades" in out
    assert "trades_latest.db.sha256" in out and "backup record" in out
    assert trade_count(target) == 3


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_to_replace_a_database_without_yes(store: Path, live: Path) -> None:
    add_trades(1)
    run("backup_now")
    before = digest(live)
    with pytest.raises(CommandError, match="exists; run again with --yes"):
        run("restore_backup", "latest", "--output", str(live))
    assert digest(live) == before
    run("restore_backup", "latest", "--output", str(live), "--yes")
    assert trade_count(live) == 1


@pytest.mark.django_db(transaction=True)
def test_restore_replaces_the_database_and_drops_its_stale_wal(store: Path, live: Path) -> None:
    add_trades(1, 2)
    run("backup_now")
    # A -wal left by the old database would be replayed into the new one.
    Path(f"{live}-wal").write_bytes(b"old log" * 100)
    Path(f"{live}-shm").write_bytes(b"old index" * 100)
    run("restore_backup", "--output", str(live), "--yes")
    assert not Path(f"{live}-wal").exists() and not Path(f"{live}-shm").exists()
    assert trade_count(live) == 2
    db = sqlite3.connect(live)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    # No work files left: the database, the safety copy of the one it replaced, the lock file.
    assert beside(live) == ["trades.db", "trades.db.before-restore-*", "trades.db.site-lock"]


@pytest.mark.django_db(transaction=True)
def test_a_flipped_byte_is_rejected_by_the_checksum_and_the_live_database_is_untouched(
    store: Path, live: Path
) -> None:
    add_trades(1, 2)
    run("backup_now")
    flip_a_byte(store / "trades_latest.db")
    before = digest(live)
    with pytest.raises(CommandError, match=re.escape("trades_latest.db is damaged: its sha256 is")):
        run("restore_backup", "--output", str(live), "--yes")
    assert digest(live) == before
    assert beside(live) == ["trades.db", "trades.db.site-lock"]  # no safety copy of an unchanged database
    with pytest.raises(CommandError, match="damaged"):
        run("verify_backup", "latest")


@pytest.mark.django_db(transaction=True)
def test_without_its_sidecar_the_backup_record_still_catches_a_flipped_byte(store: Path, live: Path) -> None:
    add_trades(1)
    run("backup_now")
    (store / "trades_latest.db.sha256").unlink()
    flip_a_byte(store / "trades_latest.db")
    record = BackupRecord.objects.get()
    with pytest.raises(CommandError, match=f"backup record #{record.pk} says"):
        run("restore_backup", "--output", str(live), "--yes")


@pytest.mark.django_db
def test_a_file_that_is_not_a_database_is_rejected_even_with_a_matching_checksum(
    store: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00garbage" * 4096)
    upload_with_checksum(LocalStorage(store), junk, "trades_latest.db", digest(junk))
    target = tmp_path / "restored.db"
    with pytest.raises(CommandError, match="not a sound SQLite database"):
        run("restore_backup", "--output", str(target))
    assert not target.exists()


@pytest.mark.django_db(transaction=True)
def test_gzip_and_plain_backups_both_restore(store: Path, tmp_path: Path) -> None:
    add_trades(1, 2)
    with override_settings(BACKUP_COMPRESS=True):
        out, _ = run("backup_now", "--daily")
    daily = next((store / "backups").glob("trades_*.db.gz")).relative_to(store).as_posix()
    assert "uploaded trades_latest.db.gz" in out
    run("restore_backup", daily, "--output", str(tmp_path / "from-gzip.db"))
    assert trade_count(tmp_path / "from-gzip.db") == 2
    out, _ = run("verify_backup")
    assert "trades_latest.db.gz is sound" in out and "gzip" in out

    add_trades(3)
    run("backup_now")
    assert not (store / "trades_latest.db.gz").exists()
    run("restore_backup", "latest", "--output", str(tmp_path / "from-plain.db"))
    assert trade_count(tmp_path / "from-plain.db") == 3
    # A timestamped backup may be named without its folder.
    run("verify_backup", daily.removeprefix("backups/"))


@pytest.mark.django_db(transaction=True)
def test_verify_changes_nothing_and_list_shows_newest_first(store: Path) -> None:
    add_trades(1)
    early = dt.datetime(2026, 1, 14, 21, 30, tzinfo=dt.UTC)
    with mock.patch("django.utils.timezone.now", return_value=early):
        run("backup_now", "--daily")
    add_trades(2)
    run("backup_now", "--daily")
    before = sorted((path.name, digest(path)) for path in store.rglob("*") if path.is_file())
    out, _ = run("verify_backup", "latest")
    assert "trades_latest.db is sound" in out and "2 trades" in out and "integrity_check ok" in out
    assert sorted((path.name, digest(path)) for path in store.rglob("*") if path.is_file()) == before

    listing, _ = run("list_backups")
    lines = listing.splitlines()
    assert lines[0].startswith("3 backup(s) in local folder")
    names = [line.split()[0] for line in lines[2:]]
    assert set(names) == {"trades_latest.db", "backups/trades_20260114_163000.db"} | {
        name
        for name in names
        if name.startswith("backups/trades_") and name != "backups/trades_20260114_163000.db"
    }
    assert names[-1] == "backups/trades_20260114_163000.db"  # the oldest upload last
    assert all(line.endswith("yes") for line in lines[2:])  # every one has its checksum
    assert not any(".sha256" in name for name in names)


@pytest.mark.django_db
def test_prune_lists_without_yes_and_deletes_with_it(store: Path, tmp_path: Path) -> None:
    storage = LocalStorage(store)
    source = tmp_path / "x.db"
    source.write_bytes(b"x")
    for day in (1, 2, 3):
        storage.upload(source, f"backups/trades_202601{day:02d}_163000.db")
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    with mock.patch("django.utils.timezone.now", return_value=now):
        out, _ = run("prune_backups", "--days", "30")
        assert "would delete backups/trades_20260101_163000.db" in out and "--yes deletes them" in out
        assert len(storage.list()) == 3
        out, _ = run("prune_backups", "--days", "30", "--yes")
    assert "deleted backups/trades_20260102_163000.db" in out
    assert [obj.name for obj in storage.list()] == ["backups/trades_20260103_163000.db"]


@pytest.mark.django_db
def test_restoring_a_missing_backup_names_it(store: Path, tmp_path: Path) -> None:
    store.mkdir()
    with pytest.raises(
        CommandError, match=re.escape("there is no trades_latest.db or trades_latest.pgdump in local folder")
    ):
        run("restore_backup", "--output", str(tmp_path / "x.db"))
    with pytest.raises(CommandError, match=re.escape("backups/trades_20200101_000000.db is not in storage")):
        run("verify_backup", "backups/trades_20200101_000000.db")


# --- as an operator runs them: real processes, exit codes, stderr ---------------


@pytest.fixture
def site_with_backup(tmp_path: Path, migrated_sqlite_template: Path) -> dict[str, str]:
    """A migrated site with two trades and one backup in a local store."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(migrated_sqlite_template, data / "trades.db")
    env = site_env(
        data, sqlite=True, LOCAL_STORAGE_PATH=str(tmp_path / "store"), CLOUD_STORAGE_PROVIDER="local"
    )
    db = sqlite3.connect(data / "trades.db")
    db.execute(
        "INSERT INTO trades_bot (id, name, description, is_active, created_at, last_heartbeat_status,"
        " last_heartbeat_details) VALUES (1, 'alpha', '', 1, '2026-01-15 00:00:00', '', '{}')"
    )
    for n in (1, 2):
        db.execute(
            "INSERT INTO trades_trade (bot_id, external_id, symbol, side, quantity, price, strategy, pnl,"
            " executed_at, trading_day, metadata, received_at) VALUES (1, ?, 'AAPL', 'BUY', 1, 100, '',"
            " NULL, '2026-01-15 15:31:00', '2026-01-15', '{}', '2026-01-15 15:31:00')",
            (f"ord-{n}",),
        )
    db.commit()
    db.close()
    assert manage(env, "backup_now", "--daily").returncode == 0
    return env


def test_disaster_recovery_onto_a_fresh_machine_with_an_empty_data_dir(
    site_with_backup: dict[str, str], tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh" / "data"
    fresh.mkdir(parents=True)
    env = site_env(
        fresh,
        sqlite=True,
        LOCAL_STORAGE_PATH=site_with_backup["LOCAL_STORAGE_PATH"],
        CLOUD_STORAGE_PROVIDER="local",
    )
    listing = manage(env, "list_backups")
    assert "trades_latest.db" in listing.stdout
    result = manage(env, "restore_backup", "latest")
    assert result.returncode == 0, result.stderr
    assert "2 trades" in result.stdout and "trades_latest.db.sha256" in result.stdout
    assert "backup record" not in result.stdout  # there are none on a fresh machine
    restored = fresh / "trades.db"
    assert trade_count(restored) == 2
    assert restored.stat().st_mode & 0o777 == 0o600
    assert manage(env, "migrate", "--noinput").returncode == 0
    assert "alpha" in manage(env, "view_trades").stdout


def test_restore_with_yes_takes_the_live_database_back_to_the_backup(
    site_with_backup: dict[str, str],
) -> None:
    live = Path(site_with_backup["DATABASE_PATH"])
    db = sqlite3.connect(live)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("DELETE FROM trades_trade")  # the mistake to undo
    db.commit()
    assert Path(f"{live}-wal").exists()
    result = manage(site_with_backup, "restore_backup", "latest", "--yes")
    db.close()
    assert result.returncode == 0, result.stderr
    assert f"restored trades_latest.db to {live}: 2 trades" in result.stdout
    assert not Path(f"{live}-wal").exists()
    assert trade_count(live) == 2
    assert "alpha" in manage(site_with_backup, "view_trades").stdout


def test_command_errors_are_one_line_with_a_non_zero_exit(
    site_with_backup: dict[str, str], tmp_path: Path
) -> None:
    refused = manage(site_with_backup, "restore_backup", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"CommandError: {site_with_backup['DATABASE_PATH']} exists; run again with --yes to replace it"
    ]

    missing = manage(site_with_backup, "verify_backup", "backups/trades_20200101_000000.db", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "CommandError: backups/trades_20200101_000000.db is not in storage"
    ]

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    broken = {**site_with_backup, "LOCAL_STORAGE_PATH": str(blocker / "store")}
    result = manage(broken, "backup_now", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # The site's log line about the failure goes to stderr too; the command's own is one line.
    errors = [line for line in result.stderr.splitlines() if line.startswith("CommandError: ")]
    assert errors == [
        "CommandError: trades_latest.db: cannot delete trades_latest.db.sha256: Not a directory"
    ]


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise() -> None:
    ticks = iter(range(100))

    def clock() -> float:
        return float(next(ticks))

    plain = StringIO()
    progress = TransferProgress("trades_latest.db", 4 * 1024 * 1024, plain, tty=False, clock=clock)
    for _ in range(4):
        progress(1024 * 1024)
    lines = plain.getvalue().splitlines()
    assert lines[0] == "trades_latest.db:  25% 1.0 MB of 4.0 MB, 1.0 MB/s"
    assert lines[-1].startswith("trades_latest.db: done, 4.0 MB in ")
    assert len(lines) == 4 and "\r" not in plain.getvalue()

    ticks = iter(range(100))
    terminal = StringIO()
    progress = TransferProgress("trades_latest.db", 2 * 1024 * 1024, terminal, tty=True, clock=clock)
    progress(1024 * 1024)
    progress(1024 * 1024)
    text = terminal.getvalue()
    assert text.startswith("\rtrades_latest.db [############------------]  50% 1.0 MB of 2.0 MB")
    assert "\rtrades_latest.db [########################] 100% 2.0 MB of 2.0 MB, " in text
    assert text.endswith(" KB/s  \n")


# --- the database a restore replaces is kept ------------------------------------


def keep_writes_in_the_wal(path: Path) -> sqlite3.Connection:
    """A connection whose commits stay in the ``-wal`` while it is open, as a killed site leaves them."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


@pytest.mark.django_db(transaction=True)
def test_the_replaced_database_is_kept_whole_with_what_was_only_in_its_wal(
    store: Path, live: Path, tmp_path: Path
) -> None:
    add_trades(1)
    run("backup_now")
    db = keep_writes_in_the_wal(live)
    db.executemany("INSERT INTO keep VALUES (?)", [(f"row {n}",) for n in range(50)])
    # What a file copy of trades.db alone would have kept: not the 50 rows.
    shutil.copy(live, tmp_path / "file-copy.db")
    assert sqlite3.connect(tmp_path / "file-copy.db").execute("SELECT count(*) FROM keep").fetchone() == (1,)

    out, _ = run("restore_backup", "--output", str(live), "--yes")
    db.close()

    kept = next(live.parent.glob("trades.db.before-restore-*"))
    assert re.fullmatch(r"trades\.db\.before-restore-\d{8}_\d{6}", kept.name)
    assert (
        f"the database it replaced is kept as {kept} (to undo the restore, see docs/BACKUP_RESTORE.md)" in out
    )
    assert trade_count(live) == 1
    copy = sqlite3.connect(kept)
    assert copy.execute("SELECT count(*) FROM keep").fetchone() == (51,)
    assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # One self-contained file: put back by renaming it, no -wal to carry along.
    assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy.close()
    assert kept.stat().st_mode & 0o777 == 0o600

    out, _ = run("restore_backup", "--output", str(live), "--yes")
    assert len(list(live.parent.glob("trades.db.before-restore-*"))) == 2  # none is ever deleted
    assert "1 safety copies of earlier restores beside it take" in out


@pytest.mark.django_db(transaction=True)
def test_a_database_that_cannot_be_read_is_not_replaced_without_its_safety_copy(
    store: Path, live: Path
) -> None:
    add_trades(1)
    run("backup_now")
    live.write_bytes(b"\x00damaged" * 4096)
    before = digest(live)
    with pytest.raises(CommandError) as raised:
        run("restore_backup", "--output", str(live), "--yes")
    assert str(raised.value) == (
        f"cannot keep a safety copy of {live} before replacing it (file is not a database); nothing was "
        "changed (free some space, or move the database and its -wal aside yourself, and run again)"
    )
    assert digest(live) == before
    assert beside(live) == ["trades.db", "trades.db.site-lock"]


def test_a_disk_that_fills_during_the_safety_copy_leaves_the_database_as_it_was(
    site_with_backup: dict[str, str],
) -> None:
    live = Path(site_with_backup["DATABASE_PATH"])
    db = sqlite3.connect(live)
    db.execute("CREATE TABLE ballast (data BLOB)")
    db.executemany("INSERT INTO ballast VALUES (randomblob(100000))", [()] * 40)  # 4 MB
    db.commit()
    db.close()
    before = digest(live)
    limit = 2 * 1024 * 1024  # room for the 0.4 MB download, not for a copy of the 4 MB database

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = manage(site_with_backup, "restore_backup", "--yes", check=False, preexec_fn=small_disk)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("CommandError: ")]
    assert errors and errors[0].startswith(
        f"CommandError: cannot keep a safety copy of {live} before replacing it ("
    )
    assert "nothing was changed" in errors[0]
    assert "Traceback" not in result.stderr
    assert digest(live) == before
    assert trade_count(live) == 2
    assert beside(live) == ["logs", "trades.db", "trades.db.site-lock"]


def test_a_restore_is_undone_with_its_safety_copy_as_the_docs_say(site_with_backup: dict[str, str]) -> None:
    live = Path(site_with_backup["DATABASE_PATH"])
    db = keep_writes_in_the_wal(live)
    db.execute(
        "INSERT INTO trades_trade (bot_id, external_id, symbol, side, quantity, price, strategy, pnl,"
        " executed_at, trading_day, metadata, received_at) VALUES (1, 'after-the-backup', 'MSFT', 'SELL', 1,"
        " 400, '', 12.5, '2026-01-16 15:31:00', '2026-01-16', '{}', '2026-01-16 15:31:00')"
    )
    result = manage(site_with_backup, "restore_backup", "latest", "--yes")
    db.close()
    kept = Path(re.search(r"the database it replaced is kept as (\S+) ", result.stdout)[1])  # type: ignore[index]
    assert "after-the-backup" not in manage(site_with_backup, "view_trades").stdout

    # docs/BACKUP_RESTORE.md, "Undo a restore", with the site stopped.
    data = live.parent
    (data / "trades.db").rename(data / "trades.db.undone")
    for suffix in ("-wal", "-shm"):
        if (data / f"trades.db{suffix}").exists():
            (data / f"trades.db{suffix}").rename(data / f"trades.db.undone{suffix}")
    shutil.copy2(kept, data / "trades.db")

    assert "after-the-backup" in manage(site_with_backup, "view_trades").stdout
    assert trade_count(live) == 3


# --- a running site keeps restore away ------------------------------------------


@pytest.fixture
def stopped_site(site_with_backup: dict[str, str]) -> Iterator[Site]:
    """The site with a backup, not started; the test starts what it needs."""
    data = Path(site_with_backup["DATABASE_PATH"]).parent
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=dict(site_with_backup), tmp=data, processes=[])
    try:
        yield site
    finally:
        for process in site.processes:
            stop(process)


def refusal(database: Path, holders: str) -> list[str]:
    return [
        f"CommandError: the site is running on {database}: stop {holders} first (docker compose stop web "
        "qcluster, or Ctrl-C scripts/serve.sh), or pass --while-running to replace the database under it "
        "and lose what it writes afterwards"
    ]


def test_restore_refuses_while_the_web_server_runs_and_goes_ahead_once_it_is_killed(
    stopped_site: Site,
) -> None:
    site = stopped_site
    live = Path(site.env["DATABASE_PATH"])
    web = start_web(site, site.port)
    wait_for(f"{site.url}/api/v1/health/")
    key = site.create_bot("beta")
    posted = requests.post(
        f"{site.url}/api/v1/trades/",
        json=make_trade(7, external_id="after-the-backup"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert posted.status_code == 201

    refused = site.manage("restore_backup", "--yes", check=False)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == refusal(live, f"the web server (pid {web.pid})")
    assert trade_count(live) == 3
    assert not list(live.parent.glob("trades.db.before-restore-*"))

    os.kill(web.pid, signal.SIGKILL)  # the instance died: no clean shutdown, no checkpoint
    web.wait(10)
    # Its web process, forked holding the lock, notices and stops by itself within seconds.
    deadline = time.monotonic() + 30
    while site_lock_taken(live):
        assert time.monotonic() < deadline, "the web process outlived its main process"
        time.sleep(0.1)
    result = site.manage("restore_backup", "--yes")

    assert "restored trades_latest.db" in result.stdout and "2 trades" in result.stdout
    assert trade_count(live) == 2
    kept = next(live.parent.glob("trades.db.before-restore-*"))
    assert trade_count(kept) == 3  # the trade the killed site took after the backup is kept


def test_the_task_cluster_keeps_restore_away_until_its_last_worker_is_gone(stopped_site: Site) -> None:
    site = stopped_site
    live = Path(site.env["DATABASE_PATH"])
    cluster = site.start_cluster()
    deadline = time.monotonic() + 60
    while not site_lock_taken(live):
        assert cluster.poll() is None and time.monotonic() < deadline, site.log("qcluster.log")
        time.sleep(0.2)

    refused = site.manage("restore_backup", "--yes", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == refusal(live, f"the task cluster (pid {cluster.pid})")

    # The sentinel (which runs the scheduler) and the workers outlive their parent and
    # may still write: they were forked holding the lock, so it stays taken.
    os.kill(cluster.pid, signal.SIGKILL)
    cluster.wait(10)
    refused = site.manage("restore_backup", "--yes", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == refusal(live, "the web server and the task cluster")

    os.killpg(cluster.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while site_lock_taken(live):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    result = site.manage("restore_backup", "--yes")
    assert "2 trades" in result.stdout


def test_while_running_replaces_the_database_under_the_site_and_says_to_restart_it(
    stopped_site: Site,
) -> None:
    site = stopped_site
    live = Path(site.env["DATABASE_PATH"])
    start_web(site, site.port)
    wait_for(f"{site.url}/api/v1/health/")

    result = site.manage("restore_backup", "--yes", "--while-running")

    assert "2 trades" in result.stdout
    assert (
        "the site was running: restart the web server and the task cluster now, "
        "until then what they write goes to the replaced file"
    ) in result.stdout
    assert len(list(live.parent.glob("trades.db.before-restore-*"))) == 1


def test_a_web_server_started_during_a_restore_waits_for_it(stopped_site: Site) -> None:
    site = stopped_site
    live = Path(site.env["DATABASE_PATH"])
    with held_for_restore(live) as running:
        assert not running
        web = start_web(site, site.port)
        deadline = time.monotonic() + 60
        while "waiting for the restore" not in site.log("web.log"):
            assert web.poll() is None and time.monotonic() < deadline, site.log("web.log")
            time.sleep(0.1)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{site.url}/api/v1/health/", timeout=5)
    assert site.log("web.log").splitlines()[0] == (
        f"waiting for the restore of {live} to finish ({live}.site-lock is held)"
    )
    wait_for(f"{site.url}/api/v1/health/")
    assert site_lock_taken(live)


def test_list_backups_of_a_local_storage_path_that_is_a_file_fails_naming_it(
    site_with_backup: dict[str, str], tmp_path: Path
) -> None:
    afile = tmp_path / "backups.tar"
    afile.write_text("not the folder")
    result = manage({**site_with_backup, "LOCAL_STORAGE_PATH": str(afile)}, "list_backups", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: LOCAL_STORAGE_PATH is {afile}, which is a file, not a folder: "
        "point LOCAL_STORAGE_PATH at the folder that holds the backups"
    ]


@pytest.mark.django_db
def test_a_backup_that_counts_fine_but_fails_integrity_check_is_not_restored(
    store: Path, tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    from tests.test_backup_snapshot import add_bot, corrupt_an_index

    damaged = tmp_path / "damaged.db"
    shutil.copy(migrated_sqlite_template, damaged)
    add_bot(damaged)
    corrupt_an_index(damaged)
    upload_with_checksum(LocalStorage(store), damaged, "trades_latest.db", digest(damaged))
    target = tmp_path / "restored.db"
    with pytest.raises(CommandError, match="integrity_check failed"):
        run("restore_backup", "--output", str(target))
    assert not target.exists()
