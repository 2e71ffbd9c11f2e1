"""Backups of a site on PostgreSQL: pg_dump through the storage provider, verify, restore.

What only PostgreSQL does, so these use the PostgreSQL pass's server (``postgres_server``) and run
in that pass alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from backups.postgres import client_binary, take_dump
from backups.snapshot import BackupError
from monitorsite.backends import postgres_database as database_settings
from tests.conftest import make_trade, new_postgres_database
from tests.harness import (
    Site,
    child_pids,
    free_port,
    made_once,
    manage,
    site_database_name,
    site_env,
    start_web,
    stop,
    wait_for,
    wait_until_gone,
)


def trades(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(
            "SELECT id, bot_id, external_id, symbol, side, quantity, price, pnl, executed_at "
            "FROM trades_trade ORDER BY id"
        ).fetchall()


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


ADD_TRADES = """
import sys
from tests.conftest import stored_trade
from trades.models import Bot, Trade

bot, _ = Bot.objects.get_or_create(name="alpha")
numbers = [int(n) for n in sys.argv[-1].split(",")]
Trade.objects.record_batch(bot, [stored_trade(n) for n in numbers])
"""


def add_trades(env: dict[str, str], *numbers: int) -> None:
    code = ADD_TRADES.replace("sys.argv[-1]", repr(",".join(map(str, numbers))))
    manage(env, "shell", "-c", code)


def pg_site_env(url: str, tmp: Path) -> dict[str, str]:
    return site_env(
        tmp,
        DATABASE_URL=url,
        REDIS_URL="",
        CLOUD_STORAGE_PROVIDER="local",
        LOCAL_STORAGE_PATH=str(tmp / "store"),
        BACKUP_COMPRESS="true",  # ignored for a dump, which is compressed already
    )


@pytest.fixture(scope="session")
def pg_site_template(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The name of a database migrated once for the run, with two trades, that each test copies:
    ``migrate`` and a ``manage`` start for the trades cost seconds a test."""

    def make(folder: Path) -> None:
        env = pg_site_env(new_postgres_database(postgres_server, site_database_name(folder)), folder)
        manage(env, "migrate", "--noinput")
        add_trades(env, 1, 2)

    return site_database_name(made_once(tmp_path_factory, "pg-site-template", make))


@pytest.fixture
def pg_site(postgres_server: str, pg_site_template: str, tmp_path: Path) -> dict[str, str]:
    """A migrated site on its own PostgreSQL database, backing up to a local folder; two trades."""
    name = site_database_name(tmp_path / "postgres")
    return pg_site_env(new_postgres_database(postgres_server, name, template=pg_site_template), tmp_path)


def test_backup_now_uploads_a_checked_dump_with_its_checksum_and_record(pg_site: dict[str, str]) -> None:
    done = manage(pg_site, "backup_now", "--daily")
    store = Path(pg_site["LOCAL_STORAGE_PATH"])

    latest = store / "trades_latest.pgdump"
    assert latest.read_bytes()[:5] == b"PGDMP"
    assert "uploaded trades_latest.pgdump" in done.stdout and "2 trades" in done.stdout
    (daily,) = (store / "backups").glob("trades_*.pgdump")
    sidecar = (store / "trades_latest.pgdump.sha256").read_text()
    assert sidecar == f"{hashlib.sha256(latest.read_bytes()).hexdigest()}  trades_latest.pgdump\n"
    with psycopg.connect(pg_site["DATABASE_URL"]) as connection:
        rows = connection.execute(
            "SELECT object_name, state, trade_count, sha256, fingerprint "
            "FROM backups_backuprecord ORDER BY id"
        ).fetchall()
    assert [row[:3] for row in rows] == [
        ("trades_latest.pgdump", "succeeded", 2),
        (f"backups/{daily.name}", "succeeded", 2),
    ]
    assert rows[0][3] == sidecar.split()[0] and len(rows[0][4]) == 64
    assert not list(store.glob("*.gz")) and not list(store.glob("*.db"))

    verified = manage(pg_site, "verify_backup", "latest")
    assert verified.stdout.startswith("trades_latest.pgdump is sound: ")
    assert "2 trades, pg_restore check ok" in verified.stdout


