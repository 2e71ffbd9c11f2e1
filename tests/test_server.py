"""The site as users run it: the web server and the task cluster as real processes on loopback."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import make_trade
from tests.harness import (
    ROOT,
    VENV_BIN,
    Site,
    child_pids,
    copy_site_database,
    drop_site_database,
    free_port,
    on_postgres,
    site_database_name,
    site_env,
    start_serve_script,
    start_web,
    stop,
    wait_for,
)

pytestmark = pytest.mark.server
T = TypeVar("T")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count(site: Site, sql: str) -> int:
    return site.sql(sql)[0][0]


def test_site_under_its_web_server_takes_and_lists_trades(site: Site) -> None:
    key = site.create_bot("alpha")
    response = requests.post(
        f"{site.url}/api/v1/trades/",
        json=[make_trade(1), make_trade(2, side="SELL", pnl=4.5)],
        headers=auth(key),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    listed = requests.get(f"{site.url}/api/v1/trades/", headers=auth(key), timeout=10).json()
    assert {t["external_id"] for t in listed["results"]} == {"ord-1", "ord-2"}
    summary = requests.get(
        f"{site.url}/api/v1/summary/daily/?date=2026-01-15", headers=auth(key), timeout=10
    ).json()
    assert summary["total_trades"] == 2 and summary["total_pnl"] == 4.5
    assert requests.get(f"{site.url}/api/v1/trades/", timeout=10).status_code == 401
    assert count(site, "SELECT COUNT(*) FROM trades_trade") == 2


def test_admin_and_its_static_files_are_served_without_debug(site: Site) -> None:
    login = requests.get(f"{site.url}/admin/login/", timeout=10)
    assert login.status_code == 200
    css = requests.get(f"{site.url}/static/admin/css/base.css", timeout=10)
    assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
    docs = requests.get(f"{site.url}/api/docs/", timeout=10)
    bundle = requests.get(
        f"{site.url}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", timeout=10
    )
    assert docs.status_code == 200 and bundle.status_code == 200


def test_concurrent_posts_of_one_batch_store_each_trade_once(site: Site) -> None:
    key = site.create_bot("alpha")
    batch = [make_trade(n) for n in range(200)]
    start = threading.Barrier(8)

    def post(_: int) -> requests.Response:
        start.wait()
        return requests.post(f"{site.url}/api/v1/trades/", json=batch, headers=auth(key), timeout=30)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(8)))
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 201}, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert sum(b["created"] for b in bodies) == 200
    assert all(b["ids"] == bodies[0]["ids"] for b in bodies)
    assert count(site, "SELECT COUNT(*) FROM trades_trade") == 200


def test_concurrent_posts_of_one_trade_store_one_row(site: Site) -> None:
    key = site.create_bot("alpha")
    start = threading.Barrier(12)

    def post(_: int) -> int:
        start.wait()
        return requests.post(
            f"{site.url}/api/v1/trades/", json=make_trade(1), headers=auth(key), timeout=30
        ).status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = Counter(pool.map(post, range(12)))
    assert statuses == {201: 1, 200: 11}
    assert count(site, "SELECT COUNT(*) FROM trades_trade") == 1


def test_web_server_and_task_cluster_writing_at_once_never_lock(site: Site) -> None:
    """Four web server threads, a two-worker task cluster and an enqueuing process all write at once."""
    key = site.create_bot("alpha")
    bot_id = count(site, "SELECT id FROM trades_bot WHERE name = 'alpha'")
    site.start_cluster()
    tasks = 300
    enqueue = (
        "from django_q.tasks import async_task\n"
        f"for n in range({tasks}):\n"
        f"    async_task('trades.tasks.record_event', {bot_id}, 'custom', 'info', f'task {{n}}')\n"
    )
    enqueuer = site.start(
        str(ROOT / ".venv/bin/python"), "manage.py", "shell", "--no-imports", "-c", enqueue, log="enqueue.log"
    )
    errors: list[str] = []
    sent = Counter[str]()
    deadline = time.monotonic() + 12

    def client(worker: int) -> None:
        session = requests.Session()
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if n % 10 == 0:
                response = session.post(
                    f"{site.url}/api/v1/heartbeat/", json={"status": "ok"}, headers=auth(key), timeout=60
                )
            elif n % 7 == 0:
                batch = [make_trade(f"{worker}-{n}-{i}") for i in range(100)]
                response = session.post(
                    f"{site.url}/api/v1/trades/", json=batch, headers=auth(key), timeout=60
                )
                sent["trades"] += 100
            else:
                response = session.post(
                    f"{site.url}/api/v1/trades/",
                    json=make_trade(f"{worker}-{n}"),
                    headers=auth(key),
                    timeout=60,
                )
                sent["trades"] += 1
            if response.status_code >= 300:
                errors.append(f"{response.status_code} {response.text[:200]}")

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(client, range(6)))
    assert enqueuer.wait(120) == 0, site.log("enqueue.log")

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and count(site, "SELECT COUNT(*) FROM trades_botevent") < tasks:
        time.sleep(0.5)

    assert errors == []
    assert count(site, "SELECT COUNT(*) FROM trades_trade") == sent["trades"]
    assert count(site, "SELECT COUNT(*) FROM trades_botevent") == tasks
    assert count(site, "SELECT COUNT(*) FROM django_q_task WHERE success = FALSE") == 0
    for log in ("web.log", "qcluster.log", "enqueue.log"):
        assert "database is locked" not in site.log(log), log
        assert "Traceback" not in site.log(log), site.log(log)[-3000:]


def site_log_tail(site: Site) -> str:
    """The end of the site's own log file (the web server's and the cluster's lines)."""
    logs = sorted((site.tmp / "logs").glob("*.log"))
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}" for path in logs)


