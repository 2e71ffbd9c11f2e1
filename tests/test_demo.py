"""The paper-trading demo bot, started beside the site the way a new user starts it."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import ROOT, Site, free_port, stop, wait_for, with_default_sigint

pytestmark = pytest.mark.server


def query(site: Site, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{site.tmp / 'trades.db'}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def demo_rows(site: Site, sql: str) -> list[tuple[Any, ...]]:
    return query(site, sql.replace("{bot}", "(SELECT id FROM trades_bot WHERE name = 'demo-bot')"))


def process_groups(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_serve_with_demo_trades_reports_and_stops_cleanly(site: Site) -> None:
    port = free_port()
    env = dict(
        site.env,
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        DEMO_ARGS=f"--tick 0.05 --seed 7 --heartbeat-every 1 --spool-dir {site.tmp / 'demo-spool'}",
    )
    env.pop("MONITOR_URL", None)
    env.pop("MONITOR_KEY", None)
    log = open(site.tmp / "serve.log", "wb")
    serve = subprocess.Popen(
        ["bash", "scripts/serve.sh", "--demo"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=with_default_sigint,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v1/health/", timeout=90)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            closed = demo_rows(site, "SELECT pnl FROM trades_trade WHERE bot_id = {bot} AND pnl IS NOT NULL")
            if any(p > 0 for (p,) in closed) and any(p < 0 for (p,) in closed):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(
                "the demo made no winning and losing trades: " + site.log("serve.log")[-3000:]
            )
        key_file = site.tmp / "demo-bot.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        groups = process_groups(serve.pid)
        assert len(groups) == 3  # the web server, qcluster and the demo, each in its own group
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(60) == 0
        for group in groups:
            with pytest.raises(ProcessLookupError):
                os.killpg(group, 0)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=2)
    finally:
        stop(serve)
        log.close()

    output = site.log("serve.log")
    assert "killing" not in output
    fills = int(re.search(r"Session closed: (\d+) fills", output).group(1))  # type: ignore[union-attr]
    assert "Everything reached the site." in output
    (count,) = demo_rows(site, "SELECT COUNT(*) FROM trades_trade WHERE bot_id = {bot}")[0]
    assert count == fills, "every fill of the demo reached the site, once"
    kinds = [
        kind
        for (kind,) in demo_rows(site, "SELECT kind FROM trades_botevent WHERE bot_id = {bot} ORDER BY id")
    ]
    assert kinds[:2] == ["startup", "market_open"]
    assert kinds[-2:] == ["market_close", "shutdown"]
    ((status, details),) = demo_rows(
        site, "SELECT last_heartbeat_status, last_heartbeat_details FROM trades_bot"
    )
    assert status == "running" and json.loads(details) == {}


def test_serve_with_demo_reuses_the_demo_key(site: Site) -> None:
    key = site.create_bot("demo-bot")
    (site.tmp / "demo-bot.key").write_text(key + "\n")
    port = free_port()
    env = dict(
        site.env,
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        DEMO_ARGS=f"--tick 0.05 --duration 2 --spool-dir {site.tmp / 'demo-spool'}",
    )
    serve = subprocess.Popen(
        ["bash", "scripts/serve.sh", "--demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v1/health/", timeout=90)
        deadline = time.monotonic() + 90
        while not demo_rows(
            site, "SELECT kind FROM trades_botevent WHERE bot_id = {bot} AND kind = 'shutdown'"
        ):
            assert time.monotonic() < deadline, "the demo did not finish"
            time.sleep(0.2)
        assert serve.poll() is None, "the demo ending by itself leaves the site running"
        assert [name for (name,) in query(site, "SELECT name FROM trades_bot")] == ["demo-bot"]
    finally:
        stop(serve)


def test_demo_without_a_key_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_KEY", "MONITOR_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor_client.demo", "--spool-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MONITOR_KEY" in result.stderr and "Traceback" not in result.stderr
