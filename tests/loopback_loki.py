"""A loopback stand-in for Grafana Loki's push API, for the tests and the benchmark.

It accepts ``POST /loki/api/v1/push`` with the v1 JSON body and answers as Loki
does: 204 when stored; 400 when the body is not JSON, a stream has no labels or
a label name outside ``[a-zA-Z_][a-zA-Z0-9_]*``, a label value is not a string,
an entry's timestamp is not a string of nanoseconds, or a line is longer than
``max_line_size`` (256 KB, Grafana Cloud's limit); 401 when it wants basic
auth and gets other credentials. Out-of-order entries are accepted (Loki's
default since 2.4). Modes: ``ok``, ``hang`` (the request is read and never
answered until ``release()``), ``unavailable`` (503) and ``reject`` (400).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness import POLL_SECONDS

PUSH_PATH = "/loki/api/v1/push"
MAX_LINE_SIZE = 256 * 1024
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass
class Entry:
    labels: dict[str, str]
    timestamp: str
    line: str
    arrived: float  # time.time() when the push was accepted


@dataclass
class LoopbackLoki:
    """A running server on 127.0.0.1 (a free port); ``url`` is its base URL, like LOKI_URL."""

    credentials: tuple[str, str] | None = None
    mode: str = "ok"
    entries: list[Entry] = field(default_factory=list)
    pushes: int = 0
    hanging: int = 0
    auth_headers: list[str | None] = field(default_factory=list)
    received: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._release = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self._thread.start()

    def set_mode(self, mode: str) -> None:
        if mode != "hang":
            self._release.set()
        else:
            self._release.clear()
        self.mode = mode

    def release(self) -> None:
        """Let hanging requests go (they then fail with 503, as a Loki coming back from a stall might)."""
        self._release.set()

    def wait_for(self, count: int, timeout: float = 30) -> list[Entry]:
        """Wait until at least ``count`` entries have arrived; return them all."""
        with self.received:
            self.received.wait_for(lambda: len(self.entries) >= count, timeout)
            return list(self.entries)

    def lines(self) -> list[str]:
        with self.received:
            return [entry.line for entry in self.entries]

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    # --- what Loki checks ---------------------------------------------------------

    def accept(self, body: bytes) -> tuple[int, str]:
        try:
            push = json.loads(body)
        except ValueError as exc:
            return 400, f"error parsing push request: {exc}"
        streams = push.get("streams") if isinstance(push, dict) else None
        if not isinstance(streams, list):
            return 400, "error parsing push request: streams must be a list"
        accepted: list[Entry] = []
        now = time.time()
        for stream in streams:
            labels = stream.get("stream")
            if not isinstance(labels, dict) or not labels:
                return 400, "error at least one label pair is required per stream"
            for name, value in labels.items():
                if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                    return 400, f"error parsing labels: invalid label name {name!r}"
                if not isinstance(value, str):
                    return 400, f"error parsing labels: value of {name} is not a string"
            for value in stream.get("values") or []:
                if not isinstance(value, list) or len(value) < 2:
                    return 400, "error parsing push request: an entry is [timestamp, line]"
                timestamp, line = value[0], value[1]
                if not isinstance(timestamp, str) or not timestamp.isdigit():
                    return 400, "error parsing push request: timestamp must be a string of nanoseconds"
                if not isinstance(line, str):
                    return 400, "error parsing push request: line must be a string"
                if len(line.encode()) > MAX_LINE_SIZE:
                    return 400, f"max entry size '{MAX_LINE_SIZE}' bytes exceeded for stream {labels}"
                accepted.append(Entry(dict(labels), timestamp, line, now))
        with self.received:
            self.pushes += 1
            self.entries.extend(accepted)
            self.received.notify_all()
        return 204, ""


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a hanging request: expected here, not worth a traceback


def _handler_for(loki: LoopbackLoki) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != PUSH_PATH:
                return self._answer(404, "404 page not found")
            auth = self.headers.get("Authorization")
            loki.auth_headers.append(auth)
            if loki.credentials is not None:
                expected = "Basic " + base64.b64encode(":".join(loki.credentials).encode()).decode()
                if auth != expected:
                    return self._answer(401, "authentication required")
            if loki.mode == "hang":
                loki.hanging += 1
                loki._release.wait()
                return self._answer(503, "stalled")
            if loki.mode == "unavailable":
                return self._answer(503, "Ingester is shutting down")
            if loki.mode == "reject":
                return self._answer(400, "entry for stream has timestamp too old")
            status, message = loki.accept(body)
            self._answer(status, message)

        def _answer(self, status: int, message: str) -> None:
            payload = (message + "\n").encode() if message else b""
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

    return Handler
