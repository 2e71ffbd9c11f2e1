"""A loopback stand-in for Discord's webhook endpoint, as documented.

- ``POST /api/webhooks/{id}/{token}``: 204, or 200 with the message object
  when ``?wait=true``; 404 "Unknown Webhook" for an unknown id, 401 "Invalid
  Webhook Token" for a wrong token.
- 400 "Invalid Form Body" (code 50035) for anything over the limits: content
  2000; 10 embeds; title 256, description 4096, 25 fields, field name 256,
  field value 1024, footer 2048, author name 256; 6000 over all embeds;
  empty field names or values; a message with neither content nor embeds.
  Lengths are counted as JavaScript does (UTF-16 code units).
- 429 with ``{"message", "retry_after" (float seconds), "global"}`` and a
  ``Retry-After`` header once more than ``burst`` requests arrive within
  ``burst_window`` seconds (a webhook's bucket), and on demand.
- On demand: a 5xx, or a hang longer than the client's timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.harness import POLL_SECONDS

WEBHOOK_ID = "112233445566778899"
WEBHOOK_TOKEN = "tOkEn-SeCrEt-abcdefghijklmnopqrstuvwxyz0123456789"


def u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def limit_errors(payload: Any) -> list[str]:
    """Every documented limit the message breaks (empty when Discord would accept it)."""
    if not isinstance(payload, dict):
        return ["body must be a JSON object"]
    errors = []
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if not content and not embeds:
        errors.append("cannot send an empty message")
    if u16(content) > 2000:
        errors.append("content: must be 2000 or fewer in length")
    if len(embeds) > 10:
        errors.append("embeds: must be 10 or fewer in length")
    total = 0
    for i, embed in enumerate(embeds):
        title = embed.get("title", "")
        description = embed.get("description", "")
        footer = (embed.get("footer") or {}).get("text", "")
        author = (embed.get("author") or {}).get("name", "")
        fields = embed.get("fields", [])
        for name, value, limit in (
            ("title", title, 256),
            ("description", description, 4096),
            ("footer.text", footer, 2048),
            ("author.name", author, 256),
        ):
            if u16(value) > limit:
                errors.append(f"embeds.{i}.{name}: must be {limit} or fewer in length")
        if len(fields) > 25:
            errors.append(f"embeds.{i}.fields: must be 25 or fewer in length")
        for j, f in enumerate(fields):
            if not f.get("name") or u16(f["name"]) > 256:
                errors.append(f"embeds.{i}.fields.{j}.name: must be between 1 and 256 in length")
            if not f.get("value") or u16(f["value"]) > 1024:
                errors.append(f"embeds.{i}.fields.{j}.value: must be between 1 and 1024 in length")
        total += u16(title) + u16(description) + u16(footer) + u16(author)
        total += sum(u16(f.get("name", "")) + u16(f.get("value", "")) for f in fields)
    if total > 6000:
        errors.append("embeds: the total of all embeds must be 6000 or fewer characters")
    return errors


@dataclass
class Received:
    payload: dict[str, Any]
    at: float  # time.time() when accepted


@dataclass
class DiscordServer:
    burst: int = 30
    burst_window: float = 2.0
    retry_after: float = 0.3
    messages: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    held: int = 0  # requests a ``hang`` has taken hold of so far
    _plan: deque[tuple[str, Any]] = field(default_factory=deque)
    _recent: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    # --- set-up -------------------------------------------------------------
    def start(self) -> DiscordServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(POLL_SECONDS,), daemon=True).start()
        return self

    def stop_hanging(self) -> None:
        """Answer every request held by a ``hang`` now (its client may be long gone)."""
        self._release.set()

    def back_up(self) -> None:
        """Drop the answers still queued by ``then``: from the next request on, served normally."""
        with self._lock:
            self._plan.clear()

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

    @property
    def url(self) -> str:
        return f"{self.base}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    def then(self, action: str, value: Any = None, times: int = 1) -> DiscordServer:
        """Queue answers for the next requests: ``status`` (e.g. 500, 401), ``429`` or ``hang`` (s)."""
        for _ in range(times):
            self._plan.append((action, value))
        return self

    # --- what arrived -------------------------------------------------------------
    def embeds(self) -> list[dict[str, Any]]:
        return [embed for m in self.messages for embed in m.payload.get("embeds", [])]

    def titles(self) -> list[str]:
        return [e.get("title", "") for e in self.embeds()]

    def wait_until_held(self, count: int = 1, timeout: float = 30) -> None:
        """Wait until ``count`` requests are held by a ``hang`` (they reached the server)."""
        deadline = time.monotonic() + timeout
        while self.held < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} held request(s), got {self.held}")
            time.sleep(0.02)

    def wait_for_messages(self, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} message(s), got {len(self.messages)}")

    # --- the endpoint -------------------------------------------------------------
    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: Any = None, **headers: str) -> None:
        with self._lock:
            self.statuses.append(status)
        data = b"" if body is None else json.dumps(body).encode()
        try:
            handler.send_response(status)
            if body is not None:
                handler.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                handler.send_header(name.replace("_", "-"), value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test)

    def _rate_limited(self, handler: BaseHTTPRequestHandler, retry_after: float) -> None:
        self._answer(
            handler,
            429,
            {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
            Retry_After=f"{retry_after:g}",
            X_RateLimit_Remaining="0",
            X_RateLimit_Reset_After=f"{retry_after:g}",
        )

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        parts = urlsplit(handler.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) != 4 or segments[:2] != ["api", "webhooks"] or segments[2] != WEBHOOK_ID:
            return self._answer(handler, 404, {"message": "Unknown Webhook", "code": 10015})
        if segments[3] != WEBHOOK_TOKEN:
            return self._answer(handler, 401, {"message": "Invalid Webhook Token", "code": 50027})
        with self._lock:
            action = self._plan.popleft() if self._plan else None
        if action is not None:
            kind, value = action
            if kind == "hang":
                with self._lock:
                    self.held += 1
                self._release.wait(value)
                return self._answer(handler, 204)
            if kind == "429":
                return self._rate_limited(handler, value if value is not None else self.retry_after)
            if kind == "header429":  # Retry-After header only, no JSON body
                return self._answer(handler, 429, None, Retry_After=f"{value:g}")
            if kind == "status":
                messages = {401: "Invalid Webhook Token", 404: "Unknown Webhook"}
                return self._answer(
                    handler, value, {"message": messages.get(value, "Server error"), "code": 0}
                )
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > self.burst_window:
                self._recent.popleft()
            limited = len(self._recent) >= self.burst
            if not limited:
                self._recent.append(now)
        if limited:
            return self._rate_limited(handler, self.retry_after)
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._answer(handler, 400, {"message": "Cannot send an empty message", "code": 50006})
        errors = limit_errors(payload)
        if errors:
            return self._answer(
                handler, 400, {"message": "Invalid Form Body", "code": 50035, "errors": errors}
            )
        with self._lock:
            self.messages.append(Received(payload, time.time()))
            number = len(self.messages)
        if parse_qs(parts.query).get("wait") == ["true"]:
            return self._answer(handler, 200, {"id": str(10**17 + number), "webhook_id": WEBHOOK_ID})
        return self._answer(handler, 204)
