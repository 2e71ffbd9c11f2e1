"""The few Bot API methods the command reader calls, over ``requests``, with one error type.

Every method is a POST with a JSON body to ``<api_url>/bot<token>/<method>``; Telegram answers
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description", "parameters"}``
(https://core.telegram.org/bots/api#making-requests). A 429 carries
``parameters.retry_after``; a 409 means another ``getUpdates`` (or a webhook) holds the updates.

The token is in every URL, so no URL and no exception text from ``requests`` is ever kept or
logged here: ``BotApiError`` names the host, the status and Telegram's description only, and the
token is handed to the log filter that masks secrets (``alerts.outbound.remember_secrets``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from alerts import outbound
from alerts.transports.telegram import retry_after

# An answer to any method but a long poll; a long poll gets its own timeout on top.
ANSWER_SECONDS = 10.0


class BotApiError(Exception):
    """A method failed. ``status``: Telegram's error code (``None`` when nothing came back).
    ``retry_after``: the wait a 429 asked for. ``message``: words for a log line, no secret."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def webhook_set(self) -> bool:
        return self.conflict and "webhook" in self.message.lower()


@dataclass
class BotApi:
    token: str
    api_url: str

    def __post_init__(self) -> None:
        outbound.remember_secrets([self.token])
        self.host = outbound.host_of(self.api_url)
        self._local = threading.local()

    @property
    def _session(self) -> requests.Session:
        # requests' sessions are not shared between threads.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, payload: dict[str, Any] | None = None, *, wait: float = 0.0) -> Any:
        """The method's ``result``; ``wait``: how long the server may hold the answer (a long poll)."""
        url = f"{self.api_url}/bot{self.token}/{method}"
        try:
            response = self._session.post(
                url, json=payload or {}, timeout=(ANSWER_SECONDS, ANSWER_SECONDS + wait)
            )
        except requests.Timeout:
            raise BotApiError(f"{method}: no answer from {self.host} in time") from None
        except requests.RequestException as exc:
            raise BotApiError(f"{method}: cannot reach {self.host}: {outbound.cause(exc)}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BotApiError(
                f"{method}: {self.host} answered HTTP {response.status_code} without a Bot API answer",
                status=response.status_code,
            )
        if response.ok and body.get("ok") is True:
            return body.get("result")
        description = outbound.hide(str(body.get("description") or outbound.reason(response)), [self.token])
        status = body.get("error_code") if isinstance(body.get("error_code"), int) else response.status_code
        raise BotApiError(
            f"{method}: {self.host} answered {status}: {description[:200]}",
            status=status,
            retry_after=retry_after(response) if status == 429 else None,
        )