def assert_gone(groups: list[int]) -> None:
    """No process of these groups (the cluster's workers included) is left."""
    deadline = time.monotonic() + 30  # what is left exits at once; a loaded machine may take its time
    left = list(groups)
    while left and time.monotonic() < deadline:
        for group in list(left):
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                left.remove(group)
        time.sleep(0.1)
    assert left == [], subprocess.run(
        ["ps", "-o", "pid,pgid,cmd", "-g", ",".join(map(str, groups))], capture_output=True, text=True
    ).stdout


def test_serve_script_runs_site_and_cluster_and_ctrl_c_stops_both(site: Site) -> None:
    """scripts/serve.sh is what start.sh ends with; Ctrl-C sends SIGINT to its process group."""
    # No schedule comes due while it runs: a cluster stops once its workers have finished what they
    # had taken, and a backlog of backups taken just before the Ctrl-C once outlasted serve.sh's 30 s
    # on a loaded machine. What the schedules do is tested where they are.
    site.sql("UPDATE django_q_schedule SET next_run = '2099-01-01 00:00:00'")
    port = free_port()
    env = dict(site.env, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2")
    log = open(site.tmp / "serve.log", "wb")
    serve = start_serve_script(env, log)
    try:
        # The cluster's scheduler first looks for due tasks about 30 s after it starts.
        health = wait_for(f"http://127.0.0.1:{port}/api/v1/health/", timeout=180, accept=(200,))
        assert health.json()["components"]["task_cluster"]["ok"] is True
        groups = site_groups(serve.pid)
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(45) == 0
        assert_gone(groups)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=2)
    finally:
        stop(serve, timeout=45)  # serve.sh gives the site 30 s to stop
        log.close()
    output = (site.tmp / "serve.log").read_text()
    assert "site and task cluster stopped" in output
    # Both stopped on their own, nothing needed SIGKILL (the site's log says what each was doing).
    assert "killing" not in output, output + site_log_tail(site)