def test_fingerprint_sees_an_edited_row_and_ignores_the_task_cluster(
    pg_site: dict[str, str], tmp_path: Path
) -> None:
    url = pg_site["DATABASE_URL"]
    settings_dict = database_settings(url, conn_max_age=0)
    first = take_dump(settings_dict, tmp_path)
    assert first is not None and first.trade_count == 2
    os.unlink(first.path)

    # The task cluster's tables change every minute; the trading data did not.
    execute(url, "INSERT INTO django_q_ormq (key, payload, lock) VALUES ('k', 'p', now())")
    assert take_dump(settings_dict, tmp_path, unless_fingerprint=first.fingerprint) is None

    # Same row count, one price changed by a cent: a new fingerprint.
    execute(url, "UPDATE trades_trade SET price = price + 0.01 WHERE id = (SELECT min(id) FROM trades_trade)")
    second = take_dump(settings_dict, tmp_path, unless_fingerprint=first.fingerprint)
    assert second is not None and second.fingerprint != first.fingerprint


def test_the_sync_skips_an_unchanged_database_and_uploads_a_changed_one(pg_site: dict[str, str]) -> None:
    sync = "from backups.tasks import sync_latest; print(sync_latest())"
    env = dict(pg_site, DB_SYNC_ENABLED="true")
    assert "latest: succeeded" in manage(env, "shell", "-c", sync).stdout
    assert "latest: skipped (nothing changed)" in manage(env, "shell", "-c", sync).stdout
    add_trades(pg_site, 3)
    assert "latest: succeeded" in manage(env, "shell", "-c", sync).stdout


def test_restore_with_yes_takes_the_database_back_to_the_backup_and_keeps_a_safety_dump(
    pg_site: dict[str, str],
) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    backed_up = trades(url)
    add_trades(pg_site, 3)
    execute(url, "UPDATE trades_trade SET symbol = 'MSFT'")

    refused = manage(pg_site, "restore_backup", check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"CommandError: PostgreSQL {url.rsplit('/', 1)[1]} holds the site's data; "
        "run again with --yes to replace it"
    ]
    assert len(trades(url)) == 3

    done = manage(pg_site, "restore_backup", "--yes")

    assert "restored trades_latest.pgdump" in done.stdout and "2 trades, pg_restore check ok" in done.stdout
    assert trades(url) == backed_up
    data = Path(pg_site["DATABASE_PATH"]).parent
    (kept,) = data.glob("*.pgdump.before-restore-*")
    assert str(kept) in done.stdout
    assert kept.stat().st_mode & 0o777 == 0o600
    # The sequence came back too: the next trade gets the next id, not one already used.
    add_trades(pg_site, 9)
    assert [row[0] for row in trades(url)] == [row[0] for row in backed_up] + [backed_up[-1][0] + 1]


def test_a_damaged_dump_with_a_matching_checksum_is_refused_and_nothing_changes(
    pg_site: dict[str, str],
) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    store = Path(pg_site["LOCAL_STORAGE_PATH"])
    latest = store / "trades_latest.pgdump"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # cut short, and its checksum made to match
    digest = hashlib.sha256(latest.read_bytes()).hexdigest()
    (store / "trades_latest.pgdump.sha256").write_text(f"{digest}  trades_latest.pgdump\n")
    execute(url, f"UPDATE backups_backuprecord SET sha256 = '{digest}'")
    before = trades(url)

    verified = manage(pg_site, "verify_backup", check=False)
    restored = manage(pg_site, "restore_backup", "--yes", check=False)

    for result in (verified, restored):
        assert result.returncode == 1
        line = result.stderr.strip().splitlines()[-1]  # after the download's progress line
        assert (
            line.startswith("CommandError: pg_restore --list failed: ") and "Traceback" not in result.stderr
        )
    assert trades(url) == before


