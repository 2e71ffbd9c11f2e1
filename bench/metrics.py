"""``GET /metrics``'s scrape time at 1,000 and at 1,000,000 trades, in one run; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/metrics.py [--quick]``. It starts two sites side by side, each its
own web server (``python -m monitorsite.serve``) over its own throwaway SQLite database with
``METRICS_TOKEN`` set: one with 1,000 trades, one with 1,000,000, written straight into the table
as ``bench/admin.py`` writes them (250 trading days up to today, 20 symbols, 5 strategies, half of
them closed), and the bench bot's state as a busy bot's heartbeats leave it (``load_snapshots``).
It scrapes each as Prometheus does (``Authorization: Bearer``, a kept-alive connection on
loopback), the two sites' scrapes taken in turn so a busy shared machine slows both alike, and
prints the median of ``REPEATS`` scrapes of each side by side with their ratio. Target: at most
100 ms at 1,000,000 trades. A missed target prints FAIL; only a broken run exits non-zero.

``--quick`` stops at 100,000 trades: a smoke test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from admin import load, load_snapshots
from common import (
    HOST,
    Server,
    code_version,
    free_port,
    machine_line,
    new_site_with_bot,
    run_as_script,
    site_env,
)
from ingest import MARKET_TZ, TradeFactory, trading_days

SMALL = 1_000
LARGE = 1_000_000
QUICK_LARGE = 100_000
REPEATS = 31
TARGET_MS = 100.0
TOKEN = "bench-metrics-token-0123456789abcdef"


def scrape(conn: http.client.HTTPConnection) -> tuple[float, int]:
    """One scrape: milliseconds until the whole body was read, and its bytes."""
    started = time.perf_counter()
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}", "Host": HOST})
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"/metrics answered {response.status}: {body[:300]!r}")
    return elapsed, len(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 trades (a smoke test)")
    args = parser.parse_args(argv)
    large = QUICK_LARGE if args.quick else LARGE
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    servers: list[Server] = []
    try:
        today = dt.datetime.now(MARKET_TZ).date()
        days = trading_days(250, today) + ([today] if today.weekday() < 5 else [])
        connections, loaded, stored = [], [], []
        for label, count in (("small", SMALL), ("large", large)):
            folder = tmp / label
            folder.mkdir()
            env = {**site_env(folder), "METRICS_TOKEN": TOKEN}
            new_site_with_bot(env)
            site_db = folder / "trades.db"
            with contextlib.closing(sqlite3.connect(site_db)) as conn:
                bot_id = int(conn.execute("SELECT id FROM trades_bot WHERE name = 'bench'").fetchone()[0])
            loaded.append(load(site_db, TradeFactory(seed=11), days, count, bot_id, label))
            snapshots = load_snapshots(site_db, bot_id, dt.datetime.now(dt.UTC))
            with contextlib.closing(sqlite3.connect(site_db)) as conn:
                stored.append(int(conn.execute("SELECT count(*) FROM trades_trade").fetchone()[0]))
            server = Server(env, free_port(), folder / "web.log")
            servers.append(server)
            server.wait_ready()
        connections = [http.client.HTTPConnection(HOST, server.port, timeout=120) for server in servers]
        for conn in connections:
            scrape(conn)  # warm-up: imports, the calendar
        times: list[list[float]] = [[], []]
        sizes = [0, 0]
        for _ in range(REPEATS):
            for index, conn in enumerate(connections):
                elapsed, size = scrape(conn)
                times[index].append(elapsed)
                sizes[index] = size
        small, big = (statistics.median(each) for each in times)

        run = "--quick" if args.quick else "full run"
        print(f"Metrics scrape benchmark ({run}), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(machine_line())
        print(f"site: waitress (monitorsite.serve), {servers[0].threads()} threads, on {HOST}")
        print(f"code: {code_version()}")
        print(
            f"two sites side by side: {stored[0]:,} and {stored[1]:,} trades (the large one written in"
            f" {loaded[1]:.0f} s), each over {len(days)} trading days up to {today}, one bot with"
            f" {snapshots:,} state snapshots; median of {REPEATS} scrapes each, taken in turn"
        )
        print()
        print(f"{'':<22}{f'{stored[0]:,} trades':>16}{f'{stored[1]:,} trades':>20}{'ratio':>8}")
        print(f"{'GET /metrics, median':<22}{small:>13.1f} ms{big:>17.1f} ms{big / small:>7.2f}x")
        lows = [min(each) for each in times]
        highs = [max(each) for each in times]
        print(f"{'  fastest':<22}{lows[0]:>13.1f} ms{lows[1]:>17.1f} ms")
        print(f"{'  slowest':<22}{highs[0]:>13.1f} ms{highs[1]:>17.1f} ms")
        print(f"{'  body':<22}{sizes[0]:>14,} B{sizes[1]:>18,} B")
        verdict = "PASS" if big <= TARGET_MS else "FAIL"
        print(f"\n{verdict}: {big:.1f} ms at {stored[1]:,} trades (target <= {TARGET_MS:.0f} ms)")
        return 0
    finally:
        for each in servers:
            each.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_as_script(main)
