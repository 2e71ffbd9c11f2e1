"""A loopback stand-in for a Slack incoming webhook, as documented (api.slack.com/messaging/webhooks).

- ``POST /services/<team>/<bot>/<secret>`` with JSON ``text``: 200 ``ok`` (plain text).
- Errors are plain text too: a wrong secret 403 ``invalid_token``; an unknown
  path 404 ``no_service``; a body that is not JSON 400 ``invalid_payload``;
  no text 400 ``no_text``.
- On demand: each error of ``ERRORS`` with its documented status (410
  ``channel_is_archived``, 404 ``no_service``, 400 ``invalid_payload`` …), any
  status with any body (``answer``), 429 ``rate_limited`` with a ``Retry-After``
  header (whole seconds), a 5xx, a hang.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.loopback_http import Answer, LoopbackServer, Request

TEAM, BOT = "T0123ABCD", "B0456EFGH"
SECRET = "xSlAcKsEcReT0123456789ab"
ERRORS = {
    "channel_is_archived": 410,
    "no_service": 404,
    "invalid_payload": 400,
    "action_prohibited": 403,
    "invalid_token": 403,
    "channel_not_found": 404,
    "no_team": 400,
}


def text(status: int, body: str, **headers: str) -> Answer:
    return Answer(status, body.encode(), "text/html", headers or None)


class SlackServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"{self.base}/services/{TEAM}/{BOT}/{SECRET}"

    def planned(self, action: str, value: Any, request: Request) -> Answer:
        if action == "429":
            return text(429, "rate_limited", **{"Retry-After": str(value)})
        if action == "error":
            return text(ERRORS[value], value)
        if action == "answer":
            status, body = value
            return text(status, body)
        return text(value, "internal_error")

    def answer(self, request: Request) -> Answer:
        match = re.fullmatch(r"/services/([^/]+)/([^/]+)/([^/]+)", request.path)
        if not match or match.group(1, 2) != (TEAM, BOT):
            return text(404, "no_service")
        if match.group(3) != SECRET:
            return text(403, "invalid_token")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return text(400, "invalid_payload")
        if not isinstance(payload, dict) or not payload.get("text"):
            return text(400, "no_text")
        with self._lock:
            self.messages.append(payload)
        return text(200, "ok")
