"""Every core of one machine: ``WEB_PROCESSES`` web processes on one listening socket.

The web server as users run it (``python -m monitorsite.serve``), its web processes
found as the children of its main process, and what each of them does seen from
outside: the connections it holds (``/proc/PID/fd``), the lines it writes to the
file log (each line names its process) and ships to Loki, and the running-site lock.

On SQLite in both runs of the suite: the lock looked at here is SQLite's flock file; the
PostgreSQL site's advisory lock has its tests in tests/test_backup_postgres.py, and the
process handling does not depend on the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import make_trade
from tests.harness import (
    ROOT,
    VENV_BIN,
    Site,
    alive,
    child_pids,
    free_port,
    site_env,
    site_lock_taken,
    start_web,
    stop,
    wait_for,
    wait_until_gone,
)
from tests.loopback_loki import Entry, LoopbackLoki

pytestmark = pytest.mark.server

CLIENT_TIMEOUT = 2  # WEB_CLIENT_TIMEOUT of these sites: stalled clients are dropped within seconds


def wait_for_web_processes(main: int, count: int, *, other_than: tuple[int, ...] = ()) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = child_pids(main)
        if len(pids) == count and not set(pids) & set(other_than):
            return pids
        time.sleep(0.05)
    raise AssertionError(f"not {count} web processes under {main}: {child_pids(main)}")


def sockets_held(pid: int) -> int:
    """Open sockets of a process: the listening one, Loki's, and every connection it accepted."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return held


def health_lines(site: Site) -> list[str]:
    log = site.tmp / "logs" / "monitorsite.log"
    return [line for line in log.read_text().splitlines() if " monitorsite.health " in line]


def pid_of(line: str) -> int:
    # "2026-01-15 10:31:00,123 WARNING monitorsite.health 4242 health: ..."
    return int(line.split(" ", 5)[4])


def age_the_start(site: Site) -> None:
    """Health says "starting" in the first minute; later, a missing task cluster is a warning that
    each web process logs once, on the first health request it answers."""
    long_ago = time.time() - 120
    os.utime(site.tmp / "site-started", (long_ago, long_ago))


def age(pid: int) -> float:
    """Seconds since the process started."""
    started_ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def two_process_server(
    tmp_path: Path, migrated_sqlite_template: Path, *, client_timeout: int = CLIENT_TIMEOUT, **env: str
) -> Iterator[Site]:
    shutil.copy(migrated_sqlite_template, tmp_path / "trades.db")
    port = free_port()
    site = Site(
        url=f"http://127.0.0.1:{port}", env=site_env(tmp_path, sqlite=True, **env), tmp=tmp_path, processes=[]
    )
    start_web(site, port, processes=2, WEB_CLIENT_TIMEOUT=str(client_timeout))
    try:
        wait_for(f"{site.url}/api/v1/health/")
        wait_for_web_processes(site.processes[0].pid, 2)
        yield site
    finally:
        for process in site.processes:
            stop(process)


@pytest.fixture
def two_process_site(tmp_path: Path, migrated_sqlite_template: Path) -> Iterator[Site]:
    """The web server with two web processes and a 2 s client timeout."""
    with two_process_server(tmp_path, migrated_sqlite_template) as site:
        yield site


