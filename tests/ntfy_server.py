"""A loopback stand-in for an ntfy server's publish endpoint, as documented (docs.ntfy.sh/publish).

- ``POST /<topic>``: the body is the message; ``Title``/``X-Title``,
  ``Priority``/``X-Priority`` (1-5 or min, low, default, high, max, urgent),
  ``Tags``/``X-Tags`` (comma separated) in headers, RFC 2047 encoded-words
  (``=?UTF-8?B?…?=``) decoded as ntfy does since 2.4.0.
- With ``token`` set, the topic needs ``Authorization: Bearer <token>``:
  missing or wrong is 403 ``forbidden`` (code 40301).
- A body over 4,096 bytes becomes an attachment on a real server; here it is
  flagged, so a test can assert it never happens.
- An invalid priority: 400 (code 40007). On demand: 429 ``limit reached``
  (code 42901; ``Retry-After`` only when a value is given), a 5xx, a hang.
- Answers JSON: ``{"id", "time", "event": "message", "topic", ...}``.
"""

from __future__ import annotations

import json
import time
from email.header import decode_header, make_header
from typing import Any

from tests.loopback_http import Answer, LoopbackServer, Request

TOPIC = "trading-alerts-Xq7Lp2Vb9sKd4mZt"
TOKEN = "tk_abcdefghijklmnopqrstuvwxyz012"
PRIORITIES = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "min": 1, "low": 2, "default": 3}
PRIORITIES |= {"high": 4, "max": 5, "urgent": 5}


def error(status: int, code: int, text: str, **headers: str) -> Answer:
    body = json.dumps({"code": code, "http": status, "error": text}).encode()
    return Answer(status, body, headers=headers or None)


def decoded(value: str | None) -> str:
    return str(make_header(decode_header(value))) if value else ""


class NtfyServer(LoopbackServer):
    def __init__(self, token: str | None = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.messages: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"{self.base}/{TOPIC}"

    def planned(self, action: str, value: Any, request: Request) -> Answer:
        if action == "429":
            headers = {"Retry-After": f"{value:g}"} if value is not None else {}
            return error(429, 42901, "limit reached: too many requests, please be nice", **headers)
        return error(value, value * 100 + 1, "server error")

    def answer(self, request: Request) -> Answer:
        headers = {k.lower(): v for k, v in request.headers.items()}
        topic = request.path.strip("/").split("?")[0]
        if not topic or "/" in topic:
            return error(404, 40401, "page not found")
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return error(403, 40301, "forbidden")
        priority = headers.get("x-priority") or headers.get("priority") or "3"
        if priority.lower() not in PRIORITIES:
            return error(400, 40007, "invalid request: priority invalid")
        tags = decoded(headers.get("x-tags") or headers.get("tags"))
        message = {
            "id": f"m{len(self.messages) + 1}",
            "time": int(time.time()),
            "event": "message",
            "topic": topic,
            "title": decoded(headers.get("x-title") or headers.get("title")),
            "message": request.body.decode("utf-8"),
            "priority": PRIORITIES[priority.lower()],
            "tags": [t for t in tags.split(",") if t],
            "attachment": len(request.body) > 4096,
        }
        with self._lock:
            self.messages.append(message)
        return Answer(200, json.dumps(message).encode())