def group_members(group: int) -> list[tuple[int, list[str]]]:
    """The processes of a process group, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != group:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        found.append((int(entry.name), [arg.decode(errors="replace") for arg in argv]))
    return found


def test_ctrl_c_while_the_demo_is_being_prepared_stops_the_site(site: Site) -> None:
    """serve.sh --demo prepares the demo bot (a Python run in the foreground, seconds under load)
    after the site has started: a Ctrl-C then once killed bash outright (exit -2), the site left to
    be stopped by whoever noticed. Its trap is set before anything starts."""
    port = free_port()
    env = dict(site.env, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1")
    env.pop("MONITOR_URL", None)
    env.pop("MONITOR_KEY", None)
    log = open(site.tmp / "serve-demo.log", "wb")
    serve = start_serve_script(env, log, "--demo")
    try:
        # The preparation's Python reads its program from standard input ("python -").
        wait_until(
            lambda: [pid for pid, argv in group_members(serve.pid) if argv[1:] == ["-"]],
            what="the demo's preparation",
        )
        web = [pid for pid in child_pids(serve.pid) if os.getpgid(pid) == pid]
        assert len(web) == 1, web
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(45) == 0
        assert_gone(web)
    finally:
        stop(serve, timeout=45)
        log.close()
    output = (site.tmp / "serve-demo.log").read_text()
    assert "site and task cluster stopped" in output, output
    assert "Traceback" not in output and "demo bot trading" not in output, output


# A cluster asked to stop at the given moment of its start, by a SIGTERM its main process sends
# itself there (the moment a supervisor's TERM once arrived by chance): "before" the sentinel
# exists, "during" the fork that makes it (django-q2 dropped both).
STOP_DURING_START = """
import multiprocessing.context, os, signal, sys
import django
django.setup()
import django_q.cluster
from django.core.management import call_command

when = sys.argv[1]
main = os.getpid()
if when == "before":
    make_context = django_q.cluster.get_mp_context
    def get_mp_context():
        if os.getpid() == main:
            os.kill(main, signal.SIGTERM)
        return make_context()
    django_q.cluster.get_mp_context = get_mp_context
else:
    fork = multiprocessing.context.ForkProcess._Popen
    def _Popen(process):
        popen = fork(process)  # the child never returns from this
        if os.getpid() == main:
            os.kill(main, signal.SIGTERM)  # handled here, before the process has its popen
        return popen
    multiprocessing.context.ForkProcess._Popen = staticmethod(_Popen)
call_command("qcluster")
print("cluster returned")
"""


@pytest.mark.parametrize("moment", ["before", "during"])
def test_a_cluster_told_to_stop_while_it_starts_stops(
    tmp_path: Path, migrated_template: Path, moment: str
) -> None:
    copy_site_database(migrated_template, tmp_path / "trades.db")
    env = dict(site_env(tmp_path), DJANGO_SETTINGS_MODULE="monitorsite.settings")
    cluster = subprocess.Popen(
        [str(ROOT / ".venv/bin/python"), "-c", STOP_DURING_START, moment],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # It starts its sentinel and workers, then stops them: seconds, not the minute
        # it would otherwise run (forever, until killed).
        output, _ = cluster.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop(cluster, timeout=5)
        raise AssertionError(f"the cluster told to stop {moment} its sentinel started kept running") from None
    text = output.decode(errors="replace")
    assert cluster.returncode == 0, text
    assert "cluster returned" in text and "Traceback" not in text, text
    assert_gone([cluster.pid])


def test_serve_script_stops_the_site_when_the_cluster_dies(site: Site) -> None:
    port = free_port()
    env = dict(site.env, BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1")
    serve = subprocess.Popen(
        ["bash", "scripts/serve.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v1/health/")
        groups = site_groups(serve.pid)
        cluster = groups[1]
        wait_until(lambda: len(child_pids(cluster)) == 1, what="the cluster's sentinel")
        os.kill(cluster, signal.SIGKILL)  # the cluster's main process; its sentinel and workers stay behind
        assert serve.wait(40) != 0
        assert_gone(groups)
    finally:
        stop(serve, timeout=45)  # serve.sh gives the site 30 s to stop


def wait_until(probe: Callable[[], T], *, what: str, timeout: float = 60) -> T:
    """``probe()``'s first true answer; an ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()):
        assert time.monotonic() < deadline, f"no {what} after {timeout:g} s"
        time.sleep(0.05)
    return answer


