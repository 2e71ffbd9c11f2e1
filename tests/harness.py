"""Real processes on loopback for the tests: a free port, a site's environment,
the web server and the task cluster started as users run them, and stopped cleanly.

Fixtures that use these live in ``conftest.py``; benchmarks have their own in ``bench/common.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MARKET_ZONE = ZoneInfo("America/New_York")  # MARKET_TIMEZONE of every site under test
# How often a loopback stand-in's ``serve_forever`` looks for ``shutdown()``: socketserver's default
# (0.5 s) made stopping each stand-in cost half a second, once per test that used one.
POLL_SECONDS = 0.02


def with_default_sigint() -> None:
    """``preexec_fn`` for a process a test stops with SIGINT, as Ctrl-C would.

    A shell started in the background (CI runners, ``cmd &``) runs with SIGINT
    ignored, and everything it starts inherits that: bash then cannot even trap it,
    so ``scripts/serve.sh`` would never see the test's Ctrl-C.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_serve_script(env: dict[str, str], log: IO[bytes], *args: str) -> subprocess.Popen[bytes]:
    """``scripts/serve.sh`` as a terminal runs it: in a session of its own (a test's Ctrl-C is a
    SIGINT to its process group), SIGINT at its default, its output in ``log``."""
    return subprocess.Popen(
        ["bash", "scripts/serve.sh", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=with_default_sigint,
    )


# The exchange sessions every site and test process of the suite reads (trades/sessions.py): kept
# between runs, in a folder named for the calendar library's version, each file checked when read.
TEST_SESSIONS_DIR = Path(tempfile.gettempdir()) / "monitor-test-sessions"

MAX_WORKERS = 8  # the blocks of ports and Redis databases below are made for this many


def worker_index() -> int:
    """This pytest-xdist worker's number (``gw3`` is 3); 0 when the suite runs in one process."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0
    if index >= MAX_WORKERS:
        raise RuntimeError(f"at most {MAX_WORKERS} pytest-xdist workers: each has its own ports and Redis")
    return index


# Each worker draws its ports from a block of its own, below the kernel's ephemeral range
# (32768-60999 on Linux) from which clients' outgoing connections take theirs: between this
# call and the server's bind, no other test of the run, and no connection, can take the port.
# A second run on the same machine has workers of the same numbers: a lock file per port,
# held until this process ends, keeps its tests off the ports this one has handed out (a
# random start within the block alone let two runs' servers meet on one port).
FIRST_TEST_PORT = 20000
PORTS_PER_WORKER = 1500
PORT_LOCKS = Path(tempfile.gettempdir()) / "monitor-test-ports"
_port_counter = itertools.count(random.randrange(PORTS_PER_WORKER))
_ports_held: dict[int, int] = {}  # port -> the descriptor of its lock file, held by this process


def _hold_port(port: int) -> bool:
    """Whether this process holds ``port``'s lock file (taken now when no other process has it)."""
    if port in _ports_held:
        return True
    PORT_LOCKS.mkdir(exist_ok=True)
    fd = os.open(PORT_LOCKS / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _ports_held[port] = fd
    return True


def free_port() -> int:
    """A loopback port free now, that no other test of this run, nor of another run, is given."""
    base = FIRST_TEST_PORT + worker_index() * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        port = base + next(_port_counter) % PORTS_PER_WORKER
        if not _hold_port(port):
            continue  # another run's
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (a server of this process still runs on it), or in TIME_WAIT
            return port
    raise RuntimeError(f"no free port in {base}-{base + PORTS_PER_WORKER - 1}")


def site_env(tmp: Path, *, sqlite: bool = False, **extra: str) -> dict[str, str]:
    """Environment for a site process with its own database, logs and secret key.

    The database is the run's (SQLite, or PostgreSQL with Redis on the PostgreSQL run);
    ``sqlite=True`` keeps a test of what only SQLite does on SQLite in both runs.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DJANGO_", "DATABASE_", "DISCORD_", "LOKI_", "TELEGRAM_", "NTFY_", "SLACK_", "ALERT_", "EMAIL_")
        )
    }
    env.update(
        DATABASE_PATH=str(tmp / "trades.db"),
        LOG_DIR=str(tmp / "logs"),
        # The scheduled sync of a task cluster under test uploads here, not to the
        # checkout's data/backups (a developer's real latest backup, shared by every run).
        LOCAL_STORAGE_PATH=str(tmp / "backups"),
        DJANGO_SECRET_KEY="test-secret-key-for-subprocesses",
        # Exchange sessions are computed once (a subprocess, a second or two) and kept: every site
        # under test reads the run's, as the sites of one machine would share one data folder.
        SESSIONS_DIR=str(TEST_SESSIONS_DIR),
        # A developer's own .env must not leak into the site under test.
        ENV_FILE=str(tmp / "no.env"),
        PYTHONUNBUFFERED="1",
    )
    env.update({"DATABASE_URL": "", "REDIS_URL": ""} if sqlite else backend_env(tmp))
    env.update(extra)
    return env


def backend_env(tmp: Path) -> dict[str, str]:
    """On the PostgreSQL run of the suite (``DATABASE_URL`` set by scripts/test.sh): the site of
    ``tmp`` gets a database of its own on the same server, made empty on first use, and a
    Redis database of its own, emptied then. The same ``tmp`` always gets the same pair.

    Empty on the SQLite run: the site's ``DATABASE_PATH`` is its own file.
    """
    url = os.environ.get("DATABASE_URL")
    if not url:
        return {}
    name = site_database_name(tmp)
    created = _create_database(url, name)
    env = {"DATABASE_URL": urlunsplit(urlsplit(url)._replace(path=f"/{name}"))}
    site_redis = _site_redis(tmp, empty=created)
    if site_redis:
        env["REDIS_URL"] = site_redis
    return env


# Redis databases (scripts/_services.sh starts redis-server with REDIS_DATABASES of them): the
# first MAX_WORKERS are the test processes' own (``tests/settings.py``), then each worker has a
# block of SITE_REDIS_PER_WORKER for the sites it starts, taken in turn and emptied for each new site.
REDIS_DATABASES = 512
SITE_REDIS_PER_WORKER = (REDIS_DATABASES - MAX_WORKERS) // MAX_WORKERS
_site_redis_numbers: dict[Path, int] = {}
_site_redis_counter = itertools.count()


def own_redis_database() -> int:
    """The Redis database of this test process (its worker's number)."""
    return worker_index() % MAX_WORKERS


def _site_redis(tmp: Path, *, empty: bool) -> str | None:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        return None
    import redis

    key = Path(tmp).resolve()
    if key not in _site_redis_numbers:
        block = MAX_WORKERS + own_redis_database() * SITE_REDIS_PER_WORKER
        _site_redis_numbers[key] = block + next(_site_redis_counter) % SITE_REDIS_PER_WORKER
    site_redis = urlunsplit(urlsplit(redis_url)._replace(path=f"/{_site_redis_numbers[key]}"))
    if empty:
        with redis.Redis.from_url(site_redis) as client:
            client.flushdb()
    return site_redis


def site_database_name(tmp: Path) -> str:
    return "site_" + hashlib.sha1(str(Path(tmp).resolve()).encode()).hexdigest()[:20]


def _create_database(url: str, name: str, template: str | None = None) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and template is None:
            return False
        if exists:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return True


def site_sql(env: dict[str, str], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the database of the site with ``env`` (its SQLite file, or its
    PostgreSQL database), committed; its rows (none for a statement without any).

    Written with SQLite's ``?`` placeholders, which become psycopg's ``%s`` on PostgreSQL;
    PostgreSQL's values come back as SQLite gives them (``as_sqlite_gives``), so that one
    assertion holds on both.
    """
    url = env.get("DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            cursor = connection.execute(sql.replace("%", "%%").replace("?", "%s"), params)
            rows = cursor.fetchall() if cursor.description else []
            return [tuple(as_sqlite_gives(value) for value in row) for row in rows]
    import sqlite3

    with contextlib.closing(sqlite3.connect(env["DATABASE_PATH"], timeout=30)) as connection, connection:
        return connection.execute(sql, params).fetchall()


def site_columns(env: dict[str, str], table: str) -> list[str]:
    """The column names of ``table`` in the site's database."""
    if env.get("DATABASE_URL"):
        columns = "information_schema.columns"
        query = f"SELECT column_name FROM {columns} WHERE table_name = ? ORDER BY ordinal_position"
    else:
        query = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
    return [name for (name,) in site_sql(env, query, table)]


def as_sqlite_gives(value: Any) -> Any:
    """A value read from PostgreSQL as Django's SQLite backend stores it and sqlite3 reads it back:
    times as naive UTC text, dates as ISO text, JSON as text, decimals as numbers, booleans as 0/1.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return str(value.astimezone(dt.UTC).replace(tzinfo=None))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def site_queue_length(env: dict[str, str]) -> int:
    """Tasks waiting in the site's queue: its Redis list, or django-q2's ORM table."""
    if env.get("REDIS_URL"):
        import redis

        with redis.Redis.from_url(env["REDIS_URL"]) as client:
            return int(client.llen("django_q:monitorsite:q"))
    return int(site_sql(env, "SELECT count(*) FROM django_q_ormq")[0][0])


def drop_site_database(tmp: Path) -> None:
    """PostgreSQL run: drop the database of the site of ``tmp``, its connections cut."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{site_database_name(tmp)}" WITH (FORCE)')


def copy_site_database(template: Path, target: Path) -> None:
    """Give the site whose database file is ``target`` a copy of the migrated ``template`` site's.

    SQLite: a file copy. PostgreSQL: ``CREATE DATABASE … TEMPLATE`` of the template site's database.
    """
    url = os.environ.get("DATABASE_URL")
    if not url:
        shutil.copy(template, target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _create_database(url, site_database_name(target.parent), template=site_database_name(template.parent))
    _site_redis(target.parent, empty=True)


def on_postgres() -> bool:
    """Whether this run of the suite is the PostgreSQL one."""
    return bool(os.environ.get("DATABASE_URL"))


def manage(
    env: dict[str, str], *args: str, check: bool = True, **run_options: Any
) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` in a subprocess; ``run_options`` go to ``subprocess.run`` (e.g. ``preexec_fn``).

    With ``check``, a non-zero exit fails with the command's stderr (its last 4,000 characters), not
    only its arguments."""
    done = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **run_options,
    )
    if check and done.returncode:
        raise AssertionError(f"manage.py {args[0]} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done


@dataclass
class Site:
    """A site started as users run it: its own database, the web server on a loopback port."""

    url: str
    env: dict[str, str]
    tmp: Path
    processes: list[subprocess.Popen[bytes]]

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return manage(self.env, *args, check=check)

    def sql(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """``site_sql`` on this site's database."""
        return site_sql(self.env, statement, *params)

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

    def queue_task(self, func: str) -> None:
        """Queue the task ``func`` (a dotted path, e.g. ``alerts.tasks.deliver``) for the site's cluster
        now, as ``async_task`` does in the site.

        django-q2's scheduler looks for due schedules every 30 s, so a test of what a periodic task
        does queues it instead of waiting for its turn; tests/test_backup_cluster.py proves that
        the schedule itself runs.
        """
        self.manage("shell", "-c", f"from django_q.tasks import async_task; async_task({func!r})")

    def start_cluster(self) -> subprocess.Popen[bytes]:
        return self.start(str(VENV_BIN / "python"), "manage.py", "qcluster", log="qcluster.log")

    def log(self, name: str) -> str:
        return (self.tmp / name).read_text(errors="replace")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def admin_session(self) -> requests.Session:
        """A browser-like session logged in to the admin of this site (an admin user is made once)."""
        password = "admin-password-for-tests"
        manage(dict(self.env, ADMIN_USERNAME="admin", ADMIN_PASSWORD=password), "ensure_admin")
        session = requests.Session()
        login = f"{self.url}/admin/login/"
        session.get(login, timeout=30).raise_for_status()
        response = session.post(
            login,
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
                "next": "/admin/",
            },
            headers={"Referer": login},
            timeout=30,
        )
        assert response.ok and "sessionid" in session.cookies, response.text[:500]
        return session


def made_once(tmp_path_factory: Any, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name``, filled by ``make`` once for the whole run: the first worker to ask makes
    it while the others wait on its lock, then every worker shares it (a migrated template costs
    several ``manage`` starts, once rather than once per worker).
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


def site_lock_taken(database: Path) -> bool:
    """Whether a running site holds the flock beside a SQLite ``database`` (``backups.site_lock``)."""
    with open(f"{database}.site-lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is ``parent`` (a web server's web processes, a cluster's workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(parent)], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in out.split())


def alive(pid: int) -> bool:
    """Running (or stopped), not ended: a process reaped or left a zombie is not.

    Every thread counts: a process's first thread can be a zombie while another still runs
    (and holds the process's files and locks) until the whole process has ended.
    """
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for thread in threads:
        try:
            stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            return True
    return False


def wait_until_gone(pids: list[int], *, timeout: float = 30, what: str = "processes") -> None:
    """Until none of ``pids`` runs; an ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(map(alive, pids)):
        assert time.monotonic() < deadline, f"{what} still running after {timeout:g} s"
        time.sleep(0.1)


def wait_for(url: str, *, timeout: float = 90, accept: tuple[int, ...] = (200, 503)) -> requests.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code in accept:
                return response
        # A server still starting on a busy machine may accept and answer late.
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout}s ({last})")


def clear_of_market_midnight(minutes: float) -> None:
    """Return once the next ``minutes`` cannot cross midnight in the market's time zone.

    Waits (up to ``minutes``) when called just before midnight: a test that runs a
    trading day's rules in real time (daily loss, the halt until the next trading
    day) would otherwise see its day end half way through.
    """
    now = dt.datetime.now(MARKET_ZONE)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), MARKET_ZONE)
    if (midnight - now).total_seconds() < minutes * 60:
        time.sleep((midnight - now).total_seconds() + 1)


def stop(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Stop a process started in a group of its own as ``scripts/serve.sh`` does: SIGTERM to
    its main process, which stops its own workers; SIGKILL to what is left of the group
    after ``timeout``.

    SIGTERM to the whole group at once deadlocks django-q2's qcluster: its sentinel dies
    holding the lock of the stop event that the main process then waits on forever, so
    every test with a task cluster used to wait out the timeout before the SIGKILL.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(process.pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group is not ours to signal: it is there
        return True
    return True


def start_web(
    site: Site, port: int, *, threads: int = 4, processes: int = 1, **env: str
) -> subprocess.Popen[bytes]:
    """The web server as ``scripts/serve.sh`` runs it (``python -m monitorsite.serve``), on ``port``.

    One web process (under its main process) unless asked: a second costs every
    server test another Django start on a 2-core machine; tests/test_web_processes.py
    runs several. ``env`` adds server settings such as ``WEB_CLIENT_TIMEOUT``.
    """
    site.env.update(
        BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(threads), WEB_PROCESSES=str(processes), **env
    )
    return site.start(str(VENV_BIN / "python"), "-m", "monitorsite.serve", log="web.log")
