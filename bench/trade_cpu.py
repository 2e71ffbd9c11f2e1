"""CPU and throughput of single-trade posts (``POST /api/v1/trades/``, one trade per request).

Run as ``.venv/bin/python bench/trade_cpu.py [--quick]`` from anywhere; ``bench/footprint.py``
calls ``measure()`` and prints its lines with its own. One run starts the site as users run it
(``python -m monitorsite.serve`` over a new, migrated SQLite database in a temp dir, with the
bot ``bench``) with ``WEB_PROCESSES=1``, and a bare waitress app beside it, and measures:

1. server CPU per trade: the web process's CPU time (user + system, from /proc) before and
   after N single-trade posts sent one after another by one client process, divided by N;
   baseline: a raw ``sqlite3`` INSERT and COMMIT of the same row (a copy of one the site
   stored, with a new external id) into a scratch database with the site's table, indexes
   and PRAGMAs, this process's CPU time per row;
2. single-trade posts a second from four client processes into the site; baseline: the same
   clients sending the same bodies to a bare waitress app (as many threads as the site's)
   that reads and parses the JSON body and answers 201, half the time before the site's run
   and half after. The site's p50 and p99, and the CPU per trade under that load.

Every figure is printed with its baseline and the ratio: the machine is shared and absolute
numbers drift from one run to the next. Exit status 0 unless the run broke (1; 130 when
interrupted).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    HOST,
    PYTHON,
    ROOT,
    SERVER_START_TIMEOUT_S,
    ClientJob,
    RunResult,
    Server,
    _die_with_parent,
    code_version,
    connect,
    free_port,
    insert_sql,
    machine_line,
    new_site_with_bot,
    percentile,
    run_as_script,
    run_clients,
    site_env,
    stop_clients,
)

TRADES = "/api/v1/trades/"
CLIENTS = 4
# The site's default worker threads (monitorsite.serve), unless WEB_CONCURRENCY says otherwise.
THREADS = int(os.environ.get("WEB_CONCURRENCY", "").strip() or 4)
# Clients stop at this many requests per second of run time, far above what 2 cores
# serve, so the time limit is what ends a run.
MAX_RATE_PER_CLIENT = 5000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Plan:
    """How much work each part does; ``QUICK`` is a smoke test, not a measurement."""

    warm_up: int  # posts before anything is measured (first requests load code and caches)
    cpu_posts: int  # sequential posts whose CPU is measured
    raw_rows: int  # raw inserts for the baseline
    seconds: float  # the site's throughput run; the bare app gets as long, split before and after


FULL = Plan(warm_up=300, cpu_posts=3000, raw_rows=3000, seconds=20.0)
QUICK = Plan(warm_up=50, cpu_posts=300, raw_rows=300, seconds=4.0)


# --------------------------------------------------------------------------- bodies


def trade_template(client: int, label: str) -> bytes:
    """A single trade's JSON body with ``%08d`` where its number goes (``ClientJob.template``)."""
    executed = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5, seconds=client)
    body = {
        "external_id": f"@{label}-{client}-@",
        "symbol": ("AAPL", "MSFT", "NVDA", "SPY")[client % 4],
        "side": "SELL" if client % 2 else "BUY",
        "quantity": 10 + client,
        "price": 187.25 + client,
        "strategy": "momentum",
        "pnl": 12.5 if client % 2 else None,
        "executed_at": executed.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "metadata": {},
    }
    text = json.dumps(body, separators=(",", ":")).replace("%", "%%")
    return text.replace(f"@{label}-{client}-@", f"{label}-{client}-%08d").encode()


def post_job(port: int, key: str, template: bytes, count: int, seconds: float) -> ClientJob:
    return ClientJob(
        port=port,
        method="POST",
        path=TRADES,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ok_statuses=(201,),
        max_requests=count,
        seconds=seconds,
        template=template,
    )


def load_jobs(port: int, key: str, label: str, seconds: float) -> list[ClientJob]:
    count = int(seconds * MAX_RATE_PER_CLIENT) + 100
    return [post_job(port, key, trade_template(c, label), count, seconds) for c in range(CLIENTS)]


# --------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def web_process(server: Server) -> int:
    """The one web process monitorsite.serve forked (``WEB_PROCESSES=1``)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = children(server.proc.pid)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise RuntimeError(f"expected one web process, found {len(found)}: is WEB_PROCESSES read?")
        time.sleep(0.1)
    raise RuntimeError("the web server forked no web process")


# A WSGI app that does what any JSON API must: read the body, parse it, answer.
BARE_APP = """
import json, sys
from waitress import serve

