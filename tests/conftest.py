from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.harness import Site, copy_site_database, free_port, manage, site_env, start_web, stop, wait_for
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
    """A migrated database file, made once and copied for each server test."""
    tmp = tmp_path_factory.mktemp("template")
    manage(site_env(tmp), "migrate", "--noinput")
    manage(site_env(tmp), "setup_schedules")
    return tmp / "trades.db"


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
