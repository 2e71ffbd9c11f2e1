"""Benchmark of ``Monitor.record_trade`` on the bot's thread; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/client.py [--quick]``. Every figure is printed beside
baselines measured in the same run, because the machine is shared and absolute numbers
drift:

- the original design: a direct, synchronous ``sqlite3`` insert into a trades table
  with a commit per trade (a plain database file, default journal and synchronous);
- the same with WAL and ``synchronous=NORMAL`` (what a faster local store would use).

``record_trade`` is measured twice: while the site is unreachable (everything stays
in the spool, the shipper backs off) and while the shipper sends to the real site
under the site's web server (so its thread competes with the bot's for the GIL).

Target: median at most 50 µs, at least 5 times faster than the direct
insert. A missed target prints FAIL; only a broken run exits non-zero.
"""

from __future__ import annotations

import os
import sys

# The project root, for monitor_client and bench.common.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import contextlib
import datetime as dt
import logging
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from bench.common import (
    HOST,
    Server,
    code_version,
    connect,
    free_port,
    insert_sql,
    machine_line,
    new_site_with_bot,
    percentile,
    run_as_script,
    site_env,
    verdict,
)
from monitor_client import Monitor

TARGET_MEDIAN_US = 50.0
TARGET_RATIO = 5.0
DIRECT = "sqlite3 insert + commit (original design)"
WAL = "sqlite3 WAL synchronous=NORMAL + commit"
DOWN = "record_trade, site unreachable"
UP = "record_trade, shipping to the site"


def fill(n: int) -> dict[str, object]:
    """The n-th fill of a busy session: what a bot passes to record_trade."""
    return {
        "external_id": f"ord-{n}",
        "symbol": ("AAPL", "MSFT", "NVDA", "TSLA")[n % 4],
        "side": "BUY" if n % 2 == 0 else "SELL",
        "quantity": Decimal(10 + n % 90),
        "price": Decimal("187.25") + Decimal(n % 100) / 100,
        "strategy": "mean_reversion",
        "pnl": None if n % 2 == 0 else Decimal(n % 41 - 20) / 4,
        "order_type": "limit",
    }


def timed(action: Callable[[int], object], count: int) -> list[float]:
    """Microseconds of each call, measured on this (the bot's) thread."""
    samples = []
    clock = time.perf_counter_ns
    for n in range(count):
        started = clock()
        action(n)
        samples.append((clock() - started) / 1000)
    return samples


def baseline_db(site_db: Path, path: Path, *, site_pragmas: bool) -> sqlite3.Connection:
    """A database with the site's trades table and indexes (from its migrated schema).

    ``site_pragmas``: set up as the site sets up its connections (WAL, synchronous=NORMAL);
    otherwise as the original design did, a plain file with SQLite's defaults (rollback
    journal, synchronous=FULL).
    """
    with contextlib.closing(sqlite3.connect(site_db)) as site:
        schema = site.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('trades_bot', 'trades_trade')"
            " AND sql IS NOT NULL ORDER BY type = 'index', name = 'trades_trade'"
        ).fetchall()
        bots = site.execute("SELECT * FROM trades_bot").fetchall()
    conn = connect(path) if site_pragmas else sqlite3.connect(path, isolation_level=None)
    for (sql,) in schema:
        conn.execute(sql)
    conn.executemany(f"INSERT INTO trades_bot VALUES ({','.join('?' * len(bots[0]))})", bots)
    return conn


