from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from rest_framework.test import APIClient

from trades.models import Bot

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


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
    """A validated trade dict as ``Trade.objects.record_batch`` takes it."""
    trade: dict[str, Any] = {
        "external_id": f"ord-{n}",
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": Decimal("10"),
        "price": Decimal("187.25"),
        "strategy": "momentum",
        "pnl": None,
        "executed_at": dt.datetime(2026, 1, 15, 15, 31, tzinfo=dt.UTC),
        "metadata": {},
    }
    trade.update(overrides)
    return trade


# --- real processes on loopback ---------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def site_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a site process with its own database, logs and secret key."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "DISCORD_", "LOKI_"))
    }
    env.update(
        DATABASE_PATH=str(tmp / "trades.db"),
        LOG_DIR=str(tmp / "logs"),
        DJANGO_SECRET_KEY="test-secret-key-for-subprocesses",
        # A developer's own .env must not leak into the site under test.
        ENV_FILE=str(tmp / "no.env"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file, made once and copied for each server test."""
    tmp = tmp_path_factory.mktemp("template")
    manage(site_env(tmp), "migrate", "--noinput")
    manage(site_env(tmp), "setup_schedules")
    return tmp / "trades.db"


@dataclass
class Site:
    """A site started as users run it: its own database, gunicorn on a loopback port."""

    url: str
    env: dict[str, str]
    tmp: Path
    processes: list[subprocess.Popen[bytes]]

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return manage(self.env, *args, check=check)

    def create_bot(self, name: str, *flags: str) -> str:
        return self.manage("create_bot", name, *flags).stdout.strip().splitlines()[-1]

    def start(self, *command: str, log: str) -> subprocess.Popen[bytes]:
        handle = open(self.tmp / log, "wb")
        process = subprocess.Popen(
            list(command),
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def start_cluster(self) -> subprocess.Popen[bytes]:
        return self.start(str(VENV_BIN / "python"), "manage.py", "qcluster", log="qcluster.log")

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")


def wait_for(url: str, *, timeout: float = 30, accept: tuple[int, ...] = (200, 503)) -> requests.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=2)
            if response.status_code in accept:
                return response
        except requests.ConnectionError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s ({last})")


def stop(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@pytest.fixture
def site(tmp_path: Path, migrated_template: Path) -> Iterator[Site]:
    """gunicorn with 4 sync workers serving a fresh copy of the migrated database."""
    shutil.copy(migrated_template, tmp_path / "trades.db")
    port = free_port()
    instance = Site(url=f"http://127.0.0.1:{port}", env=site_env(tmp_path), tmp=tmp_path, processes=[])
    instance.start(
        str(VENV_BIN / "gunicorn"),
        "--config",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "4",
        "monitorsite.wsgi",
        log="gunicorn.log",
    )
    try:
        wait_for(f"{instance.url}/api/v1/health/")
        yield instance
    finally:
        for process in instance.processes:
            stop(process)
