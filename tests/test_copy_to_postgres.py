"""copy_to_postgres: a SQLite site moved into an empty PostgreSQL database, and checked.

What only PostgreSQL does (the target), so the ``postgres_database`` fixture: these run, and must
pass, in both runs of the suite. The source site is pinned to SQLite (``site_env(sqlite=True)``).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.conftest import make_trade
from tests.harness import ROOT, Site, free_port, made_once, manage, site_env, start_web, stop, wait_for

TRADES_OVER_SEVERAL_DAYS = """
import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo
from tests.conftest import stored_trade
from trades.models import Bot, Trade
zone = ZoneInfo("America/New_York")
for name in ("alpha", "beta"):
    bot = Bot.objects.get(name=name)
    batch = []
    for day in range(1, 6):
        for n in range(4):
            moment = dt.datetime(2026, 3, day + 1, 10, 30 + n, tzinfo=zone)
            pnl = None if n == 0 else Decimal(f"{(n - 2) * 12.5 + day}")
            symbol = ("AAPL", "MSFT")[n % 2]
            batch.append(stored_trade(day * 10 + n, executed_at=moment, pnl=pnl, symbol=symbol))
    Trade.objects.record_batch(bot, batch)
"""

COLUMNS = "id, bot_id, external_id, symbol, side, quantity, price, strategy, pnl, trading_day"


@pytest.fixture(scope="session")
def sqlite_site_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A SQLite site with two bots, trades over five trading days, and an admin, made once for the
    run (six ``manage`` starts); its database file and alpha's key."""

    def make(folder: Path) -> None:
        env = site_env(folder, sqlite=True)
        manage(env, "migrate", "--noinput")
        manage(env, "setup_schedules")
        alpha_key = manage(env, "create_bot", "alpha").stdout.strip().splitlines()[-1]
        (folder / "alpha.key").write_text(alpha_key)
        manage(env, "create_bot", "beta")
        manage(env, "shell", "-c", TRADES_OVER_SEVERAL_DAYS)
        manage(dict(env, ADMIN_USERNAME="admin", ADMIN_PASSWORD="a-long-admin-password"), "ensure_admin")

    folder = made_once(tmp_path_factory, "copy-source-template", make)
    return folder / "trades.db", (folder / "alpha.key").read_text()


@pytest.fixture
def sqlite_site(tmp_path: Path, sqlite_site_template: tuple[Path, str]) -> dict[str, str]:
    """A copy of the template site for one test (``ALPHA_KEY``: alpha's key)."""
    folder = tmp_path / "sqlite"
    folder.mkdir()
    template, alpha_key = sqlite_site_template
    shutil.copy(template, folder / "trades.db")
    return dict(site_env(folder, sqlite=True), ALPHA_KEY=alpha_key)


def sqlite_rows(path: str, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def postgres_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def test_the_copy_keeps_every_row_and_id_and_the_bot_key_works_on_the_new_site(
    sqlite_site: dict[str, str], postgres_database: str, tmp_path: Path
) -> None:
    env = dict(sqlite_site, DATABASE_URL=postgres_database, REDIS_URL="")

    done = manage(env, "copy_to_postgres")

    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"copied {sqlite_site['DATABASE_PATH']} into PostgreSQL ")
    assert summary.endswith("row counts equal, 10 daily summaries (per bot and trading day) equal")
    assert "trades_trade: 40 rows" in done.stdout and "trades_bot: 2 rows" in done.stdout
    path = sqlite_site["DATABASE_PATH"]
    before = sqlite_rows(path, f"SELECT {COLUMNS} FROM trades_trade ORDER BY id")
    after = postgres_rows(postgres_database, f"SELECT {COLUMNS} FROM trades_trade ORDER BY id")
    assert [(row[0], row[1], row[2]) for row in after] == [(row[0], row[1], row[2]) for row in before]
    assert postgres_rows(postgres_database, "SELECT username, is_superuser FROM auth_user") == [
        ("admin", True)
    ]
    assert postgres_rows(postgres_database, "SELECT count(*) FROM django_q_schedule") == sqlite_rows(
        path, "SELECT count(*) FROM django_q_schedule"
    )

    # The site on the copy: the bot's key still works, and the next trade gets the next id.
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=env, tmp=tmp_path / "sqlite", processes=[])
    try:
        start_web(site, port)
        wait_for(f"{site.url}/api/v1/health/")
        posted = requests.post(
            f"{site.url}/api/v1/trades/",
            json=make_trade(999, external_id="after-the-move"),
            headers={"Authorization": f"Bearer {sqlite_site['ALPHA_KEY']}"},
            timeout=30,
        )
        assert posted.status_code == 201, posted.text
        newest = postgres_rows(
            postgres_database, "SELECT id, external_id FROM trades_trade ORDER BY id DESC LIMIT 1"
        )
        assert newest == [(before[-1][0] + 1, "after-the-move")]
    finally:
        for process in site.processes:
            stop(process)


def test_a_target_that_holds_data_is_refused_with_one_line(
    sqlite_site: dict[str, str], postgres_database: str
) -> None:
    env = dict(sqlite_site, DATABASE_URL=postgres_database, REDIS_URL="")
    manage(env, "copy_to_postgres")

    again = manage(env, "copy_to_postgres", check=False)

    assert again.returncode == 1
    name = postgres_database.rsplit("/", 1)[1]
    assert again.stderr.strip().splitlines() == [
        f"CommandError: PostgreSQL {name} is not empty (trades_trade has 40 rows): "
        "copy_to_postgres copies into an empty database only"
    ], again.stderr


