"""Memory footprint of the default deployment (issue 25): PSS of every process after real use.

Run as ``.venv/bin/python bench/footprint.py`` from anywhere. It starts the site as
``scripts/start.sh`` / ``scripts/serve.sh`` run it on a 2-core machine: ``python -m
monitorsite.serve --with-cluster``, whose main process forks two web processes and the task cluster
(``manage.py qcluster``'s work, in a process group of its own), over a throwaway SQLite database
with the ORM broker and the schedules of ``setup_schedules``. Then it loads 50,000 trades through
the API (batches of 1,000 over 50 trading days), makes 200 reads spread over the trades, daily
summary, period summary and status endpoints, and prints the PSS of each process of both groups
(from ``/proc/<pid>/smaps_rollup``, so pages shared between forked processes are counted once in the
total) against the limits: 250 MiB for every process together, 100 MiB for a web process. The same
again with ``WEB_PROCESSES=1``. Then one web process fed 900 batches of every size from 1 to 500
trades, as bots' spools send them: its PSS before and after (each new batch size once left SQLite a
prepared statement of its own in each thread's connection).

At its end, when ``bench/trade_cpu.py`` exists, its ``measure()`` lines follow (the server CPU per
single-trade POST; written separately).

A missed limit is reported as FAIL and does not change the exit status (0); a broken run does (1, or
130 when interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.util
import json
import random
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from common import (
    HOST,
    MARKET_TZ_NAME,
    REQUEST_TIMEOUT_S,
    Server,
    code_version,
    free_port,
    machine_line,
    manage,
    new_site_with_bot,
    run_as_script,
    site_env,
    verdict,
)

MIB = 1024 * 1024
TOTAL_LIMIT_MIB = 250.0
WEB_PROCESS_LIMIT_MIB = 100.0
TRADES = 50_000
BATCH = 1_000
READS = 200
SYMBOLS = ("AAPL", "MSFT", "NVDA", "SPY", "QQQ")
STRATEGIES = ("momentum", "mean_reversion")
MARKET_TZ = ZoneInfo(MARKET_TZ_NAME)
# Batches of every size from 1 to 500 (as bots' spools send them) into one web process.
VARIED_BATCHES = 900
# How long the cluster may take to work through what the load queued.
QUEUE_DRAIN_TIMEOUT_S = 120.0


@dataclass
class Process:
    pid: int
    role: str
    pss_kib: int

    @property
    def mib(self) -> float:
        return self.pss_kib * 1024 / MIB


def pss_kib(pid: int) -> int | None:
    """The process's proportional set size in KiB, or None when it has gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def group_members(pgid: int) -> dict[int, int]:
    """Every live process in the process group ``pgid``: pid -> parent pid."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        state, ppid, pgrp = fields[0], int(fields[1]), int(fields[2])
        if pgrp == pgid and state != "Z":
            members[int(entry.name)] = ppid
    return members


def processes(web_pgid: int) -> list[Process]:
    """The deployment's processes with their roles, web first: the web server's group, then the
    group of the task cluster its main process forked."""
    out = []
    for pid in sorted(group_members(web_pgid)):
        role = "web server (main)" if pid == web_pgid else "web process"
        kib = pss_kib(pid)
        if kib is not None:
            out.append(Process(pid, role, kib))
    cluster_pgid = next((pid for pid in _children(web_pgid) if _leads_group(pid)), None)
    if cluster_pgid is None:
        raise RuntimeError("no task cluster under the web server")
    cluster = group_members(cluster_pgid)
    for pid, ppid in sorted(cluster.items()):
        if pid == cluster_pgid:
            role = "task cluster (main)"
        elif ppid == cluster_pgid:
            role = "cluster: sentinel"
        else:
            role = "cluster: worker/monitor/pusher"
        kib = pss_kib(pid)
        if kib is not None:
            out.append(Process(pid, role, kib))
    return out


def _children(parent: int) -> list[int]:
    try:
        return [int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
    except OSError:
        return []


def _leads_group(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat[stat.rindex(")") + 2 :].split()[2]) == pid


def trading_days(count: int) -> list[dt.date]:
    """The ``count`` weekdays before today in New York, oldest first."""
    day = dt.datetime.now(MARKET_TZ).date()
    days: list[dt.date] = []
    while len(days) < count:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days[::-1]


def batch_body(day: dt.date, number: int, rng: random.Random) -> bytes:
    """A thousand fills of one day, from its open on, a few ms apart."""
    clock = dt.datetime.combine(day, dt.time(9, 30), tzinfo=MARKET_TZ).astimezone(dt.UTC)
    trades = []
    for i in range(BATCH):
        clock += dt.timedelta(milliseconds=rng.randint(5, 25))
        closing = rng.random() < 0.5
        trades.append(
            {
                "external_id": f"fp-{number:03d}-{i:04d}",
                "symbol": rng.choice(SYMBOLS),
                "side": "SELL" if closing else "BUY",
                "quantity": rng.randint(1, 200),
                "price": round(rng.uniform(50, 500), 2),
                "strategy": rng.choice(STRATEGIES),
                "pnl": round(rng.gauss(0, 40), 2) if closing else None,
                "executed_at": clock.isoformat(timespec="milliseconds"),
            }
        )
    return json.dumps(trades, separators=(",", ":")).encode()


def request(port: int, method: str, path: str, key: str, body: bytes | None = None) -> int:
    """One request on a connection of its own (so requests spread over the web processes)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def load(port: int, key: str, days: list[dt.date]) -> float:
    """50,000 trades in batches, two clients at once (one per web process); seconds taken."""
    rng = random.Random(25)
    bodies = [batch_body(days[n % len(days)], n, rng) for n in range(TRADES // BATCH)]
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda body: request(port, "POST", "/api/v1/trades/", key, body), bodies))
    if set(statuses) != {201}:
        raise RuntimeError(f"loading trades: statuses {sorted(set(statuses))}")
    return time.monotonic() - started