def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    trade = json.loads(environ["wsgi.input"].read(length))
    body = json.dumps({"created": 1, "duplicates": 0, "ids": [len(trade)]}).encode()
    start_response("201 Created", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

serve(app, listen=sys.argv[1], threads=int(sys.argv[2]), ident="bare", asyncore_use_poll=True,
      cleanup_interval=1, channel_timeout=10)
"""


class BareServer:
    """The baseline: ``BARE_APP`` under waitress, in a process group of its own."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(PYTHON), "-c", BARE_APP, f"{HOST}:{self.port}", str(THREADS)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # a hard-killed benchmark leaves no bare app behind
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bare waitress app exited with {self.proc.returncode}")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            try:
                conn.request("POST", "/", body=b"{}", headers={"Content-Type": "application/json"})
                conn.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                conn.close()
        raise RuntimeError("the bare waitress app did not answer")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()


# --------------------------------------------------------------------------- raw baseline


def raw_cost_per_row(site_db: Path, scratch_db: Path, rows: int) -> tuple[float, float]:
    """CPU and wall seconds of this process per raw INSERT + COMMIT of one row the site stored.

    The scratch database gets the site's trades_bot and trades_trade (table and indexes);
    each row is a copy of the site's newest stored trade with a new external id.
    """
    with contextlib.closing(sqlite3.connect(site_db, timeout=30)) as site:
        schema = site.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('trades_bot', 'trades_trade')"
            " AND sql IS NOT NULL ORDER BY type = 'index', tbl_name = 'trades_trade'"
        ).fetchall()
        bots = site.execute("SELECT * FROM trades_bot").fetchall()
        site.row_factory = sqlite3.Row
        stored = site.execute("SELECT * FROM trades_trade ORDER BY id DESC LIMIT 1").fetchone()
    if stored is None:
        raise RuntimeError("the site stored no trade to copy")
    with contextlib.closing(connect(scratch_db)) as raw:
        for (sql,) in schema:
            raw.execute(sql)
        raw.executemany(f"INSERT INTO trades_bot VALUES ({','.join('?' * len(bots[0]))})", bots)
        sql, columns = insert_sql(raw, "trades_trade")
        params = [
            tuple(f"raw-{n:08d}" if c == "external_id" else stored[c] for c in columns) for n in range(rows)
        ]
        for warm in params[:20]:  # the first statements prepare and grow the file
            raw.execute(sql, ("warm-" + str(warm[columns.index("external_id")]), *warm[1:]))
        t0, w0 = time.process_time(), time.perf_counter()
        for row in params:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute(sql, row)
            raw.execute("COMMIT")
        seconds, wall = time.process_time() - t0, time.perf_counter() - w0
        (count,) = raw.execute("SELECT count(*) FROM trades_trade WHERE external_id LIKE 'raw-%'").fetchone()
    if count != rows:
        raise RuntimeError(f"the raw baseline stored {count} of {rows} rows")
    return seconds / rows, wall / rows


def stored_count(site_db: Path, label: str) -> int:
    with contextlib.closing(sqlite3.connect(site_db, timeout=30)) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM trades_trade WHERE external_id >= ? AND external_id < ?",
            (f"{label}-", f"{label}."),  # '.' sorts right after '-'
        ).fetchone()
    return int(count)


# --------------------------------------------------------------------------- measure


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _errors(run: RunResult, what: str) -> list[str]:
    if not run.errors:
        return []
    return [f"   {what}: {run.errors} errors, e.g. {sample}" for sample in run.error_samples]