def test_both_web_processes_answer_and_each_ships_its_lines_to_loki(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    loki = LoopbackLoki()
    with two_process_server(tmp_path, migrated_sqlite_template, LOKI_URL=loki.url) as site:
        try:
            ship_from_each_process(site, loki)
        finally:
            loki.stop()


def shared_dirty_mib(pid: int) -> float:
    """Pages the process wrote before it was forked or since, still shared with another process."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Shared_Dirty:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no Shared_Dirty in /proc/{pid}/smaps_rollup")


def test_the_web_processes_share_the_site_their_main_process_loaded(two_process_site: Site) -> None:
    """The main process loads the site (apps, admin, URLs, views) before it forks: each web process
    starts with those pages shared. Loaded after the fork, each held its own copy: 6 MiB shared."""
    main = two_process_site.processes[0].pid
    requests.get(f"{two_process_site.url}/api/v1/health/", timeout=10).raise_for_status()
    for pid in child_pids(main):
        assert shared_dirty_mib(pid) > 20, f"web process {pid} shares {shared_dirty_mib(pid):.1f} MiB"


def ship_from_each_process(site: Site, loki: LoopbackLoki) -> None:
    pids = child_pids(site.processes[0].pid)
    age_the_start(site)
    # Fresh connections, so the kernel hands them to whichever process accepts first.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and {pid_of(line) for line in health_lines(site)} != set(pids):
        requests.get(f"{site.url}/api/v1/health/", timeout=10)
    lines = health_lines(site)
    assert {pid_of(line) for line in lines} == set(pids), (pids, lines)

    def shipped() -> list[Entry]:
        with loki.received:
            return [entry for entry in loki.entries if entry.labels.get("logger") == "monitorsite.health"]

    # Every process ships what it logs: Loki gets each process's line, as the file log has it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(shipped()) < len(lines):
        time.sleep(0.1)
    # Each line with its level: a busy machine may add an "ok again" line (info) to the warnings.
    in_file = sorted((line.split(" ", 5)[2].lower(), line.split(" ", 5)[5]) for line in lines)
    assert sorted((entry.labels["level"], entry.line) for entry in shipped()) == in_file
    assert "warning" in {level for level, _ in in_file}


def holders(pids: list[int], port: int, clients: list[socket.socket]) -> dict[int, int]:
    """Which web process holds the server side of each of ``clients`` (its local port -> pid).

    Found exactly, not counted: the kernel's table of TCP sockets (``/proc/net/tcp``) gives
    the inode of the accepted socket whose peer is each client, and ``/proc/PID/fd`` who
    holds it. A connection still waiting in the listening socket's queue has no inode yet.
    """
    wanted = {sock.getsockname()[1] for sock in clients}
    peer_of: dict[int, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], int(fields[9])
        if inode and int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) in wanted:
            peer_of[inode] = int(remote.split(":")[1], 16)
    held: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in peer_of:
                held[peer_of[int(link[8:-1])]] = pid
    return held


def test_stalled_clients_on_the_shared_socket_starve_no_web_process(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    # 5 s, not 2: the web processes must hold every stalled client while health is asked 30
    # times, and accepting 40 connections may take a while on a busy machine.
    client_timeout = 5
    with two_process_server(tmp_path, migrated_sqlite_template, client_timeout=client_timeout) as site:
        stalled_clients_starve_no_web_process(site, client_timeout)


def stalled_clients_starve_no_web_process(site: Site, client_timeout: int) -> None:
    pids = child_pids(site.processes[0].pid)
    key = site.create_bot("alpha")
    stalled = []
    for n in range(40):
        sock = socket.create_connection(("127.0.0.1", site.port), timeout=10)
        if n % 2:
            sock.sendall(b"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Waiting: ")
        else:
            body = json.dumps(make_trade(n)).encode()
            sock.sendall(
                b"POST /api/v1/trades/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n".encode()
                + f"Content-Length: {len(body) + 100}\r\n\r\n".encode()
                + body
            )
        stalled.append(sock)
    opened = time.monotonic()
    # The web processes take every stalled client off the shared socket (how the kernel spreads
    # them is its business: one process may take all 40) ...
    deadline = opened + 30
    held = holders(pids, site.port, stalled)
    while len(held) < len(stalled) and time.monotonic() < deadline:
        time.sleep(0.05)
        held = holders(pids, site.port, stalled)
    assert len(held) == len(stalled), (pids, held)
    # ... and no process is stuck: each answers while holding them (its I/O thread waits on
    # them, no worker does).
    latencies = []
    for _ in range(30):
        started = time.monotonic()
        response = requests.get(f"{site.url}/api/v1/health/", timeout=30)
        latencies.append(time.monotonic() - started)
        assert response.status_code in (200, 503)
    # A process stuck behind the stalled clients would answer only once they time out (5 s):
    # 1 s at the 95th percentile tells the two apart with room for a loaded machine.
    assert statistics.quantiles(latencies, n=20)[-1] < 1.0, sorted(latencies)
    posted = requests.post(
        f"{site.url}/api/v1/trades/",
        json=make_trade(999),
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert posted.status_code == 201, posted.text
    # Each process drops its stalled clients after the client timeout, not before.
    still = holders(pids, site.port, stalled)
    assert still, "every stalled client was dropped before its timeout"
    deadline = time.monotonic() + 30
    while still and time.monotonic() < deadline:
        time.sleep(0.2)
        still = holders(pids, site.port, stalled)
    assert still == {}, still
    assert time.monotonic() - opened >= client_timeout - 0.5
    for sock in stalled:
        sock.close()


def restarts(site: Site) -> list[str]:
    """When the main process said it would start another web process, for each one killed."""
    pattern = r"web process \d+ was killed by SIGKILL after [\d.]+ s; starting another (.*)"
    return re.findall(pattern, site.log("web.log"))


def test_a_killed_web_process_is_started_again_and_the_site_keeps_answering(two_process_site: Site) -> None:
    site = two_process_site
    main = site.processes[0].pid
    first = child_pids(main)
    # One that served for a while is replaced at once ...
    time.sleep(max(0.0, 10.5 - age(first[0])))
    os.kill(first[0], signal.SIGKILL)
    assert requests.get(f"{site.url}/api/v1/health/", timeout=10).status_code in (200, 503)
    second = wait_for_web_processes(main, 2, other_than=(first[0],))
    assert restarts(site) == ["now"]
    # ... one that dies straight after its start waits 1 s, then 2 s: no spinning.
    replacement = (set(second) - set(first)).pop()
    os.kill(replacement, signal.SIGKILL)
    third = wait_for_web_processes(main, 2, other_than=(first[0], replacement))
    again = (set(third) - set(second)).pop()
    os.kill(again, signal.SIGKILL)
    wait_for_web_processes(main, 2, other_than=(first[0], replacement, again))
    assert restarts(site) == ["now", "in 1 s", "in 2 s"]
    # The untouched process answered throughout; the new ones answer too.
    for _ in range(20):
        assert requests.get(f"{site.url}/api/v1/health/", timeout=10).status_code in (200, 503)
    # The last replacement, left to start, says whom it replaces (on the console, in the file log, to Loki).
    deadline = time.monotonic() + 30
    while f"started in place of {again}, which was killed by SIGKILL" not in site.log("web.log"):
        assert time.monotonic() < deadline, site.log("web.log")
        time.sleep(0.1)
    assert site.processes[0].poll() is None


def test_by_default_one_web_process_per_core_and_sigterm_stops_them_all(
    tmp_path: Path, migrated_sqlite_template: Path
) -> None:
    shutil.copy(migrated_sqlite_template, tmp_path / "trades.db")
    port = free_port()
    site = Site(
        url=f"http://127.0.0.1:{port}", env=site_env(tmp_path, sqlite=True), tmp=tmp_path, processes=[]
    )
    site.env["BIND"] = f"127.0.0.1:{port}"
    site.env.pop("WEB_PROCESSES", None)
    web = site.start(str(VENV_BIN / "python"), "-m", "monitorsite.serve", log="web.log")
    try:
        wait_for(f"{site.url}/api/v1/health/")
        cores = len(os.sched_getaffinity(0))
        pids = wait_for_web_processes(web.pid, cores)
        assert f"with {cores} web process" in site.log("web.log")
        database = tmp_path / "trades.db"
        assert site_lock_taken(database)
        started = time.monotonic()
        web.send_signal(signal.SIGTERM)
        assert web.wait(15) == 0  # not killed: it stopped its web processes and then itself
        assert time.monotonic() - started < 10
        assert not any(map(alive, pids))
        assert not site_lock_taken(database)
        assert "killing" not in site.log("web.log")
        assert "web server stopped" in site.log("web.log")
    finally:
        stop(web)


def test_web_processes_outliving_a_killed_main_process_keep_the_lock_then_stop(
    two_process_site: Site,
) -> None:
    site = two_process_site
    main = site.processes[0]
    pids = child_pids(main.pid)
    database = site.tmp / "trades.db"
    # Held still, so that they cannot notice before the lock is looked at.
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    os.kill(main.pid, signal.SIGKILL)
    main.wait(10)
    # Still there, they could still write: the lock they were forked with stays taken.
    assert site_lock_taken(database)
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    wait_until_gone(pids, what="web processes without their main process")
    assert not site_lock_taken(database)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "WEB_PROCESSES must be at least 1, got 0"),
        ("abc", "WEB_PROCESSES must be a whole number, got 'abc'"),
        ("65", "WEB_PROCESSES must be at most 64, got 65"),
    ],
)
def test_a_bad_web_processes_stops_start_up_with_one_line(tmp_path: Path, value: str, message: str) -> None:
    env = site_env(tmp_path, BIND=f"127.0.0.1:{free_port()}", WEB_PROCESSES=value)
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "monitorsite.serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"Configuration error: {message}"]
    assert not (tmp_path / "trades.db.site-lock").exists()  # refused before anything was taken
