"""Benchmark of ``Monitor.record_trade`` on the bot's thread; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/client.py [--quick]``. Every figure is printed beside
baselines measured in the same run, because the machine is shared and absolute numbers
drift:

- the original design: a direct, synchronous ``sqlite3`` insert into a trades table
  with a commit per trade (a plain database file, default journal and synchronous);
- the same with WAL and ``synchronous=NORMAL`` (what a faster local store would use).

``record_trade`` is measured twice: while the site is unreachable (everything stays
in the spool, the shipper backs off) and while the shipper sends to the real site
under gunicorn (so its thread competes with the bot's for the GIL).

Target (issue 10): median at most 50 µs, at least 5 times faster than the direct
insert. A missed target prints FAIL; only a broken run exits non-zero.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor_client import Monitor  # noqa: E402

VENV_BIN = Path(sys.executable).parent
TARGET_MEDIAN_US = 50.0
TARGET_RATIO = 5.0

TRADES_TABLE = """
CREATE TABLE trades (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id INTEGER NOT NULL,
    external_id VARCHAR(100) NOT NULL,
    symbol VARCHAR(32) NOT NULL,
    side VARCHAR(4) NOT NULL,
    quantity DECIMAL NOT NULL,
    price DECIMAL NOT NULL,
    strategy VARCHAR(100) NOT NULL,
    pnl DECIMAL NULL,
    executed_at DATETIME NOT NULL,
    trading_day DATE NOT NULL,
    metadata TEXT NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX trades_bot_external ON trades (bot_id, external_id);
CREATE INDEX trades_bot_day ON trades (bot_id, trading_day, executed_at);
"""
INSERT = (
    "INSERT INTO trades (bot_id, external_id, symbol, side, quantity, price, strategy, pnl, "
    "executed_at, trading_day, metadata, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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


def sqlite_insert(path: Path, *, wal: bool) -> Callable[[int], object]:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(TRADES_TABLE)

    def insert(n: int) -> None:
        trade = fill(n)
        now = dt.datetime.now(dt.UTC)
        conn.execute("BEGIN")
        conn.execute(
            INSERT,
            (
                trade["external_id"],
                trade["symbol"],
                trade["side"],
                str(trade["quantity"]),
                str(trade["price"]),
                trade["strategy"],
                None if trade["pnl"] is None else str(trade["pnl"]),
                now.isoformat(),
                now.date().isoformat(),
                '{"order_type": "limit"}',
                now.isoformat(),
            ),
        )
        conn.execute("COMMIT")

    return insert


def record_trades(monitor: Monitor, offset: int) -> Callable[[int], object]:
    def record(n: int) -> None:
        monitor.record_trade(**fill(offset + n))  # type: ignore[arg-type]

    return record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_site(tmp: Path) -> Iterator[tuple[str, str]]:
    """The site under gunicorn on a free port with its own database; yields (url, key)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "LOKI_", "DISCORD_"))
    }
    env.update(
        DATABASE_PATH=str(tmp / "site.db"),
        LOG_DIR=str(tmp / "logs"),
        DJANGO_SECRET_KEY="bench-secret",
        ENV_FILE=str(tmp / "no.env"),
    )

    def manage(*args: str) -> str:
        return subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout

    for step in (("prepare_site",), ("migrate", "--noinput")):
        try:
            manage(*step)
        except subprocess.CalledProcessError as exc:
            if "Unknown command" not in exc.stderr:
                raise
    key = manage("create_bot", "bench-bot").strip().splitlines()[-1]
    port = free_port()
    with open(tmp / "gunicorn.log", "wb") as log:
        command = [str(VENV_BIN / "gunicorn"), "--config", "gunicorn.conf.py", "--workers", "2"]
        server = subprocess.Popen(
            [*command, "--bind", f"127.0.0.1:{port}", "monitorsite.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{url}/api/v1/health/", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the site did not start; see {tmp / 'gunicorn.log'}") from None
                time.sleep(0.2)
        yield url, key
    finally:
        server.terminate()
        server.wait(30)


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    spooled = 5_000 if args.quick else 20_000
    direct = 200 if args.quick else 1_000

    tmp = Path(tempfile.mkdtemp(prefix="bench-client-"))
    results: dict[str, tuple[float, float, int]] = {}
    try:
        print(f"record_trade benchmark ({spooled} spooled trades, {direct} direct inserts); µs per call")
        samples = timed(sqlite_insert(tmp / "direct.db", wal=False), direct)
        results["sqlite3 insert + commit (original design)"] = (*summary(samples), direct)
        samples = timed(sqlite_insert(tmp / "wal.db", wal=True), spooled)
        results["sqlite3 WAL synchronous=NORMAL + commit"] = (*summary(samples), spooled)

        unreachable = f"http://127.0.0.1:{free_port()}"
        monitor = Monitor(unreachable, "bench-key", tmp / "spool-down", backoff_base=1, backoff_max=5)
        samples = timed(record_trades(monitor, 0), spooled)
        results["record_trade, site unreachable"] = (*summary(samples), spooled)
        monitor.close(timeout=0)

        with running_site(tmp) as (url, key):
            monitor = Monitor(url, key, tmp / "spool-up")
            samples = timed(record_trades(monitor, 0), spooled)
            results["record_trade, shipping to the site"] = (*summary(samples), spooled)
            shipped = monitor.flush(timeout=300)
            monitor.close(timeout=10)
            if not shipped:
                print("  (the shipper did not finish within 300 s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    baseline = results["sqlite3 insert + commit (original design)"][0]
    wal = results["sqlite3 WAL synchronous=NORMAL + commit"][0]
    width = max(len(name) for name in results)
    print(f"{'':{width}}  {'median':>9} {'p99':>9} {'n':>6}  {'vs direct':>9} {'vs WAL':>7}")
    for name, (median, p99, count) in results.items():
        ratios = f"{baseline / median:8.1f}x {wal / median:6.1f}x"
        print(f"{name:{width}}  {median:9.1f} {p99:9.1f} {count:6d}  {ratios}")
    failed = False
    for name in ("record_trade, site unreachable", "record_trade, shipping to the site"):
        median = results[name][0]
        ok = median <= TARGET_MEDIAN_US and baseline / median >= TARGET_RATIO
        failed |= not ok
        print(
            f"{'PASS' if ok else 'FAIL'} {name}: median {median:.1f} µs (target <= {TARGET_MEDIAN_US:.0f}), "
            f"{baseline / median:.0f}x faster than the direct insert (target >= {TARGET_RATIO:.0f}x)"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
