"""All outbound HTTP of the alerts app: one wrapper with a timeout and bounded retries,
and the masking of the secrets its requests carry.

It knows no service and no transport (they stand on it): each transport passes how
to read its service's wait (``retry_after``) and error text (``describe``), and the
secrets its request carries, and maps ``RequestFailed`` to its family's error. Those
secrets are masked in every answer text kept here and, through ``HideSecrets``, in
every line of ``MASKED_LOGGERS`` (urllib3 logs each request line, tokens in the path
included); the site's ``LOGGING`` attaches the filter. Nothing here returns or logs a URL.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from alerts.conf import setting
from trades.formats import format_duration

# One pooled session per process: a kept-alive connection saves the TLS
# handshake (~100 ms to Discord) on every alert after the first.
_session = requests.Session()

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class RequestFailed(Exception):
    """No answer worth reading came back: the retries ran out, or the server asked for a
    longer wait than one task spends. ``message`` carries no secret and no URL.

    ``retryable``: a later try of the same request may succeed (both cases above).
    ``retry_after``: the server asked for this many seconds. ``status_code``: 429 when
    that wait ended the tries.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status_code = status_code


@dataclass(frozen=True)
class Outcome:
    """One request made while delivering; recorded as a DeliveryAttempt.

    ``reached``: whom this request delivered to, in the transport's own terms (the outbox
    only stores it and gives it back through ``Alert.reached()``); empty when the request
    reached no one, or when the service has one destination and the state says it all.
    """

    status_code: int | None
    error: str
    duration_ms: float
    reached: tuple[str, ...] = ()


# --- secrets and masking ---------------------------------------------------------------

ELLIPSIS = "…"
_SPLIT = re.compile(r"[/:?&=#@,\s]+")

# urllib3 logs each request line (tokens in the path); the alerts app logs delivery failures.
MASKED_LOGGERS = ("urllib3.connectionpool", "alerts.delivery", "alerts.tasks", "alerts.evaluation")


def mask_url(url: str) -> str:
    """``https://discord.com/api/webhooks/1234…/abc…``: enough to recognise, not enough to use."""
    if not url:
        return ""
    head, _, tail = url.rpartition("/")
    if not head or head.endswith("/"):
        return url[:8] + ELLIPSIS
    return f"{head[:45]}{ELLIPSIS}/{tail[:3]}{ELLIPSIS}"


def mask(value: str) -> str:
    """What is shown in place of a secret: a URL keeps its host, a token its first three characters."""
    if re.match(r"^https?://", value):
        return mask_url(value)
    return value[:3] + ELLIPSIS if len(value) >= 8 else ELLIPSIS


def fragments(value: str) -> list[str]:
    """A secret and the long pieces of it that are secret on their own (a URL's token, a bot token's key)."""
    pieces = [value]
    if re.match(r"^https?://", value):
        # A request line in a log carries the path alone (urllib3: "POST /bot…/sendMessage").
        path = urlsplit(value).path
        if len(path) >= 8:
            pieces.append(path)
    pieces += [piece for piece in _SPLIT.split(value) if len(piece) >= 16 and piece != value]
    return pieces


def hide(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its long pieces) masked; longest first: a URL wins over its token."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, mask(secret))
    return text


_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def remember_secrets(secrets: Iterable[str]) -> None:
    """Mask these in every log line of this process from now on."""
    with _secrets_lock:
        _secrets.update(s for s in secrets if s)


class HideSecrets(logging.Filter):
    """Masks every secret a transport has used, wherever the record goes (file, console, Loki).

    The traceback too: it is formatted here, masked, and kept as the record's
    ``exc_text``, which every formatter uses as it is. The logging configuration
    attaches it to each logger of ``MASKED_LOGGERS``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        secrets = list(_secrets)
        message = record.getMessage()
        hidden = hide(message, secrets)
        if hidden != message:
            record.msg, record.args = hidden, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = hide(record.exc_text, secrets)
        return True


# --- what went wrong, in words ------------------------------------------------------------


def host_of(url: str) -> str:
    """``api.telegram.org`` or ``127.0.0.1:8080``: the host a request went to, never a path or a login."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the server"
    host = parts.hostname or "the server"
    return f"{host}:{port}" if port else host


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception behind it (causes, contexts, urllib3's ``reason`` and args)."""
    found: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        behind = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        stack += [e for e in behind if isinstance(e, BaseException)]
    return found


# Most telling first: urllib3 wraps the socket's own error in classes that say less.
_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (socket.gaierror, "name not found"),
    (ssl.SSLCertVerificationError, "its TLS certificate is not trusted"),
    (ssl.SSLError, "the TLS handshake failed"),
    (ConnectionResetError, "connection reset"),
    (ConnectionAbortedError, "connection aborted"),
    (TimeoutError, "timed out"),
)