def reads(days: list[dt.date]) -> list[str]:
    """200 paths: trades (by day, symbol, strategy), daily summaries, periods and status, in turn."""
    rng = random.Random(250)
    paths = []
    for n in range(READS):
        day = rng.choice(days)
        kind = n % 4
        if kind == 0:
            filters = [f"date={day}", f"symbol={rng.choice(SYMBOLS)}", f"strategy={rng.choice(STRATEGIES)}"]
            paths.append(f"/api/v1/trades/?{rng.choice(filters)}&limit={rng.choice((50, 200, 1000))}")
        elif kind == 1:
            paths.append(f"/api/v1/summary/daily/?date={day}")
        elif kind == 2:
            start = rng.choice(days[: len(days) // 2])
            paths.append(f"/api/v1/summary/period/?start={start}&end={rng.choice(days[len(days) // 2 :])}")
        else:
            paths.append("/api/v1/status/")
    return paths


def read_all(port: int, key: str, paths: list[str]) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda path: request(port, "GET", path, key), paths))
    if set(statuses) != {200}:
        raise RuntimeError(f"reads: statuses {sorted(set(statuses))}")
    return time.monotonic() - started


def wait_queue_empty(db: Path) -> float:
    """Until the ORM broker's queue is empty (the cluster took what the load queued); seconds waited."""
    started = time.monotonic()
    while True:
        with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
            left = conn.execute("SELECT COUNT(*) FROM django_q_ormq").fetchone()[0]
        if left == 0:
            return time.monotonic() - started
        if time.monotonic() - started > QUEUE_DRAIN_TIMEOUT_S:
            raise RuntimeError(f"{left} tasks still queued after {QUEUE_DRAIN_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def run(web_processes: int, label: str) -> bool:
    """One deployment, loaded and read; prints its table; whether it is within both limits."""
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**site_env(tmp), "WEB_PROCESSES": str(web_processes)}
        env.pop("WEB_CONCURRENCY", None)  # the server's default threads, as start.sh runs it
        key = new_site_with_bot(env)
        manage(env, "setup_schedules")
        server = Server(env, free_port(), tmp / "web.log", with_cluster=True)
        try:
            server.wait_ready()
            days = trading_days(TRADES // BATCH)
            load_s = load(server.port, key, days)
            drained_s = wait_queue_empty(tmp / "trades.db")
            read_s = read_all(server.port, key, reads(days))
            if server.proc.poll() is not None:
                raise RuntimeError(f"the site exited with {server.proc.returncode}")
            procs = processes(server.proc.pid)
        finally:
            server.stop()
    print(f"\n{label}")
    print(
        f"  {TRADES:,} trades loaded in {load_s:.1f} s (queue drained {drained_s:.1f} s later),"
        f" {READS} reads in {read_s:.1f} s"
    )
    print(f"  {'process':<32} {'pid':>7} {'PSS MiB':>8}  against its limit")
    ok = True
    for proc in procs:
        note = ""
        if proc.role == "web process":
            within = proc.mib <= WEB_PROCESS_LIMIT_MIB
            ok &= within
            note = (
                f"{proc.mib / WEB_PROCESS_LIMIT_MIB:.2f} x {WEB_PROCESS_LIMIT_MIB:.0f} MiB  {verdict(within)}"
            )
        print(f"  {proc.role:<32} {proc.pid:>7} {proc.mib:>8.1f}  {note}")
    web = sum(p.mib for p in procs if p.role.startswith("web"))
    cluster_mib = sum(p.mib for p in procs if not p.role.startswith("web"))
    total = web + cluster_mib
    within = total <= TOTAL_LIMIT_MIB
    ok &= within
    cluster_count = sum(1 for p in procs if not p.role.startswith("web"))
    print(f"  {'web server, all processes':<32} {'':>7} {web:>8.1f}")
    print(f"  {f'task cluster, {cluster_count} processes':<32} {'':>7} {cluster_mib:>8.1f}")
    print(
        f"  {'total':<32} {'':>7} {total:>8.1f}  {total / TOTAL_LIMIT_MIB:.2f} x {TOTAL_LIMIT_MIB:.0f} MiB"
        f"  {verdict(within)}"
    )
    return ok


def varied_body(number: int, size: int, day: dt.date) -> bytes:
    """``size`` fills of one day, as a bot's spool sends what it holds: any count from 1 to 500."""
    clock = dt.datetime.combine(day, dt.time(10), tzinfo=MARKET_TZ).astimezone(dt.UTC)
    trades = [
        {
            "external_id": f"vary-{number:04d}-{i:03d}",
            "symbol": SYMBOLS[i % len(SYMBOLS)],
            "side": "BUY",
            "quantity": 1 + i % 50,
            "price": 100.25,
            "executed_at": (clock + dt.timedelta(milliseconds=i)).isoformat(timespec="milliseconds"),
        }
        for i in range(size)
    ]
    return json.dumps(trades, separators=(",", ":")).encode()


def varied_batches() -> bool:
    """One web process (its default threads) fed ``VARIED_BATCHES`` batches of 1 to 500 trades from
    four clients: its PSS before and after, against the limit for a web process."""
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**site_env(tmp), "WEB_PROCESSES": "1"}
        env.pop("WEB_CONCURRENCY", None)
        key = new_site_with_bot(env)
        server = Server(env, free_port(), tmp / "web.log")
        try:
            server.wait_ready()
            (web,) = [pid for pid in group_members(server.proc.pid) if pid != server.proc.pid]
            before = pss_kib(web) or 0
            rng = random.Random(500)
            day = trading_days(1)[0]
            bodies = [varied_body(n, rng.randint(1, 500), day) for n in range(VARIED_BATCHES)]
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                statuses = set(
                    pool.map(lambda b: request(server.port, "POST", "/api/v1/trades/", key, b), bodies)
                )
            took = time.monotonic() - started
            if statuses != {201}:
                raise RuntimeError(f"varied batches: statuses {sorted(statuses)}")
            after = pss_kib(web) or 0
        finally:
            server.stop()
    within = after / 1024 <= WEB_PROCESS_LIMIT_MIB
    print(f"\nbatches of every size (WEB_PROCESSES=1): {VARIED_BATCHES} of 1 to 500 trades in {took:.1f} s")
    print(
        f"  web process PSS {before / 1024:.1f} MiB at start, {after / 1024:.1f} MiB after"
        f" ({after / max(before, 1):.2f}x);  {after / 1024 / WEB_PROCESS_LIMIT_MIB:.2f} x"
        f" {WEB_PROCESS_LIMIT_MIB:.0f} MiB  {verdict(within)}"
    )
    return within