def measure(quick: bool = False) -> list[str]:
    """Run the benchmark (the site and the bare app started and stopped here); the lines to print."""
    plan = QUICK if quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="bench-trade-cpu-"))
    server: Server | None = None
    bare: BareServer | None = None
    lines: list[str] = []
    try:
        env = {**site_env(tmp), "WEB_PROCESSES": "1"}
        key = new_site_with_bot(env)
        site_db = Path(env["DATABASE_PATH"])
        server = Server(env, free_port(), tmp / "web.log")
        bare = BareServer(tmp / "bare.log")
        server.wait_ready()
        bare.wait_ready()
        pid = web_process(server)
        port = server.port

        # Warm up both servers with the clients' own bodies, then the sequential CPU run.
        warm = run_clients(
            [post_job(port, key, trade_template(c, "warm"), plan.warm_up, 120) for c in range(2)]
        )
        run_clients([post_job(bare.port, key, trade_template(0, "warm"), plan.warm_up, 120)])
        cpu_before = cpu_seconds(pid)
        seq = run_clients([post_job(port, key, trade_template(0, "seq"), plan.cpu_posts, 600)])
        site_cpu = (cpu_seconds(pid) - cpu_before) / max(seq.ok, 1)
        raw_cpu, raw_wall = raw_cost_per_row(site_db, tmp / "raw.db", plan.raw_rows)

        # Throughput: bare, site, bare; CPU of each server under the load too.
        bare_pid = bare.proc.pid
        half = plan.seconds / 2
        b0 = cpu_seconds(bare_pid)
        bare_before = run_clients(load_jobs(bare.port, key, "bare1", half))
        b1 = cpu_seconds(bare_pid)
        s0 = cpu_seconds(pid)
        load = run_clients(load_jobs(port, key, "load", plan.seconds))
        site_load_cpu = (cpu_seconds(pid) - s0) / max(load.ok, 1)
        b2 = cpu_seconds(bare_pid)
        bare_after = run_clients(load_jobs(bare.port, key, "bare2", half))
        b3 = cpu_seconds(bare_pid)
        bare_cpu = ((b1 - b0) + (b3 - b2)) / max(bare_before.ok + bare_after.ok, 1)

        stored = {name: stored_count(site_db, name) for name in ("seq", "load")}
        bare_rate = (bare_before.ok + bare_after.ok) / (bare_before.wall_s + bare_after.wall_s)
        bare_lat = bare_before.latencies_ms + bare_after.latencies_ms
        lat = load.latencies_ms

        lines.append(
            f"Single-trade POST {TRADES}: CPU and throughput, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
            f"{' (--quick: rough figures)' if quick else ''}"
        )
        lines.append(machine_line())
        lines.append(
            f"site: monitorsite.serve, WEB_PROCESSES=1, {THREADS} threads, SQLite; code {code_version()};"
            f" bare app: waitress, {THREADS} threads, json.loads of the body, 201"
        )
        lines.append(
            f"1. server CPU per trade, {seq.ok} posts one after another (one client), web process's"
            f" CPU from /proc ({warm.ok} posts warmed it up first)"
        )
        lines.append(
            f"   site {_ms(site_cpu)} per trade; raw sqlite3 INSERT + COMMIT of the same row"
            f" {_ms(raw_cpu)} CPU ({_ms(raw_wall)} wall; {plan.raw_rows} rows);"
            f" site/raw {site_cpu / raw_cpu:.1f}x"
        )
        lines.extend(_errors(seq, "site (sequential)"))
        lines.append(
            f"2. single-trade posts a second, {CLIENTS} client processes, {plan.seconds:g} s into the site;"
            f" the same clients and bodies into the bare app, {half:g} s before and {half:g} s after"
        )
        lines.append(
            f"   site {load.rate:,.0f}/s (p50 {percentile(lat, 50):.1f} ms,"
            f" p99 {percentile(lat, 99):.1f} ms);"
            f" bare {bare_rate:,.0f}/s (p50 {percentile(bare_lat, 50):.1f} ms,"
            f" p99 {percentile(bare_lat, 99):.1f} ms); site/bare {load.rate / bare_rate:.1%}"
        )
        lines.append(
            f"   CPU per request under that load: site {_ms(site_load_cpu)}, bare {_ms(bare_cpu)};"
            f" site/bare {site_load_cpu / bare_cpu:.1f}x"
        )
        lines.append(
            f"   stored: {stored['seq']} of {seq.ok} sequential, {stored['load']} of {load.ok} under load"
        )
        lines.extend(_errors(load, "site (load)"))
        lines.extend(_errors(bare_before, "bare (before)"))
        lines.extend(_errors(bare_after, "bare (after)"))
        if stored["seq"] != seq.ok or stored["load"] != load.ok:
            lines.append("   WARNING: the site answered 201 for trades it did not store")
        return lines
    except Exception:
        if server is not None:
            sys.stderr.write(f"web server log tail:\n{server.log_tail()}\n")
        raise
    finally:
        stop_clients()
        if server is not None:
            server.stop()
        if bare is not None:
            bare.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run; its figures are rough")
    args = parser.parse_args(argv)
    try:
        lines = measure(quick=args.quick)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_as_script(main)
