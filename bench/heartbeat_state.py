"""What a heartbeat carrying the bot's state costs the site, against a bare heartbeat (docs/benchmarks.md).

Run as ``.venv/bin/python bench/heartbeat_state.py [--rounds R] [--beats N]``. It starts the site's
web server (``python -m monitorsite.serve``) over a throwaway SQLite database and posts, from one
client over one kept-alive connection, heartbeats of four kinds in alternating rounds (the order
rotates each round, so a drift in the shared machine's load hits all of them):

- bare: ``{"status": "running"}``, the baseline;
- host: with the host figures the client sends by itself;
- 50 positions, and 500 (the most a heartbeat takes), with equity, cash and host.

It prints each kind's median and p95 time per request and its ratio to the bare heartbeat's median
of the same run, the request body's size, and the snapshot table's size after the run. Target: a
heartbeat with 500 positions within 25 ms at the median on this machine's shared cores; the ratio
is what to compare across runs. The exit status is 0 unless the run broke.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    HOST,
    Server,
    code_version,
    free_port,
    machine_line,
    new_site_with_bot,
    percentile,
    run_as_script,
    site_env,
    verdict,
)

TARGET_500_MS = 25.0
HOST_FIGURES = {
    "pid": 4242,
    "started_at": "2026-01-15T13:00:00Z",
    "rss_bytes": 150_000_000,
    "cpu_percent": 3.5,
    "memory_available_bytes": 800_000_000,
    "memory_total_bytes": 2_000_000_000,
    "disk_free_bytes": 20_000_000_000,
    "disk_total_bytes": 50_000_000_000,
}


def positions(count: int) -> list[dict[str, object]]:
    return [
        {
            "symbol": f"SYM{n:03d}",
            "quantity": (n % 7 + 1) * (-1 if n % 3 == 0 else 1) * 10,
            "avg_price": round(20 + n * 0.37, 2),
            "market_price": round(20 + n * 0.37 + (n % 11 - 5) * 0.13, 2),
        }
        for n in range(count)
    ]


def bodies() -> dict[str, bytes]:
    state = {"equity": 102_345.67, "cash": 25_000.5, "host": HOST_FIGURES}
    return {
        "bare": json.dumps({"status": "running"}).encode(),
        "host": json.dumps({"status": "running", "host": HOST_FIGURES}).encode(),
        "50 positions": json.dumps({"status": "running", "positions": positions(50), **state}).encode(),
        "500 positions": json.dumps({"status": "running", "positions": positions(500), **state}).encode(),
    }


def post(conn: http.client.HTTPConnection, key: str, body: bytes) -> float:
    started = time.perf_counter()
    conn.request(
        "POST",
        "/api/v1/heartbeat/",
        body=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    answer = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"heartbeat answered {response.status}: {answer[:300]!r}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--beats", type=int, default=40, help="heartbeats of each kind per round")
    args = parser.parse_args()
    print(machine_line())
    print(f"code: {code_version()}")
    kinds = bodies()
    with tempfile.TemporaryDirectory(prefix="bench-heartbeat-") as tmp:
        env = site_env(Path(tmp))
        key = new_site_with_bot(env)
        port = free_port()
        server = Server(env, port, Path(tmp) / "server.log")
        try:
            server.wait_ready()
            conn = http.client.HTTPConnection(HOST, port, timeout=30)
            names = list(kinds)
            for name in names:  # warm up each path (imports, first queries)
                for _ in range(5):
                    post(conn, key, kinds[name])
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_number in range(args.rounds):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    times[name].extend(post(conn, key, kinds[name]) for _ in range(args.beats))
            conn.close()
        finally:
            server.stop()
        with sqlite3.connect(Path(tmp) / "trades.db") as db:
            snapshots = db.execute("SELECT COUNT(*) FROM trades_botsnapshot").fetchone()[0]
            page_count = db.execute("PRAGMA page_count").fetchone()[0]
            size = page_count * db.execute("PRAGMA page_size").fetchone()[0]
    base = statistics.median(times["bare"])
    print(f"{args.rounds} rounds x {args.beats} heartbeats of each kind, one client, kept-alive connection")
    print(f"{'heartbeat':<15}{'body':>10}{'median':>11}{'p95':>11}{'vs bare':>9}")
    for name in names:
        median, p95 = statistics.median(times[name]), percentile(times[name], 95)
        print(
            f"{name:<15}{len(kinds[name]):>8} B{median * 1000:>8.2f} ms"
            f"{p95 * 1000:>8.2f} ms{median / base:>8.2f}x"
        )
    median_500 = statistics.median(times["500 positions"]) * 1000
    print(f"500 positions within {TARGET_500_MS:g} ms at the median: {verdict(median_500 <= TARGET_500_MS)}")
    print(f"snapshots stored: {snapshots:,}; database file {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    run_as_script(main)
