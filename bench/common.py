"""What the benchmarks share: the site started as users run it, client processes, the clock.

Only the standard library is used (plus reading the site's own settings for its
SQLite pragmas), so that client processes start fast and nothing here is shared
with the code under test. Every benchmark prints its figures as ratios against a
baseline measured in the same run: the machine is shared and absolute numbers drift.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import math
import multiprocessing as mp
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
HOST = "127.0.0.1"
MARKET_TZ_NAME = "America/New_York"
HEALTH = "/api/v1/health/"

# Bounds, so that a hung or very slow server cannot keep a benchmark running.
REQUEST_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 60.0
CLIENT_START_TIMEOUT_S = 60.0


# --------------------------------------------------------------------------- stats


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (need not be sorted); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --------------------------------------------------------------------------- clients


@dataclass
class ClientJob:
    """What one client process sends: ``bodies`` in order, or ``template % n`` for n from ``first``."""

    port: int
    method: str
    path: str
    headers: dict[str, str]
    ok_statuses: tuple[int, ...]
    max_requests: int
    seconds: float
    bodies: list[bytes] | None = None
    template: bytes | None = None
    first: int = 0


@dataclass
class ClientResult:
    started: float = math.nan
    ended: float = math.nan
    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


def _client_main(job: ClientJob, go: Any, queue: Any) -> None:
    """Body of a client process: get ready, wait for the common start, send, report."""
    result = ClientResult()
    try:
        if job.template is not None:
            # Encoded before the start signal, so client-side encoding stays out of the timing.
            bodies: Sequence[bytes | None] = [job.template % (job.first + i) for i in range(job.max_requests)]
        else:
            bodies = job.bodies if job.bodies is not None else [None] * job.max_requests
        conn = http.client.HTTPConnection(HOST, job.port, timeout=REQUEST_TIMEOUT_S)
        queue.put(("ready", os.getpid()))
        if not go.wait(CLIENT_START_TIMEOUT_S):
            queue.put(("result", result))
            return
        # time.monotonic is CLOCK_MONOTONIC on Linux, so the parent can compare it across processes.
        result.started = time.monotonic()
        stop_at = result.started + job.seconds
        for body in bodies[: job.max_requests]:
            if time.monotonic() >= stop_at:
                break
            t0 = time.perf_counter()
            try:
                conn.request(job.method, job.path, body=body, headers=job.headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                result.errors += 1
                if len(result.error_samples) < 3:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}")
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.statuses[response.status] += 1
            if response.status in job.ok_statuses:
                result.ok += 1
            else:
                result.errors += 1
                if len(result.error_samples) < 3:
                    result.error_samples.append(f"HTTP {response.status}: {data[:200]!r}")
        result.ended = time.monotonic()
        conn.close()
        queue.put(("result", result))
    except KeyboardInterrupt:
        pass  # the parent is shutting down and reports the interruption
    except Exception as exc:
        # Reported, so the parent fails at once instead of waiting out its timeout.
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


_LIVE_CLIENTS: list[Any] = []


def stop_clients() -> None:
    """End any client process still running (only ours, by handle)."""
    while _LIVE_CLIENTS:
        proc = _LIVE_CLIENTS.pop()
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


@dataclass
class RunResult:
    """The clients' results together; ``wall_s`` spans from the first start to the last end."""

    clients: list[ClientResult]

    @property
    def wall_s(self) -> float:
        return max(c.ended for c in self.clients) - min(c.started for c in self.clients)

    @property
    def ok(self) -> int:
        return sum(c.ok for c in self.clients)

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.clients)

    @property
    def latencies_ms(self) -> list[float]:
        return [x for c in self.clients for x in c.latencies_ms]

    @property
    def error_samples(self) -> list[str]:
        return [s for c in self.clients for s in c.error_samples][:3]

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else math.nan


def run_clients(jobs: list[ClientJob]) -> RunResult:
    """Run one process per job, started together; processes, so the client's GIL is never the limit."""
    spawn = mp.get_context("spawn")
    go = spawn.Event()
    queue = spawn.Queue()
    procs = [spawn.Process(target=_client_main, args=(job, go, queue), daemon=True) for job in jobs]
    for proc in procs:
        _LIVE_CLIENTS.append(proc)
        proc.start()
    try:
        for _ in procs:
            kind, payload = queue.get(timeout=CLIENT_START_TIMEOUT_S)
            if kind != "ready":
                raise RuntimeError(f"a client process failed: {payload}")
        go.set()
        budget = max(job.seconds for job in jobs) + REQUEST_TIMEOUT_S + 30
        deadline = time.monotonic() + budget
        results = []
        for _ in procs:
            kind, payload = queue.get(timeout=max(1.0, deadline - time.monotonic()))
            if kind != "result":
                raise RuntimeError(f"a client process failed: {payload}")
            results.append(payload)
        for proc in procs:
            proc.join(10)
    finally:
        stop_clients()
    if any(math.isnan(r.started) for r in results):
        raise RuntimeError("a client process never got the start signal")
    return RunResult(results)


