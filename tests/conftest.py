from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from rest_framework.test import APIClient

from tests.harness import (
    Site,
    copy_site_database,
    free_port,
    made_once,
    manage,
    on_postgres,
    site_database_name,
    site_env,
    start_web,
    stop,
    wait_for,
)
from trades.models import Bot
from trades.validation import parse_trades


@pytest.fixture
def bot(db: Any) -> Bot:
    return Bot.objects.create(name="alpha")


@pytest.fixture
def write_key(bot: Bot) -> str:
    return bot.issue_key()[1]


@pytest.fixture
def read_key(bot: Bot) -> str:
    return bot.issue_key(read_only=True)[1]


@pytest.fixture
def api(write_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {write_key}")
    return client


def make_trade(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid trade as the bot would post it."""
    trade: dict[str, Any] = {
        "external_id": f"ord-{n}",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 10,
        "price": 187.25,
        "strategy": "momentum",
        "pnl": None,
        "executed_at": "2026-01-15T10:31:00-05:00",
        "metadata": {"order_type": "limit"},
    }
    trade.update(overrides)
    return trade


def stored_trade(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """``make_trade`` as the validator hands it to ``Trade.objects.record_batch``.

    Overrides may be Python values (``Decimal``, aware ``datetime``); they are
    sent through the real validator as a bot would send them.
    """
    body = json.dumps(make_trade(n, **overrides), default=_as_json)
    trades, _ = parse_trades(body.encode())
    return trades[0]


def _as_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        # A JSON number, as a bot sends it (the API takes no numeric strings); only a
        # Decimal a float spells back exactly can be sent this way.
        if Decimal(repr(float(value))) != value:
            raise TypeError(f"{value} has no exact float; send it in a test's own JSON text")
        return float(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file (on PostgreSQL, the database of that folder's site), made once for
    the run and copied for each server test."""

    def make(folder: Path) -> None:
        manage(site_env(folder), "migrate", "--noinput")
        manage(site_env(folder), "setup_schedules")

    return made_once(tmp_path_factory, "template", make) / "trades.db"


@pytest.fixture
def site(tmp_path: Path, migrated_template: Path) -> Iterator[Site]:
    """The web server (4 threads) serving a fresh copy of the migrated database."""
    copy_site_database(migrated_template, tmp_path / "trades.db")
    port = free_port()
    instance = Site(url=f"http://127.0.0.1:{port}", env=site_env(tmp_path), tmp=tmp_path, processes=[])
    start_web(instance, port)
    try:
        wait_for(f"{instance.url}/api/v1/health/")
        yield instance
    finally:
        for process in instance.processes:
            stop(process)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL run's server (``DATABASE_URL``, from scripts/test.sh) as the URL of its
    maintenance database ``postgres``, for tests of what only PostgreSQL does (pg_dump backups, the
    SQLite-to-PostgreSQL copy). Those tests run in the PostgreSQL pass only: on the SQLite pass
    ``pytest_collection_modifyitems`` deselects them, and says so.
    """
    url = os.environ.get("DATABASE_URL")
    assert url, "PostgreSQL-only tests run with DATABASE_URL set (the PostgreSQL pass of scripts/test.sh)"
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """This process's own data folder (``tests/settings.py``) goes with it."""
    from django.conf import settings

    shutil.rmtree(settings.OWN_DATA, ignore_errors=True)


POSTGRES_ONLY_FIXTURE = "postgres_server"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the SQLite pass, leave out the tests of what only PostgreSQL does (every test that uses
    ``postgres_server``, directly or through another fixture): the PostgreSQL pass runs them.
    """
    if on_postgres():
        return
    postgres_only = [item for item in items if POSTGRES_ONLY_FIXTURE in getattr(item, "fixturenames", ())]
    if not postgres_only:
        return
    items[:] = [item for item in items if item not in postgres_only]
    config.hook.pytest_deselected(items=postgres_only)
    config.stash[_POSTGRES_ONLY_LEFT_OUT] = len(postgres_only)


_POSTGRES_ONLY_LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    left_out = config.stash.get(_POSTGRES_ONLY_LEFT_OUT, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} tests of what only PostgreSQL does were left out of this SQLite pass; "
            "the PostgreSQL pass (DATABASE_URL set, as scripts/test.sh runs it) runs them."
        )


@pytest.fixture
def postgres_database(postgres_server: str, tmp_path: Path) -> str:
    """The URL of a new, empty PostgreSQL database for one test."""
    return new_postgres_database(postgres_server, site_database_name(tmp_path / "postgres"))


def new_postgres_database(server: str, name: str, template: str | None = None) -> str:
    """The URL of database ``name`` on ``server``, made anew: empty, or a copy of database ``template``
    (which nobody may be connected to while it is copied)."""
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@pytest.fixture(autouse=True)
def _empty_redis_queue() -> None:
    """On the Redis run, each test starts with an empty queue, as the ORM broker's table is rolled back."""
    if os.environ.get("REDIS_URL"):
        import redis

        with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
            client.flushdb()


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``migrated_template`` on SQLite in both runs, for tests of what only SQLite does."""

    def make(folder: Path) -> None:
        manage(site_env(folder, sqlite=True), "migrate", "--noinput")
        manage(site_env(folder, sqlite=True), "setup_schedules")

    return made_once(tmp_path_factory, "sqlite-template", make) / "trades.db"


@pytest.fixture
def sqlite_site_database(
    tmp_path: Path, migrated_sqlite_template: Path, django_db_blocker: Any
) -> Iterator[Path]:
    """This process's ``default`` database made a fresh migrated SQLite file for one test, in both
    runs: for in-process tests of what only SQLite does (backups of the file, WAL, gzip). The
    PostgreSQL run's own database comes back afterwards.
    """
    from django.conf import settings
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper

    path = tmp_path / "sqlite-site" / "trades.db"
    path.parent.mkdir()
    shutil.copy(migrated_sqlite_template, path)
    previous = connections["default"]
    settings_dict = {
        **previous.settings_dict,
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "HOST": "",
        "PORT": "",
        "USER": "",
        "PASSWORD": "",
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": settings.SQLITE_BUSY_TIMEOUT_SECONDS,
            "init_command": "PRAGMA journal_mode=WAL;PRAGMA foreign_keys=ON;",
        },
    }
    replacement = DatabaseWrapper(settings_dict, "default")
    with django_db_blocker.unblock():
        connections["default"] = replacement
        try:
            yield path
        finally:
            replacement.close()
            connections["default"] = previous