def test_without_database_url_or_a_source_the_command_says_so_in_one_line(
    sqlite_site: dict[str, str], postgres_database: str, tmp_path: Path
) -> None:
    unset = manage(sqlite_site, "copy_to_postgres", check=False)
    assert unset.returncode == 1
    assert unset.stderr.strip().splitlines() == [
        "CommandError: DATABASE_URL is not set: set it to the empty PostgreSQL database to copy into"
    ]

    env = dict(sqlite_site, DATABASE_URL=postgres_database, REDIS_URL="")
    missing = manage(env, "copy_to_postgres", "--from", str(tmp_path / "nowhere.db"), check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"CommandError: there is no SQLite database at {tmp_path / 'nowhere.db'} (give it with --from PATH)"
    ]
    assert postgres_rows(postgres_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
        (0,)
    ]


SKEWED_COPY = """
import dataclasses
from unittest import mock
from django.core.management import CommandError, call_command
from monitorsite import move_to_postgres as move

real = move._summary


def skewed(alias, bot_id, day):
    # As if one trade of the second bot's third day had been copied wrong.
    summary = real(alias, bot_id, day)
    if alias == "default" and bot_id == 2 and day.day == 4:
        return dataclasses.replace(summary, total_trades=summary.total_trades - 1)
    return summary


with mock.patch.object(move, "_summary", skewed):
    try:
        call_command("copy_to_postgres")
    except CommandError as exc:
        print(f"refused: {exc}")
"""


def test_a_summary_that_differs_after_the_copy_rolls_it_back_with_one_line(
    sqlite_site: dict[str, str], postgres_database: str
) -> None:

    env = dict(sqlite_site, DATABASE_URL=postgres_database, REDIS_URL="")

    result = manage(env, "shell", "-c", SKEWED_COPY)

    assert result.stdout.strip().splitlines()[-1] == (
        "refused: the copy does not match: the daily summary of bot #2 for 2026-03-04 differs"
    )
    # Rolled back: migrated (before the transaction), but no row of the site's data copied.
    assert postgres_rows(postgres_database, "SELECT count(*) FROM trades_trade") == [(0,)]
    assert postgres_rows(postgres_database, "SELECT count(*) FROM trades_bot") == [(0,)]
    again = manage(env, "copy_to_postgres")
    assert "10 daily summaries (per bot and trading day) equal" in again.stdout


def database_contents(url: str) -> dict[str, list[str]]:
    """Every row of every table of the ``public`` schema, as text, by table."""
    with psycopg.connect(url) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        return {
            table: [row[0] for row in connection.execute(f'SELECT t::text FROM "{table}" t ORDER BY 1')]
            for table in tables
        }


def test_a_target_holding_one_bot_and_nothing_else_is_refused_and_left_as_it_was(
    sqlite_site: dict[str, str], postgres_database: str
) -> None:
    env = dict(sqlite_site, DATABASE_URL=postgres_database, REDIS_URL="")
    manage(env, "migrate", "--noinput")
    manage(env, "create_bot", "gamma")
    before = database_contents(postgres_database)
    assert len(before["trades_bot"]) == 1 and before["trades_trade"] == [] and before["auth_user"] == []

    refused = manage(env, "copy_to_postgres", check=False)

    assert refused.returncode == 1
    name = postgres_database.rsplit("/", 1)[1]
    assert refused.stderr.strip().splitlines() == [
        f"CommandError: PostgreSQL {name} is not empty (trades_bot has 1 rows): "
        "copy_to_postgres copies into an empty database only"
    ]
    assert database_contents(postgres_database) == before


def test_a_source_one_migration_behind_is_refused_before_the_target_is_touched(
    sqlite_site: dict[str, str], postgres_database: str
) -> None:
    # The code's last migration of trades not applied (whichever it is today).
    # Unapplying it unapplies what depends on it in other apps too: the command counts them all.
    *_, before, last = sorted(path.stem for path in (ROOT / "trades" / "migrations").glob("0*.py"))
    manage(sqlite_site, "migrate", "trades", before)
    plan = manage(sqlite_site, "showmigrations", "--plan").stdout
    lacking = sum(1 for line in plan.splitlines() if line.startswith("[ ]"))
    assert lacking >= 1 and f"[ ]  trades.{last}" in plan, plan
    env = dict(sqlite_site, DATABASE_URL=postgres_database, REDIS_URL="")

    refused = manage(env, "copy_to_postgres", check=False)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"CommandError: the SQLite database lacks {lacking} migration(s) of this version (first "
        f"trades.{last}): run manage.py migrate on it first (with DATABASE_URL unset)"
    ]
    assert database_contents(postgres_database) == {}  # as empty as it came: not even migrated


@pytest.mark.parametrize("kind", ["not-sqlite", "another-programs-sqlite"])
def test_a_file_that_is_no_sites_database_is_refused_before_the_target_is_touched(
    postgres_database: str, tmp_path: Path, kind: str
) -> None:
    source = tmp_path / "other.db"
    if kind == "not-sqlite":
        source.write_bytes(b"just some text, not a database\n" * 200)
    else:
        with sqlite3.connect(source) as db:
            db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    env = dict(site_env(tmp_path, sqlite=True), DATABASE_URL=postgres_database, REDIS_URL="")

    refused = manage(env, "copy_to_postgres", "--from", str(source), check=False)

    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "CommandError: the SQLite file is not a database of this site (no django_migrations)"
    ]
    assert database_contents(postgres_database) == {}
