"""The shared part of the loopback stand-ins for alert services: a real HTTP server on 127.0.0.1.

Each service's module (``telegram_server``, ``ntfy_server``, ``slack_server``,
``webhook_receiver``) answers as its service documents; this part records
what arrived and plays answers queued with ``then`` (a status, a 429, a hang,
a dropped connection), each for any request or aimed at one method of the service.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness import POLL_SECONDS


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


@dataclass
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


class LoopbackServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.statuses: list[int] = []
        self._plan: deque[tuple[str, Any, str | None]] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._release = threading.Event()

    def start(self) -> LoopbackServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._serve(self)

            def do_POST(self) -> None:
                server._serve(self)

            def do_PUT(self) -> None:
                server._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        return f"http://{self.host}"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, as the site's error words name it."""
        assert self._server
        return f"127.0.0.1:{self._server.server_address[1]}"

    def then(
        self, action: str, value: Any = None, times: int = 1, method: str | None = None
    ) -> LoopbackServer:
        """Queue answers for the next requests: ``status`` (a code), ``429`` (seconds), ``hang`` (seconds),
        ``drop`` (the connection closed with no answer: a network failure).

        With ``method``, only a request for that method (``method_of``) takes them; the others
        take the first answer queued without one.
        """
        for _ in range(times):
            self._plan.append((action, value, method))
        return self

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests, as they arrived."""
        return [b.at - a.at for a, b in zip(self.requests, self.requests[1:], strict=False)]

    # --- what a service module implements ---
    def method_of(self, request: Request) -> str | None:
        """The service's method a request calls, for answers aimed with ``then(..., method=)``."""
        return None

    def planned(self, action: str, value: Any, request: Request) -> Answer:
        raise NotImplementedError

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            handler.command,
            handler.path,
            dict(handler.headers.items()),
            handler.rfile.read(length),
            time.monotonic(),
        )
        method = self.method_of(request)
        with self._lock:
            self.requests.append(request)
            action = next((a for a in self._plan if a[2] is None or a[2] == method), None)
            if action is not None:
                self._plan.remove(action)
        if action is not None and action[0] == "drop":
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if action is not None and action[0] == "hang":
            self._release.wait(action[1])
            answer = Answer(200, b"{}")
        elif action is not None:
            answer = self.planned(action[0], action[1], request)
        else:
            answer = self.answer(request)
        with self._lock:
            self.statuses.append(answer.status)
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", answer.content_type)
            for name, value in (answer.headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up (a timeout test)