def site_groups(serve_sh: int) -> list[int]:
    """The process groups of the site scripts/serve.sh runs: the web server's (its main process, the
    web processes) and, forked from that main process, the task cluster's."""
    (main,) = wait_until(lambda: child_pids(serve_sh), what="the web server's main process")
    cluster = wait_until(
        lambda: [pid for pid in child_pids(main) if os.getpgid(pid) == pid], what="the task cluster"
    )
    assert len(cluster) == 1, cluster
    return [main, *cluster]


def test_a_task_cluster_whose_web_server_was_killed_stops(site: Site) -> None:
    """``monitorsite.serve --with-cluster`` killed outright (SIGKILL, the out-of-memory killer): the
    cluster it forked gets SIGTERM from the kernel and stops as on Ctrl-C, its workers with it."""
    port = free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "python"), "-m", "monitorsite.serve", "--with-cluster"],
        cwd=ROOT,
        env=dict(site.env, BIND=f"127.0.0.1:{port}", WEB_PROCESSES="1", WEB_CONCURRENCY="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v1/health/")
        (cluster,) = wait_until(
            lambda: [pid for pid in child_pids(server.pid) if os.getpgid(pid) == pid], what="the task cluster"
        )
        wait_until(lambda: len(child_pids(cluster)) == 1, what="the cluster's sentinel")
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        assert_gone([cluster, server.pid])
    finally:
        stop(server, timeout=45)


def test_a_post_waits_out_a_busy_database_instead_of_failing(site: Site) -> None:
    """Another process holding the write lock (a backup, the cluster, a migration) only delays the bot:
    SQLite's one writer, or on PostgreSQL a lock on the trades table that inserts wait for."""
    key = site.create_bot("alpha")
    if on_postgres():
        import psycopg

        holder: Any = psycopg.connect(site.env["DATABASE_URL"], autocommit=True)
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE trades_trade IN SHARE ROW EXCLUSIVE MODE")
    else:
        holder = sqlite3.connect(site.tmp / "trades.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE trades_bot SET description = 'busy'")
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        pending = pool.submit(
            requests.post, f"{site.url}/api/v1/trades/", json=make_trade(1), headers=auth(key), timeout=60
        )
        time.sleep(2)
        assert not pending.done()
        holder.execute("COMMIT")
        response = pending.result()
    holder.close()
    assert response.status_code == 201, response.text
    assert time.monotonic() - started >= 2
    assert count(site, "SELECT COUNT(*) FROM trades_trade") == 1


def test_health_is_503_without_a_traceback_when_the_database_is_unreadable(site: Site) -> None:
    if on_postgres():
        # The database gone from under the site (dropped, or a server that lost it).
        drop_site_database(site.tmp)
        server = urlsplit(site.env["DATABASE_URL"])
        name = f"PostgreSQL {site_database_name(site.tmp)} at {server.hostname}:{server.port}"
        error = "OperationalError"
    else:
        (site.tmp / "trades.db").write_bytes(b"this is not an SQLite database" * 200)
        for name in ("trades.db-wal", "trades.db-shm"):
            (site.tmp / name).unlink(missing_ok=True)
        name, error = "SQLite trades.db", "DatabaseError"
    if not on_postgres():
        # A fresh server, so no connection opened before the damage is reused. (On PostgreSQL the
        # drop cut every connection, and a server cannot start on a database that is not there:
        # it needs it for the running-site lock.)
        stop(site.processes.pop(0))
        start_web(site, int(site.url.rsplit(":", 1)[1]))
    wait_for(f"{site.url}/api/v1/health/", accept=(503,))
    response = requests.get(f"{site.url}/api/v1/health/", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["database"] == {
        "ok": False,
        "vital": True,
        "name": name,
        "error": error,
        "reason": f"{name} cannot be read",
    }
    assert body["components"]["task_cluster"]["ok"] is False
    assert "Traceback" not in response.text
