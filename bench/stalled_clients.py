"""Health latency while 50 clients stall mid-request, against the same server without them.

Run as ``.venv/bin/python bench/stalled_clients.py`` (about a minute). It starts the
site's web server (``python -m monitorsite.serve``, as scripts/serve.sh does) over a
throwaway database, then measures ``GET /api/v1/health/`` from one client:

1. baseline: 100 requests, nothing else connected;
2. stalled: 100 requests while 50 connections hang (25 with headers that never end,
   25 with a body shorter than its Content-Length), opened just before;
3. how long the server takes to drop those 50 (``WEB_CLIENT_TIMEOUT``, default 10 s).

Each figure is printed with its ratio to the baseline of the same run. Exit status 0
unless the run breaks. Standard library only; the server and site set-up are
bench/common.py's.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

STALLED = 50
REQUESTS = 100
DROP_WAIT_S = 120.0


def health_latencies(port: int, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        connection = http.client.HTTPConnection(common.HOST, port, timeout=60)
        started = time.perf_counter()
        connection.request("GET", common.HEALTH)
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
        connection.close()
    return latencies


def open_stalled(port: int, key: str) -> list[socket.socket]:
    sockets = []
    for n in range(STALLED):
        sock = socket.create_connection((common.HOST, port), timeout=10)
        if n % 2:
            sock.sendall(b"GET /api/v1/health/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Waiting: ")
        else:
            sock.sendall(
                b"POST /api/v1/trades/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n".encode()
                + b'{"external_id": "stalled"'
            )
        sockets.append(sock)
    return sockets


def seconds_until_dropped(sockets: list[socket.socket], opened: float) -> float | None:
    """When the server had closed all of ``sockets``, counted from ``opened``; None if it did not."""
    deadline = opened + DROP_WAIT_S
    for sock in sockets:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                return None
            except OSError:
                break
    return time.monotonic() - opened


def describe(name: str, values: list[float], baseline: list[float] | None) -> str:
    p50 = statistics.median(values) * 1000
    p95 = common.percentile(values, 95) * 1000
    line = f"   {name:<22} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {max(values) * 1000:7.1f} ms"
    if baseline:
        line += (
            f"   x baseline: p50 {p50 / (statistics.median(baseline) * 1000):.2f},"
            f" p95 {p95 / (common.percentile(baseline, 95) * 1000):.2f}"
        )
    return line


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-stalled-"))
    server = None
    sockets: list[socket.socket] = []
    try:
        env = common.site_env(tmp)
        key = common.new_site_with_bot(env)
        server = common.Server(env, common.free_port(), tmp / "web.log")
        server.wait_ready()
        timeout = os.environ.get("WEB_CLIENT_TIMEOUT", "").strip() or "10 (default)"
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"Stalled clients benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {os.cpu_count()} CPUs, load average {load}")
        print(
            f"site: waitress (monitorsite.serve) with {server.threads()} threads,"
            f" WEB_CLIENT_TIMEOUT {timeout}; code {common.code_version()}"
        )
        health_latencies(server.port, 10)  # warm up
        baseline = health_latencies(server.port, REQUESTS)
        sockets = open_stalled(server.port, key)
        opened = time.monotonic()
        stalled = health_latencies(server.port, REQUESTS)
        print(f"GET /api/v1/health/, one client, {REQUESTS} requests each:")
        print(describe("baseline", baseline, None))
        print(describe(f"{STALLED} clients stalled", stalled, baseline))
        dropped = seconds_until_dropped(sockets, opened)
        if dropped is None:
            print(f"   the stalled connections were NOT all dropped within {DROP_WAIT_S:.0f} s")
        else:
            print(f"   all {STALLED} stalled connections dropped by the server after {dropped:.1f} s")
        return 0
    except Exception as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        for sock in sockets:
            sock.close()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    common.run_as_script(main)
