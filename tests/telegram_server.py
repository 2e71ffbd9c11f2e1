"""A loopback stand-in for Telegram's Bot API ``sendMessage``, as documented.

- ``POST /bot<token>/sendMessage`` with JSON ``chat_id`` and ``text``:
  ``{"ok": true, "result": {message}}``.
- A well-formed but wrong token: 401 ``Unauthorized``; a malformed one: 404 ``Not Found``.
- An unknown chat: 400 ``Bad Request: chat not found``.
- Text empty: 400 ``Bad Request: message text is empty``; over 4096 UTF-16
  units: 400 ``Bad Request: message is too long``.
- A ``parse_mode`` is refused here: the site sends plain text, so markup in an
  alert can never break a message.
- On demand: 429 ``{"parameters": {"retry_after": N}}`` (whole seconds, no
  ``Retry-After`` header, so the client must read the body), a 429 with the wait in its
  ``Retry-After`` header alone (``429-header``), 403 ``Forbidden: bot was blocked by the
  user``, a supergroup migration, a 5xx, a hang, a 502 that echoes the request's path (``echo``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.loopback_http import Answer, LoopbackServer, Request

TOKEN = "123456789:AAH-sEcReT-kEy_abcdefghijklmnopqrstu"
CHAT_ID = "-1001234567890"


def failure(status: int, description: str, **parameters: Any) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(status, json.dumps(body).encode())


class TelegramServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.received_at: list[float] = []  # time.monotonic() of each accepted message

    @property
    def api_url(self) -> str:
        return self.base

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]

    def planned(self, action: str, value: Any, request: Request) -> Answer:
        if action == "429":
            return failure(429, f"Too Many Requests: retry after {value}", retry_after=value)
        if action == "429-header":
            answer = failure(429, "Too Many Requests")
            answer.headers = {"Retry-After": str(value)}
            return answer
        if action == "echo":  # a careless proxy's error page: the request line, token included
            return failure(502, f"Bad Gateway: POST {request.path} failed")
        if action == "migrate":
            return failure(
                400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=value
            )
        descriptions = {401: "Unauthorized", 403: "Forbidden: bot was blocked by the user"}
        return failure(value, descriptions.get(value, "Internal Server Error"))

    def answer(self, request: Request) -> Answer:
        match = re.fullmatch(r"/bot([^/]+)/sendMessage", request.path)
        if not match or not re.fullmatch(r"\d+:[\w-]+", match.group(1)):
            return failure(404, "Not Found")
        if match.group(1) != TOKEN:
            return failure(401, "Unauthorized")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return failure(400, "Bad Request: invalid JSON")
        if str(payload.get("chat_id")) != CHAT_ID:
            return failure(400, "Bad Request: chat not found")
        if "parse_mode" in payload:
            return failure(400, "Bad Request: can't parse entities")
        text = payload.get("text") or ""
        if not text:
            return failure(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return failure(400, "Bad Request: message is too long")
        with self._lock:
            self.messages.append(payload)
            self.received_at.append(request.at)
            number = len(self.messages)
        result = {"message_id": number, "chat": {"id": int(CHAT_ID), "type": "supergroup"}, "text": text}
        return Answer(200, json.dumps({"ok": True, "result": result}).encode())
