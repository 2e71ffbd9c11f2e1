"""All outbound HTTP of the alerts app: one wrapper with a timeout and bounded retries.

Nothing here logs or returns the URL: for a webhook the URL is the secret.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import requests

from alerts.conf import setting
from alerts.transports.base import Outcome, TransportError

# One pooled session per process: a kept-alive connection saves the TLS
# handshake (~100 ms to Discord) on every alert after the first.
_session = requests.Session()

RETRYABLE_STATUS = {429, 500, 502, 503, 504}

_WEBHOOK_TOKEN = re.compile(r"(/api/webhooks/[^/\s]+/)[^/\s?\"']+")


class _HideWebhookTokens(logging.Filter):
    """urllib3 logs each request line at DEBUG, webhook token included; mask it wherever it goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/api/webhooks/" in message:
            record.msg, record.args = _WEBHOOK_TOKEN.sub(r"\1***", message), ()
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_HideWebhookTokens())


def retry_after_seconds(response: requests.Response) -> float | None:
    """Discord's wait on a 429: the JSON body's ``retry_after`` (float seconds), else ``Retry-After``."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("retry_after") is not None:
            return max(0.0, float(body["retry_after"]))
    except (ValueError, TypeError):
        pass
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return None


def post_json(
    url: str,
    payload: dict[str, Any],
    *,
    record: Callable[[Outcome], None],
    params: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """POST ``payload``; retry timeouts, connection errors, 5xx and 429 a bounded number of times.

    Returns the first response that is not worth retrying (2xx or a 4xx other
    than 429). Raises ``TransportError`` when the retries run out, or when the
    server asks for a longer wait than we spend inside one task
    (``ALERT_HTTP_MAX_WAIT``): the caller then schedules the next try.
    ``record`` is called once per request with its status, error and duration.
    """
    attempts = setting("ALERT_HTTP_ATTEMPTS")
    timeout = setting("ALERT_HTTP_TIMEOUT")
    max_wait = setting("ALERT_HTTP_MAX_WAIT")
    last_error = ""
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            response = _session.post(url, json=payload, params=params, timeout=timeout)
        except requests.Timeout:
            last_error = f"no answer within {timeout:g} s"
            record(Outcome(None, last_error, _ms(started)))
            wait = _backoff(attempt)
        except requests.RequestException as exc:
            # The exception's text carries the URL; keep only its class.
            last_error = f"connection failed ({type(exc).__name__})"
            record(Outcome(None, last_error, _ms(started)))
            wait = _backoff(attempt)
        else:
            if response.status_code not in RETRYABLE_STATUS:
                record(Outcome(response.status_code, "" if response.ok else _reason(response), _ms(started)))
                return response
            last_error = f"HTTP {response.status_code}: {_reason(response)}"
            record(Outcome(response.status_code, last_error, _ms(started)))
            if response.status_code == 429:
                wait = retry_after_seconds(response)
                wait = _backoff(attempt) if wait is None else wait
                if wait > max_wait or attempt == attempts:
                    raise TransportError(
                        f"rate limited by the server: retry after {wait:.2f} s",
                        retry_after=wait,
                        status_code=429,
                    )
            else:
                wait = _backoff(attempt)
        if attempt < attempts:
            sleep(min(wait, max_wait))
    raise TransportError(f"gave up after {attempts} attempts: {last_error}")


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s …: short, because a later task run retries again anyway."""
    return 0.5 * 2 ** (attempt - 1)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _reason(response: requests.Response) -> str:
    """A short, secret-free description of an error answer."""
    try:
        body = response.json()
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return (str(message) if message else response.reason or "")[:200]