def test_a_flipped_byte_is_refused_by_the_checksum(pg_site: dict[str, str]) -> None:
    manage(pg_site, "backup_now")
    latest = Path(pg_site["LOCAL_STORAGE_PATH"]) / "trades_latest.pgdump"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0x01
    latest.write_bytes(bytes(data))
    before = trades(pg_site["DATABASE_URL"])

    result = manage(pg_site, "restore_backup", "--yes", check=False)

    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("CommandError: trades_latest.pgdump is damaged: its sha256 is ")
    )
    assert trades(pg_site["DATABASE_URL"]) == before


def test_restore_refuses_while_a_web_server_runs_naming_it_and_goes_ahead_once_it_is_gone(
    pg_site: dict[str, str], tmp_path: Path
) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=dict(pg_site), tmp=tmp_path, processes=[])
    try:
        web = start_web(site, port)
        wait_for(f"{site.url}/api/v1/health/")
        key = site.create_bot("beta")
        posted = requests.post(
            f"{site.url}/api/v1/trades/",
            json=make_trade(7, external_id="after-the-backup"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert posted.status_code == 201

        refused = manage(pg_site, "restore_backup", "--yes", check=False)

        assert refused.returncode == 1
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(
            f"CommandError: the site is running on PostgreSQL {url.rsplit('/', 1)[1]}: stop "
        )
        assert f"the web server on {os.uname().nodename} (pid {web.pid}) from 127.0.0.1" in line
        assert len(trades(url)) == 3
        while_running = manage(pg_site, "restore_backup", "--yes", "--while-running", check=False)
        assert (
            while_running.returncode == 1
            and "--while-running is for a site on SQLite" in while_running.stderr
        )

        # The web process shares its main process's session (the socket came through the
        # fork): killing the main process alone leaves the lock held until the web process,
        # orphaned, stops too. Held still here so that it cannot stop before the restore looks.
        (web_process,) = child_pids(web.pid)
        os.kill(web_process, signal.SIGSTOP)
        os.kill(web.pid, signal.SIGKILL)
        web.wait(10)
        orphaned = manage(pg_site, "restore_backup", "--yes", check=False)
        assert orphaned.returncode == 1 and "the site is running on PostgreSQL" in orphaned.stderr
        assert len(trades(url)) == 3
        os.kill(web_process, signal.SIGCONT)
        wait_until_gone([web_process], what="the web process without its main process")
        # Its session ends with its socket, and the lock with it.
        done = manage(pg_site, "restore_backup", "--yes")
        assert "2 trades" in done.stdout
        assert len(trades(url)) == 2
    finally:
        for process in site.processes:
            stop(process)


def test_a_sqlite_backup_is_not_restored_over_a_postgres_site(
    pg_site: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "old").mkdir()
    sqlite_env = site_env(tmp_path / "old", sqlite=True, LOCAL_STORAGE_PATH=pg_site["LOCAL_STORAGE_PATH"])
    sqlite_env["CLOUD_STORAGE_PROVIDER"] = "local"
    manage(sqlite_env, "migrate", "--noinput")
    manage(sqlite_env, "backup_now", "--daily")
    (daily,) = (Path(pg_site["LOCAL_STORAGE_PATH"]) / "backups").glob("trades_*.db")

    result = manage(pg_site, "restore_backup", f"backups/{daily.name}", "--yes", check=False)

    assert result.returncode == 1
    assert "is a SQLite backup and the site runs on PostgreSQL" in result.stderr
    assert len(trades(pg_site["DATABASE_URL"])) == 2


def site_lock_holders(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ShareLock'"
            # This site's database alone: other tests' sites on the same server hold theirs.
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchall()
    return [row[0] for row in rows]


def test_a_task_cluster_on_any_machine_keeps_restore_away_while_it_runs(
    pg_site: dict[str, str], tmp_path: Path
) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    site = Site(url="", env=dict(pg_site), tmp=tmp_path, processes=[])
    try:
        cluster = site.start_cluster()
        deadline = time.monotonic() + 60
        while not site_lock_holders(url):
            assert cluster.poll() is None and time.monotonic() < deadline, site.log("qcluster.log")
            time.sleep(0.2)
        assert site_lock_holders(url) == [
            f"monitor task cluster on {os.uname().nodename} (pid {cluster.pid})"
        ]

        refused = manage(pg_site, "restore_backup", "--yes", check=False)

        assert refused.returncode == 1
        line = refused.stderr.strip().splitlines()[-1]
        assert (
            f"stop the task cluster on {os.uname().nodename} (pid {cluster.pid}) from 127.0.0.1 first" in line
        )
    finally:
        for process in site.processes:
            stop(process)
    assert site_lock_holders(url) == []
    assert "2 trades" in manage(pg_site, "restore_backup", "--yes").stdout


def test_a_restore_that_fails_half_way_leaves_the_old_data(pg_site: dict[str, str]) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    add_trades(pg_site, 3)
    # A view of the operator's own on the trades table: pg_restore --clean cannot drop the table
    # under it, after it has already dropped other tables in the same transaction.
    execute(url, "CREATE VIEW my_report AS SELECT symbol, price FROM trades_trade")
    before = trades(url)

    result = manage(pg_site, "restore_backup", "--yes", check=False)

    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("CommandError: pg_restore failed: ") and "depend" in line
    assert trades(url) == before
    with psycopg.connect(url) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables[0] > 20  # every table still there, not only the one that could not go


def test_without_pg_dump_installed_a_backup_fails_with_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("backups.postgres.CLIENT_FOLDERS", tmp_path / "no-postgresql")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BackupError) as raised:
        client_binary("pg_dump", 150004)
    assert str(raised.value) == (
        "pg_dump is not installed: install PostgreSQL's client programs (Debian: apt install "
        "postgresql-client) of the server's version"
    )


def test_the_client_of_the_servers_major_version_is_chosen(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for version in ("15", "16", "9"):
        binary = tmp_path / version / "bin" / "pg_dump"
        binary.parent.mkdir(parents=True)
        binary.write_text("")
    monkeypatch.setattr("backups.postgres.CLIENT_FOLDERS", tmp_path)
    assert client_binary("pg_dump", 150004) == str(tmp_path / "15" / "bin" / "pg_dump")
    assert client_binary("pg_dump", 170000) == str(tmp_path / "16" / "bin" / "pg_dump")  # the newest


def test_disaster_recovery_into_a_fresh_postgres_database_needs_no_yes(
    pg_site: dict[str, str], postgres_server: str, tmp_path: Path
) -> None:
    manage(pg_site, "backup_now")
    name = pg_site["DATABASE_URL"].rsplit("/", 1)[1] + "_fresh"
    with psycopg.connect(postgres_server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    fresh = dict(pg_site, DATABASE_URL=postgres_server.rsplit("/", 1)[0] + f"/{name}")
    fresh["DATABASE_PATH"] = str(tmp_path / "fresh" / "trades.db")

    result = manage(fresh, "restore_backup", "latest")

    assert f"restored trades_latest.pgdump to PostgreSQL {name}: 2 trades" in result.stdout
    assert "trades_latest.pgdump.sha256" in result.stdout and "backup record" not in result.stdout
    assert "run manage.py migrate before starting the site" in result.stdout
    assert "kept as" not in result.stdout  # nothing was replaced, so no safety dump
    manage(fresh, "migrate", "--noinput")
    assert trades(fresh["DATABASE_URL"]) == trades(pg_site["DATABASE_URL"])
    assert "alpha" in manage(fresh, "view_trades").stdout


def publish_as_latest(pg_site: dict[str, str], dump: bytes) -> None:
    """``dump`` stored as ``trades_latest.pgdump``, its sidecar and backup record made to match it:
    only a look inside can tell it from a sound backup."""
    store = Path(pg_site["LOCAL_STORAGE_PATH"])
    (store / "trades_latest.pgdump").write_bytes(dump)
    digest = hashlib.sha256(dump).hexdigest()
    (store / "trades_latest.pgdump.sha256").write_text(f"{digest}  trades_latest.pgdump\n")
    execute(pg_site["DATABASE_URL"], f"UPDATE backups_backuprecord SET sha256 = '{digest}'")


def refused_by_verify_and_restore(pg_site: dict[str, str]) -> list[str]:
    """The last line each of ``verify_backup`` and ``restore_backup --yes`` wrote, once both failed
    without a traceback and without a safety dump (nothing was replaced)."""
    lines = []
    for command in (["verify_backup"], ["restore_backup", "--yes"]):
        result = manage(pg_site, *command, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        lines.append(result.stderr.strip().splitlines()[-1])  # after the download's progress line
    assert not list(Path(pg_site["DATABASE_PATH"]).parent.glob("*.before-restore-*"))
    return lines


@pytest.mark.parametrize("leave_out", ["--schema-only", "--exclude-table-data=trades_trade"])
def test_a_dump_without_the_trades_data_is_refused_by_verify_and_restore(
    pg_site: dict[str, str], tmp_path: Path, leave_out: str
) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    partial = tmp_path / "partial.pgdump"
    dumped = subprocess.run(
        [client_binary("pg_dump"), "--format=custom", leave_out, f"--file={partial}", f"--dbname={url}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dumped.returncode == 0, dumped.stderr
    publish_as_latest(pg_site, partial.read_bytes())
    before = trades(url)

    lines = refused_by_verify_and_restore(pg_site)

    assert lines == ["CommandError: not a dump of this site (no trades_trade table data)"] * 2
    assert trades(url) == before


def trades_data_block(path: Path) -> tuple[int, int]:
    """Where the compressed rows of ``trades_trade`` lie in the ``pg_dump -Fc`` file at ``path``:
    (start, length) of the first chunk.

    The custom format (pg_backup_custom.c) writes each table's data as a block: the byte 1, the
    entry's dump id, then chunks of compressed data, each after its length. An integer is a sign
    byte and ``intSize`` (the header's ninth byte) bytes, least significant first.
    """
    listing = subprocess.run(
        [client_binary("pg_restore"), "--list", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    (dump_id,) = re.findall(r"^(\d+); \d+ \d+ TABLE DATA \S+ trades_trade ", listing, re.MULTILINE)
    dump = path.read_bytes()
    int_size = dump[8]
    header = b"\x01\x00" + int(dump_id).to_bytes(int_size, "little")
    assert dump.count(header) == 1
    at = dump.index(header) + len(header) + 1  # past the chunk length's sign byte
    return at + int_size, int.from_bytes(dump[at : at + int_size], "little")


def test_a_dump_whose_trades_data_is_damaged_is_refused_by_verify_and_restore(
    pg_site: dict[str, str],
) -> None:
    url = pg_site["DATABASE_URL"]
    manage(pg_site, "backup_now")
    latest = Path(pg_site["LOCAL_STORAGE_PATH"]) / "trades_latest.pgdump"
    start, length = trades_data_block(latest)
    dump = bytearray(latest.read_bytes())
    for at in range(start + length // 3, start + 2 * length // 3):
        dump[at] ^= 0xFF  # inside the rows; the table of contents reads as before
    publish_as_latest(pg_site, bytes(dump))
    before = trades(url)

    lines = refused_by_verify_and_restore(pg_site)

    for line in lines:
        assert line.startswith("CommandError: pg_restore of trades_trade failed: "), line
    assert trades(url) == before