def cause(exc: BaseException) -> str:
    """Why a connection failed, in words: ``connection refused``, ``name not found``, ``timed out``…

    Read from the exception's types alone: their texts carry the URL, tokens included.
    """
    chain = [e for e in _chain(exc) if not isinstance(e, requests.RequestException)]
    for kind, words in _CAUSES:
        if any(isinstance(e, kind) for e in chain):
            return words
    innermost = next((e for e in reversed(chain) if isinstance(e, OSError)), exc)
    return f"connection failed ({type(innermost).__name__})"


def header_retry_after(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds (HTTP's own way to ask for a wait)."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            return None
    return None


def reason(response: requests.Response) -> str:
    """A short, secret-free description of an error answer: the status line's reason."""
    return (response.reason or "")[:200]


def post(
    url: str,
    *,
    record: Callable[[Outcome], None],
    json: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    retry_after: Callable[[requests.Response], float | None] = header_retry_after,
    describe: Callable[[requests.Response], str] = reason,
    sleep: Callable[[float], None] = time.sleep,
) -> requests.Response:
    """POST; retry timeouts, connection errors, 5xx and 429 a bounded number of times.

    Returns the first response that is not worth retrying (2xx or a 4xx other
    than 429). Raises ``RequestFailed`` when the retries run out, or when the
    server asks for a longer wait than we spend inside one task
    (``ALERT_HTTP_MAX_WAIT``): the caller then schedules the next try.
    ``record`` is called once per request with its status, error and duration.
    """
    secrets = list(secrets)
    remember_secrets(secrets)
    attempts = setting("ALERT_HTTP_ATTEMPTS")
    timeout = setting("ALERT_HTTP_TIMEOUT")
    max_wait = setting("ALERT_HTTP_MAX_WAIT")
    last_error = ""
    host = host_of(url)
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            response = _session.post(
                url, json=json, data=data, headers=headers, params=params, timeout=timeout
            )
        except requests.ConnectTimeout:
            last_error = f"cannot reach {host}: no connection within {timeout:g} s"
            record(Outcome(None, last_error, _ms(started)))
            wait = _backoff(attempt)
        except requests.Timeout:
            last_error = f"no answer from {host} within {timeout:g} s"
            record(Outcome(None, last_error, _ms(started)))
            wait = _backoff(attempt)
        except requests.RequestException as exc:
            # The exception's text carries the URL; only its types are read.
            last_error = f"cannot reach {host}: {cause(exc)}"
            record(Outcome(None, last_error, _ms(started)))
            wait = _backoff(attempt)
        else:
            text = hide(describe(response), secrets) if not response.ok else ""
            if response.status_code not in RETRYABLE_STATUS:
                record(Outcome(response.status_code, text, _ms(started)))
                return response
            last_error = f"{host} answered HTTP {response.status_code}: {text}"
            record(Outcome(response.status_code, last_error, _ms(started)))
            if response.status_code == 429:
                asked = retry_after(response)
                wait = _backoff(attempt) if asked is None else asked
                if wait > max_wait or attempt == attempts:
                    raise RequestFailed(
                        f"rate limited by {host}: retry after {format_duration(wait)}",
                        retry_after=wait,
                        status_code=429,
                    )
            else:
                wait = _backoff(attempt)
        if attempt < attempts:
            sleep(min(wait, max_wait))
    raise RequestFailed(f"{last_error} ({attempts} tries)" if attempts > 1 else last_error)


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s …: short, because a later task run retries again anyway."""
    return 0.5 * 2 ** (attempt - 1)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
