"""A receiver for the generic JSON webhook that verifies each body as docs/ALERTS.md tells receivers to.

It recomputes ``sha256=HMAC-SHA256(secret, "<X-Monitor-Timestamp>.<raw body>")``,
compares it in constant time with ``X-Monitor-Signature``, and refuses a
timestamp more than ``tolerance`` seconds away from its clock (a replay) and
an ``X-Monitor-Alert`` id it has already taken (a repeat): 401 for a bad
signature or a stale timestamp, 200 (and nothing stored) for a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from tests.loopback_http import Answer, LoopbackServer, Request

SECRET = "whsec-0123456789abcdefghijklmnop"


class WebhookReceiver(LoopbackServer):
    def __init__(self, secret: str = SECRET, tolerance: float = 300) -> None:
        super().__init__()
        self.secret = secret
        self.tolerance = tolerance
        self.payloads: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self._seen: set[str] = set()

    @property
    def url(self) -> str:
        return f"{self.base}/hooks/trading-monitor"

    def planned(self, action: str, value: Any, request: Request) -> Answer:
        if action == "429":
            return Answer(429, b"{}", headers={"Retry-After": f"{value:g}"})
        return Answer(value, b'{"error": "planned"}')

    def verify(self, request: Request) -> str:
        """Why the request is refused, or "" when it is genuine."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        timestamp = headers.get("x-monitor-timestamp", "")
        signature = headers.get("x-monitor-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.tolerance:
            return "stale or missing timestamp"
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
        if not hmac.compare_digest(signature, "sha256=" + expected.hexdigest()):
            return "bad signature"
        return ""

    def answer(self, request: Request) -> Answer:
        problem = self.verify(request)
        if problem:
            with self._lock:
                self.refused.append(problem)
            return Answer(401, json.dumps({"error": problem}).encode())
        alert_id = {k.lower(): v for k, v in request.headers.items()}.get("x-monitor-alert", "")
        with self._lock:
            if alert_id in self._seen:
                return Answer(200, b'{"duplicate": true}')
            self._seen.add(alert_id)
            self.payloads.append(json.loads(request.body))
        return Answer(200, b'{"ok": true}')