def get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, float, bytes]:
    """One GET: status, milliseconds until the whole body was read, body."""
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, (time.perf_counter() - t0) * 1000, body


# --------------------------------------------------------------------------- site


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def site_env(tmp: Path) -> dict[str, str]:
    """Environment of the site's processes: everything in the temp dir, nothing sent elsewhere."""
    # SQLite and the ORM broker; a benchmark that wants PostgreSQL and Redis sets their URLs itself.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATABASE_PATH=str(tmp / "trades.db"),
        LOG_DIR=str(tmp / "logs"),
        LOCAL_STORAGE_PATH=str(tmp / "backups"),
        # Set, so settings never generate data/.secret_key in the project.
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        MARKET_TIMEZONE=MARKET_TZ_NAME,
        # No developer .env for the site (settings read ENV_FILE instead when set) ...
        ENV_FILE=str(tmp / "no.env"),
        # ... and, for code that reads .env regardless, empty wins (load_dotenv does not
        # override) and turns these off.
        DISCORD_WEBHOOK_URL="",
        LOKI_URL="",
        CLOUD_STORAGE_PROVIDER="local",
        DB_SYNC_ENABLED="false",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def code_version() -> str:
    """The site's git commit, so that figures can be matched to code (read-only git calls)."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # The benchmark's own files do not change what it measures.
            [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench", ":!docs"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} with uncommitted changes" if dirty else head


def manage(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [str(PYTHON), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def new_site_with_bot(env: dict[str, str]) -> str:
    """The site's database made as a new site's is (migrated), with the bot ``bench``; its write key."""
    manage(env, "migrate", "--noinput")
    return manage(env, "create_bot", "bench").strip().splitlines()[-1].strip()


def _die_with_parent() -> None:
    """Runs in the server's process before exec: a hard-killed benchmark cannot clean up, the kernel can."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Server:
    """The site's web server (``python -m monitorsite.serve``, as scripts/serve.sh runs it) for this run.

    In a process group of its own, so that everything it started stops with it.
    """

    def __init__(self, env: dict[str, str], port: int, log_path: Path, *, with_cluster: bool = False) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        # With the task cluster forked from its main process, as scripts/serve.sh runs the site.
        extra = ["--with-cluster"] if with_cluster else []
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "python"), "-m", "monitorsite.serve", *extra],
            cwd=ROOT,
            env={**env, "BIND": f"{HOST}:{port}"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def threads(self) -> str:
        """The server's worker threads: ``WEB_CONCURRENCY``, else monitorsite.serve's default."""
        return os.environ.get("WEB_CONCURRENCY", "").strip() or "4 (default)"

    def wait_ready(self) -> None:
        """Until ``GET /api/v1/health/`` answers with any status (503 without a task cluster)."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        for _ in range(int(SERVER_START_TIMEOUT_S / 0.1)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the web server exited with {self.proc.returncode}:\n{self.log_tail()}")
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            try:
                get(conn, HEALTH, {})
                return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise RuntimeError(
            f"the web server did not answer within {SERVER_START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)  # a task cluster forked from it gets 25 s
            except subprocess.TimeoutExpired:
                pass
        # The group's id is the server's pid; anything it left behind is killed with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()


def interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C and SIGTERM: say so at once (cleaning up can take seconds), then stop as Ctrl-C does,
    so the finally blocks stop what the benchmark started."""
    os.write(sys.stderr.fileno(), b"\ninterrupted; cleaning up\n")  # print() is not safe in a handler
    raise KeyboardInterrupt


def run_as_script(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's ``main`` and exit with its status; 130 when interrupted, once it has cleaned up."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


def machine_line() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} CPUs, load average {load}; Python {sys.version.split()[0]},"
        f" SQLite {sqlite3.sqlite_version}"
    )


def site_pragmas() -> list[str]:
    """The PRAGMAs every connection of the site runs (DATABASES' init_command), read from its settings."""
    code = "from monitorsite.settings import DATABASES as D; print(D['default']['OPTIONS']['init_command'])"
    env = {**os.environ, "ENV_FILE": os.devnull, "DJANGO_SECRET_KEY": "unused"}
    env.pop("DATABASE_URL", None)  # the SQLite settings, whatever the caller's shell says
    out = subprocess.run(
        [str(PYTHON), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [p.strip() for p in out.split(";") if p.strip()]


def connect(path: Path) -> sqlite3.Connection:
    """A connection set up as the site sets up its own (same PRAGMAs), in autocommit mode."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    for pragma in site_pragmas():
        conn.execute(pragma)
    return conn


def insert_sql(conn: sqlite3.Connection, table: str) -> tuple[str, list[str]]:
    """A plain INSERT of every column but ``id``, from the migrated schema; the SQL and its columns."""
    columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")') if row[1] != "id"]
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(columns))})', columns


def start_cluster(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The task cluster (``manage.py qcluster``) in a process group of its own, its output in ``log``."""
    return subprocess.Popen(
        [str(PYTHON), "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with its own group, as Ctrl-C stops it; killed after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