def trade_cpu_lines() -> list[str]:
    """``bench/trade_cpu.py``'s ``measure()`` lines, when that module exists."""
    if importlib.util.find_spec("trade_cpu") is None:
        return []
    import trade_cpu  # type: ignore[import-not-found]

    measure = getattr(trade_cpu, "measure", None)
    return list(measure()) if callable(measure) else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cpu", action="store_true", help="skip bench/trade_cpu.py's measurements")
    args = parser.parse_args(argv)
    print(f"footprint: code {code_version()}; {machine_line()}")
    print(
        f"limits: {TOTAL_LIMIT_MIB:.0f} MiB PSS over every process, {WEB_PROCESS_LIMIT_MIB:.0f} MiB per web"
        " process; SQLite and the ORM broker, the cluster's default workers"
    )
    try:
        default_ok = run(2, "default deployment (WEB_PROCESSES=2, the default on 2 cores)")
        single_ok = run(1, "WEB_PROCESSES=1")
        varied_ok = varied_batches()
    except RuntimeError as exc:
        print(f"footprint: {exc}", file=sys.stderr)
        return 1
    print(
        f"\nwithin the limits: default {verdict(default_ok)}, WEB_PROCESSES=1 {verdict(single_ok)},"
        f" batches of every size {verdict(varied_ok)}"
    )
    if not args.no_cpu:
        for line in trade_cpu_lines():
            print(line)
    return 0


if __name__ == "__main__":
    run_as_script(main)