def sqlite_insert(conn: sqlite3.Connection) -> Callable[[int], object]:
    """The original design's store: one synchronous INSERT and COMMIT per trade, on the bot's thread."""
    sql, columns = insert_sql(conn, "trades_trade")
    (bot_id,) = conn.execute("SELECT id FROM trades_bot").fetchone()

    def insert(n: int) -> None:
        trade = fill(n)
        now = dt.datetime.now(dt.UTC)
        row = {
            "external_id": trade["external_id"],
            "symbol": trade["symbol"],
            "side": trade["side"],
            "quantity": str(trade["quantity"]),
            "price": str(trade["price"]),
            "strategy": trade["strategy"],
            "pnl": None if trade["pnl"] is None else str(trade["pnl"]),
            "executed_at": now.isoformat(sep=" "),
            "trading_day": now.date().isoformat(),
            "metadata": '{"order_type":"limit"}',
            "received_at": now.isoformat(sep=" "),
            "bot_id": bot_id,
        }
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(sql, tuple(row[c] for c in columns))
        conn.execute("COMMIT")

    return insert


def record_trades(monitor: Monitor) -> Callable[[int], object]:
    def record(n: int) -> None:
        monitor.record_trade(**fill(n))  # type: ignore[arg-type]

    return record


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    spooled = 5_000 if args.quick else 20_000
    direct = 200 if args.quick else 1_000

    print(machine_line())
    print(f"code: {code_version()}")
    print(f"record_trade benchmark ({spooled} spooled trades, {direct} direct inserts); µs per call")
    tmp = Path(tempfile.mkdtemp(prefix="bench-client-"))
    results: dict[str, list[float]] = {}
    server: Server | None = None
    try:
        env = site_env(tmp)
        key = new_site_with_bot(env)
        site_db = tmp / "trades.db"

        with contextlib.closing(baseline_db(site_db, tmp / "direct.db", site_pragmas=False)) as conn:
            results[DIRECT] = timed(sqlite_insert(conn), direct)
        with contextlib.closing(baseline_db(site_db, tmp / "wal.db", site_pragmas=True)) as conn:
            results[WAL] = timed(sqlite_insert(conn), spooled)

        # The outage is the point here; its retry warnings would only clutter the figures.
        logging.getLogger("monitor_client").setLevel(logging.ERROR)
        unreachable = f"http://{HOST}:{free_port()}"
        monitor = Monitor(unreachable, key, tmp / "spool-down", backoff_base=1, backoff_max=5)
        results[DOWN] = timed(record_trades(monitor), spooled)
        monitor.close(timeout=0)

        server = Server(env, free_port(), tmp / "web.log")
        server.wait_ready()
        monitor = Monitor(f"http://{HOST}:{server.port}", key, tmp / "spool-up")
        results[UP] = timed(record_trades(monitor), spooled)
        started = time.monotonic()
        shipped = monitor.flush(timeout=300)
        monitor.close(timeout=10)
        with contextlib.closing(sqlite3.connect(site_db, timeout=30)) as conn:
            (stored,) = conn.execute("SELECT COUNT(*) FROM trades_trade").fetchone()
        late = "" if shipped else " (flush timed out)"
        print(
            f"shipper: {stored} of {spooled} trades stored by the site{late}, "
            f"{time.monotonic() - started:.1f} s after the last call"
        )
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    medians = {name: statistics.median(samples) for name, samples in results.items()}
    width = max(len(name) for name in results)
    print(f"{'':{width}}  {'median':>9} {'p99':>9} {'n':>6}  {'vs direct':>9} {'vs WAL':>7}")
    for name, samples in results.items():
        median = medians[name]
        ratios = f"{medians[DIRECT] / median:8.1f}x {medians[WAL] / median:6.1f}x"
        print(f"{name:{width}}  {median:9.1f} {percentile(samples, 99):9.1f} {len(samples):6d}  {ratios}")
    for name in (DOWN, UP):
        median = medians[name]
        ratio = medians[DIRECT] / median
        ok = median <= TARGET_MEDIAN_US and ratio >= TARGET_RATIO
        print(
            f"{verdict(ok)} {name}: median {median:.1f} µs (target <= {TARGET_MEDIAN_US:.0f}), "
            f"{ratio:.0f}x faster than the direct insert (target >= {TARGET_RATIO:.0f}x)"
        )
    return 0


if __name__ == "__main__":
    run_as_script(main)
