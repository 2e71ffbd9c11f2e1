"""The bot's side of the monitoring site: record trades, report health, ask for permission.

``Monitor`` never slows or crashes the bot. ``record_trade`` and ``event`` check their
input on the caller's thread (a mistake there is the bot's bug, so it raises
``ValueError`` at once instead of failing forever later), append to the durable spool
(``monitor_client.spool``) and return. A background shipper sends the spool to
``POST /api/v1/trades/`` in batches and ``POST /api/v1/events/`` one by one, retries
with exponential backoff and jitter while the site is down, and uses ``external_id`` so
a replay stores nothing twice. Only ``flush`` and ``trading_allowed`` wait for the
network, each bounded by a timeout.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import math
import os
import random
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from monitor_client.spool import DEFAULT_MAX_BYTES, Record, Spool
from monitor_client.wire import (
    DECIMAL_PLACES,
    EARLIEST,
    EVENT_KINDS,
    EVENT_LEVELS,
    EVENT_MESSAGE_MAX_LENGTH,
    EXTERNAL_ID_MAX_LENGTH,
    HEARTBEAT_STATUS_MAX_LENGTH,
    MAX_BATCH,
    MAX_CLOCK_SKEW,
    SIDES,
    SIGNIFICANT_DIGITS,
    STRATEGY_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
    decimal_places,
    significant_digits,
    span_in_words,
)

log = logging.getLogger("monitor_client")

API = "/api/v1/"
MAX_BATCH_BYTES = 4 * 1024 * 1024  # well under the site's MAX_BODY_BYTES (10 MB)
USER_AGENT = "monitor-client/1.0"

# The usual spellings found without a call; any other case goes through upper().
_SIDES = {spelling: side for side in SIDES for spelling in (side, side.lower(), side.title())}
_SYMBOL = re.compile(SYMBOL_PATTERN)
_EVENT_KINDS = frozenset(EVENT_KINDS)
_EVENT_LEVELS = frozenset(EVENT_LEVELS)
_UTC = dt.UTC
_now = dt.datetime.now
_encode_string = json.encoder.encode_basestring_ascii  # the C encoder json.dumps uses for a str


def _json_default(value: Any) -> Any:
    """Metadata and event details: common non-JSON values become strings, not errors."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# One encoder made once: json.dumps with any option builds a new one per call (3x slower).
_encoder = json.JSONEncoder(default=_json_default, separators=(",", ":"), allow_nan=False)
_dumps = _encoder.encode


def _number(name: str, value: Any, *, positive: bool) -> str:
    """The value as an exact JSON number (Decimal digits are kept as given)."""
    kind = type(value)
    if kind is int:
        text = str(value)
        if positive and value <= 0:
            raise ValueError(f"{name} must be greater than 0; got {text}.")
        if len(text) > SIGNIFICANT_DIGITS and significant_digits(text) > SIGNIFICANT_DIGITS:
            raise ValueError(f"{name} has more than {SIGNIFICANT_DIGITS} significant digits; got {text}.")
        return text
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
        # A float's binary noise (0.1 + 0.2) is not precision: keep the places and the
        # significant digits the site stores. A float within both is unchanged by this.
        value = round(value, DECIMAL_PLACES)
        text = repr(value)  # the shortest text that reads back as the same float
        if len(text) > SIGNIFICANT_DIGITS and significant_digits(text) > SIGNIFICANT_DIGITS:
            # A text of 15 digits reads back as a float whose shortest text is as short.
            text = repr(float(f"{value:.{SIGNIFICANT_DIGITS}g}"))
    elif kind is Decimal:
        if not value.is_finite():
            raise ValueError(f"{name} must be a finite number; got {value}.")
        text = str(value)
    elif kind is bool or isinstance(value, str) or not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number (int, float or Decimal); got {value!r}.")
    else:  # numpy and other numeric types: through their exact decimal text
        value = Decimal(str(value))
        return _number(name, value, positive=positive)
    if positive and value <= 0:
        raise ValueError(f"{name} must be greater than 0; got {text}.")
    if decimal_places(text) > DECIMAL_PLACES:
        raise ValueError(f"{name} has more than {DECIMAL_PLACES} decimal places; got {text}.")
    # A text no longer than 15 characters holds no more than 15 digits: no call for the usual number.
    if len(text) > SIGNIFICANT_DIGITS and significant_digits(text) > SIGNIFICANT_DIGITS:
        raise ValueError(f"{name} has more than {SIGNIFICANT_DIGITS} significant digits; got {text}.")
    return text


def _aware_time(name: str, value: dt.datetime) -> str:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{name} must be a datetime; got {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)); got {value}.")
    if value < EARLIEST or value > _now(_UTC) + MAX_CLOCK_SKEW:
        raise ValueError(
            f"{name} must be between {EARLIEST.year} and {span_in_words(MAX_CLOCK_SKEW)} from now;"
            f" got {value.isoformat()}."
        )
    return value.isoformat()


class _Retry(Exception):
    """The site could not take the data now; try again after ``delay`` (None: backoff)."""

    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.delay = delay


class SiteConnection:
    """All HTTP to the site: one session, a timeout on every request, the key in one place.

    Each thread that talks to the site has its own (``requests.Session`` is not
    thread-safe). Retrying is the caller's business: the shipper retries forever with
    backoff, ``trading_allowed`` falls back to its last answer.
    """

    def __init__(self, url: str, key: str, timeout: float):
        self.base = url.rstrip("/") + API
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "User-Agent": USER_AGENT}
        )

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float | None = None
    ) -> requests.Response:
        """One attempt; raises ``_Retry`` when the site cannot be reached."""
        try:
            # No redirects: requests would turn a redirected POST into a GET, whose 200
            # would look like success while nothing was stored.
            return self.session.request(
                method, self.base + path, data=body, timeout=timeout or self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        self.session.close()


class Monitor:
    """Reports one bot's trades, heartbeats and events to the site; see docs/BOT_INTEGRATION.md.

    ``url`` and ``key`` default to ``MONITOR_URL`` and ``MONITOR_KEY``; without them
    everything is spooled and nothing shipped. ``spool_dir`` (default ``data/spool``
    under the working directory) belongs to this process alone. ``fail_open`` decides
    ``trading_allowed`` before the site ever answered. ``timeout`` bounds each request
    of the shipper, ``status_timeout`` the status check, cached ``status_ttl`` seconds.
    ``backoff_base``/``backoff_max`` shape the retries while the site is down;
    ``auth_retry`` is the slower pace after a 401/403 or a wrong URL. ``clock`` is for
    tests.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        *,
        fail_open: bool = True,
        timeout: float = 10.0,
        status_timeout: float = 3.0,
        status_ttl: float = 5.0,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        sync_interval: float = 1.0,
        batch_size: int = MAX_BATCH,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        auth_retry: float = 60.0,
        linger: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = (url if url is not None else os.environ.get("MONITOR_URL", "")).strip()
        key = (key if key is not None else os.environ.get("MONITOR_KEY", "")).strip()
        self.fail_open = fail_open
        self.status_ttl = status_ttl
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.auth_retry = auth_retry
        self.linger = linger
        self._clock = clock
        self.spool = Spool(
            spool_dir if spool_dir is not None else Path.cwd() / "data" / "spool",
            max_bytes=spool_max_bytes,
            sync_interval=sync_interval,
            clock=clock,
        )
        self.dead_letter_path = self.spool.directory / "dead_letter.jsonl"
        self._configured = bool(self.url and key)
        if not self._configured:
            log.warning(
                "MONITOR_URL or MONITOR_KEY is not set: trades are kept in the spool %s and "
                "shipped once a Monitor with both runs on it.",
                self.spool.directory,
            )
        self._shipper_site = SiteConnection(self.url, key, timeout) if self._configured else None
        self._status_site = SiteConnection(self.url, key, status_timeout) if self._configured else None

        self._wake = threading.Event()  # new records or a heartbeat
        self._hurry = threading.Event()  # cut a backoff short: flush() or close()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._heartbeat_lock = threading.Lock()
        self._pending_heartbeat: dict[str, Any] | None = None
        self._last_heartbeat: dict[str, Any] = {"status": "running", "details": {}}
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._status_lock = threading.Lock()
        self._status: bool | None = None
        self._status_reason = ""
        self._status_checked_at: float | None = None
        self._status_failing = False
        self._crash_hook_installed = False
        self._problem: str | None = None  # the shipper's current trouble, logged once per change
        self._closed = False
        self._shipper: threading.Thread | None = None
        if self._configured:
            self._shipper = threading.Thread(target=self._ship_forever, name="monitor-shipper", daemon=True)
            self._shipper.start()
        atexit.register(self._at_exit)

    # --- the bot's calls ----------------------------------------------------

    def record_trade(
        self,
        external_id: str,
        symbol: str,
        side: str,
        quantity: int | float | Decimal,
        price: int | float | Decimal,
        strategy: str = "",
        pnl: int | float | Decimal | None = None,
        executed_at: dt.datetime | None = None,
        **metadata: Any,
    ) -> bool:
        """Put one fill in the durable spool; True once it is there.

        Raises ``ValueError`` for a trade the site would refuse forever (a bad side or
        symbol, a naive time, a non-positive quantity: the rules of ``monitor_client.wire``).
        The site's bounds on sizes (a price above ``MAX_PRICE``, metadata over
        ``METADATA_MAX_BYTES``) are left to it: such a trade is parked in the dead-letter
        file, never blocking the others. Returns False, logging an error, only when
        the spool is full or closed. ``executed_at`` defaults to now (UTC), so a trade
        shipped an hour late keeps its true time.
        """
        if type(external_id) is not str or not 0 < len(external_id) <= EXTERNAL_ID_MAX_LENGTH:
            raise ValueError(
                f"external_id must be a string of 1 to {EXTERNAL_ID_MAX_LENGTH} characters;"
                f" got {external_id!r}."
            )
        if type(symbol) is not str or len(symbol) > SYMBOL_MAX_LENGTH or not _SYMBOL.fullmatch(symbol):
            raise ValueError(
                f"symbol must be 1 to {SYMBOL_MAX_LENGTH} ASCII letters, digits and . : / _ -"
                f" (a letter or digit first); got {symbol!r}."
            )
        normal_side = (
            (_SIDES.get(side) or _SIDES.get(side.strip().upper())) if isinstance(side, str) else None
        )
        if normal_side is None:
            raise ValueError(f"side must be BUY or SELL; got {side!r}.")
        if type(strategy) is not str or len(strategy) > STRATEGY_MAX_LENGTH:
            raise ValueError(
                f"strategy must be a string of at most {STRATEGY_MAX_LENGTH} characters; got {strategy!r}."
            )
        moment = _now(_UTC).isoformat() if executed_at is None else _aware_time("executed_at", executed_at)
        payload = (
            f'{{"external_id":{_encode_string(external_id)},"symbol":{_encode_string(symbol)},'
            f'"side":"{normal_side}","quantity":{_number("quantity", quantity, positive=True)},'
            f'"price":{_number("price", price, positive=True)},"strategy":{_encode_string(strategy)},'
            f'"pnl":{"null" if pnl is None else _number("pnl", pnl, positive=False)},'
            f'"executed_at":"{moment}","metadata":{_dumps(metadata) if metadata else "{}"}}}'
        )
        return self._spool_record(b"T", payload.encode())

    def event(self, kind: str, level: str = "info", message: str = "", **details: Any) -> bool:
        """Report something about the bot (kinds and levels of the API), through the spool,
        so that an event from a crash is not lost while the site is down. Each event gets a
        fresh ``event_id`` stored with it in the spool, so a retry after a timeout or an
        outage (or after a restart) sends the same id and the site stores and alerts it once."""
        kind = kind.strip().lower() if isinstance(kind, str) else kind
        level = level.strip().lower() if isinstance(level, str) else level
        if kind not in _EVENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(sorted(EVENT_KINDS))}; got {kind!r}.")
        if level not in _EVENT_LEVELS:
            raise ValueError(f"level must be one of {', '.join(EVENT_LEVELS)}; got {level!r}.")
        body = {
            "event_id": uuid.uuid4().hex,
            "kind": kind,
            "level": level,
            "message": str(message)[:EVENT_MESSAGE_MAX_LENGTH],
            "details": details,
            "occurred_at": _now(_UTC).isoformat(),
        }
        return self._spool_record(b"E", _dumps(body).encode())

    def heartbeat(self, status: str = "running", **details: Any) -> None:
        """Tell the site the bot is alive; sent by the shipper, the newest one wins.

        The heartbeat thread (``start_heartbeats``) repeats the latest status and details.
        """
        beat = {"status": str(status)[:HEARTBEAT_STATUS_MAX_LENGTH], "details": json.loads(_dumps(details))}
        with self._heartbeat_lock:
            self._pending_heartbeat = self._last_heartbeat = beat
        self._wake.set()

    def start_heartbeats(self, every: float = 60.0) -> None:
        """Send a heartbeat now and every ``every`` seconds from a daemon thread."""
        if self._heartbeat_thread and self._heartbeat_thread.is_alive():
            return
        self._heartbeat_stop.clear()

        def beat() -> None:
            while True:
                with self._heartbeat_lock:
                    self._pending_heartbeat = self._last_heartbeat
                self._wake.set()
                if self._heartbeat_stop.wait(every):
                    return

        self._heartbeat_thread = threading.Thread(target=beat, name="monitor-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def stop_heartbeats(self) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat_thread:
            self._heartbeat_thread.join(timeout=5)

    def trading_allowed(self, fail_open: bool | None = None) -> bool:
        """Whether the site's risk rules allow trading (``GET /api/v1/status/``).

        The answer is cached for ``status_ttl`` seconds. When the site cannot be asked,
        the last known answer stands; before any answer, ``fail_open`` decides (the
        argument, else the Monitor's). Waits at most ``status_timeout`` on the network.
        """
        fallback = self.fail_open if fail_open is None else fail_open
        with self._status_lock:
            now = self._clock()
            if self._status_checked_at is not None and now - self._status_checked_at < self.status_ttl:
                return fallback if self._status is None else self._status
            self._status_checked_at = now  # a failed check is not retried before the ttl either
            answer = self._fetch_status()
            if answer is not None:
                if self._status_failing:
                    log.info("Trading status available again.")
                self._status, self._status_failing = answer, False
            elif not self._status_failing:  # said once per outage, not every few seconds
                self._status_failing = True
                if self._status is not None:
                    log.warning("Trading status unavailable; keeping the last answer (%s).", self._status)
                else:
                    log.warning(
                        "Trading status unavailable and none known yet; failing %s.",
                        "open (allowed)" if fallback else "closed (not allowed)",
                    )
            return fallback if self._status is None else self._status

    def _fetch_status(self) -> bool | None:
        if self._status_site is None:
            return None
        try:
            response = self._status_site.request("GET", "status/")
        except _Retry as exc:
            log.info("Status check failed: %s", exc)
            return None
        if response.status_code != 200:
            log.warning("Status check answered %s: %s", response.status_code, response.text[:200])
            return None
        try:
            body = response.json()
            allowed = body["trading_allowed"]
        except (ValueError, KeyError, TypeError):
            log.warning("Status check answered something unexpected: %s", response.text[:200])
            return None
        if not isinstance(allowed, bool):
            return None
        reason = str(body.get("reason", ""))
        if allowed != self._status or reason != self._status_reason:
            log.log(logging.INFO if allowed else logging.WARNING, "Trading allowed: %s (%s)", allowed, reason)
        self._status_reason = reason
        return allowed

    def install_crash_hook(self, timeout: float = 5.0) -> None:
        """Report an unhandled exception (main thread or any other) as a ``crash`` event.

        The event goes into the durable spool first, then the hook waits up to
        ``timeout`` seconds for it to reach the site before the default handling
        (printing the traceback, the process ending) goes on.
        """
        if self._crash_hook_installed:
            return
        self._crash_hook_installed = True
        previous_sys = sys.excepthook
        previous_threading = threading.excepthook

        def sys_hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
            if not issubclass(kind, KeyboardInterrupt):
                self._report_crash(kind, exc, tb, threading.current_thread().name, timeout)
            previous_sys(kind, exc, tb)

        def threading_hook(args: threading.ExceptHookArgs) -> None:
            if args.exc_type is not SystemExit and args.exc_value is not None:
                name = args.thread.name if args.thread else "unknown"
                self._report_crash(args.exc_type, args.exc_value, args.exc_traceback, name, timeout)
            previous_threading(args)

        sys.excepthook = sys_hook
        threading.excepthook = threading_hook

    def _report_crash(
        self,
        kind: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
        thread: str,
        timeout: float,
    ) -> None:
        try:
            lines = traceback.format_exception(kind, exc, tb)
            summary = f"{kind.__name__}: {exc}"
            self.event(
                "crash",
                "critical",
                f"Unhandled exception in thread {thread}: {summary}"[:EVENT_MESSAGE_MAX_LENGTH],
                exception=kind.__name__,
                thread=thread,
                traceback="".join(lines)[-8000:],
            )
            if not self.flush(timeout):
                log.error(
                    "The crash event is in the spool %s; it is sent on the next start.", self.spool.directory
                )
        except Exception:
            log.exception("Could not report the crash")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything spooled so far is stored by the site; False after ``timeout``."""
        target = self.spool.end()
        if self.spool.acked >= target:
            return True
        if not self._configured or self._shipper is None or not self._shipper.is_alive():
            return False
        deadline = time.monotonic() + max(0.0, timeout)
        self._hurry.set()
        self._wake.set()
        with self._progress:
            while self.spool.acked < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.5))
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Stop heartbeats, ship what is spooled (up to ``timeout``), stop the threads.

        Returns whether everything was shipped; anything left stays in the spool for
        the next start.
        """
        if self._closed:
            return not self.spool.pending()
        self.stop_heartbeats()
        shipped = self.flush(timeout)
        self._closed = True
        self._stopping.set()
        self._hurry.set()
        self._wake.set()
        if self._shipper:
            self._shipper.join(timeout=2)
        self.spool.close()
        for site in (self._shipper_site, self._status_site):
            if site:
                site.close()
        atexit.unregister(self._at_exit)
        return shipped

    def _at_exit(self) -> None:
        # A bot that ends without close() still gets a short chance to ship.
        try:
            self.close(timeout=3)
        except Exception:
            log.exception("Closing the monitor at exit failed")

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _spool_record(self, kind: bytes, payload: bytes) -> bool:
        if not self.spool.append(kind, payload):
            return False
        if not self._wake.is_set():
            self._wake.set()
        return True

    # --- the shipper thread -------------------------------------------------

    def _ship_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                did_work = self._ship_once()
            except _Retry as retry:
                failures += 1
                delay = retry.delay if retry.delay is not None else self._backoff(failures)
                self._trouble(str(retry))
                self._hurry.wait(delay)
                self._hurry.clear()
                continue
            except Exception as exc:  # a bug must not stop shipping for good
                failures += 1
                log.exception("The shipper failed unexpectedly; retrying")
                self._trouble(f"unexpected {type(exc).__name__}")
                self._hurry.wait(self._backoff(failures))
                self._hurry.clear()
                continue
            if failures:
                log.info("The site takes data again; the spool is being shipped.")
                failures = 0
                self._problem = None
            if not did_work:
                self._wake.wait(1.0)
                if self.linger and not self._stopping.is_set() and not self._hurry.is_set():
                    # Let a burst of fills gather into one request.
                    time.sleep(self.linger)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(failures - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _trouble(self, reason: str) -> None:
        """Log a shipping problem when it starts or changes, not on every retry."""
        if reason != self._problem:
            self._problem = reason
            log.log(
                logging.ERROR if "MONITOR_" in reason else logging.WARNING,
                "Cannot ship to %s: %s; %d bytes wait in the spool, retrying.",
                self.url,
                reason,
                self.spool.used_bytes,
            )

    def _ship_once(self) -> bool:
        """Send the pending heartbeat and one batch; whether there was anything to do."""
        assert self._shipper_site is not None
        with self._heartbeat_lock:
            beat, self._pending_heartbeat = self._pending_heartbeat, None
        if beat is not None:
            try:
                self._send_heartbeat(beat)
            except _Retry:
                with self._heartbeat_lock:
                    if self._pending_heartbeat is None:
                        self._pending_heartbeat = beat
                raise
        records = self.spool.read(self.batch_size, MAX_BATCH_BYTES)
        if not records:
            return beat is not None
        if records[0].kind == "E":
            self._send_event(records[0])
            done = records[0].end
        else:
            trades: list[Record] = []
            for record in records:
                if record.kind != "T":
                    break
                trades.append(record)
            self._send_trades(trades)
            done = trades[-1].end
        self.spool.ack(done)
        with self._progress:
            self._progress.notify_all()
        return True

    def _send_heartbeat(self, beat: dict[str, Any]) -> None:
        response = self._post("heartbeat/", json.dumps(beat).encode())
        if response.status_code == 400:
            log.error("The site refused a heartbeat: %s", response.text[:500])

    def _send_event(self, record: Record) -> None:
        response = self._post("events/", record.payload)
        if response.status_code == 400:
            self._park([record], response.text)

    def _check_stored(self, response: requests.Response, count: int) -> None:
        """Only the site's own answer acknowledges trades: a proxy's or another app's 200
        for the wrong URL must not make the spool drop them."""
        try:
            body = response.json()
            answered = body["created"] + body["duplicates"]
        except (ValueError, KeyError, TypeError):
            answered = None
        if answered != count:
            raise _Retry(
                f"unexpected answer {response.status_code} to {count} trades "
                f"({response.text[:100]!r}): is MONITOR_URL the monitoring site?",
                self.auth_retry,
            )

    def _send_trades(self, trades: list[Record]) -> None:
        """Store ``trades``; a trade the site refuses is parked, never blocking the rest."""
        if not trades:
            return
        body = b"[" + b",".join(record.payload for record in trades) + b"]"
        response = self._post("trades/", body)
        if response.status_code < 300:
            self._check_stored(response, len(trades))
            return
        try:
            errors = response.json().get("errors", {})
        except (ValueError, AttributeError):
            errors = {}
        bad = {
            int(index): problem
            for index, problem in (errors.items() if isinstance(errors, dict) else ())
            if str(index).isdigit() and int(index) < len(trades)
        }
        if len(trades) == 1:
            self._park(trades, bad.get(0) or errors or response.text[:2000])
            return
        if bad:
            for index in sorted(bad):
                self._park([trades[index]], bad[index])
            rest = [record for index, record in enumerate(trades) if index not in bad]
        else:
            # Refused as a whole (e.g. too large): halve until the culprit stands alone.
            middle = len(trades) // 2
            self._send_trades(trades[:middle])
            rest = trades[middle:]
        if rest:
            self._send_trades(rest)

    def _post(self, path: str, body: bytes) -> requests.Response:
        """POST once; return 2xx and 400/413 answers, raise ``_Retry`` for the rest."""
        assert self._shipper_site is not None
        response = self._shipper_site.request("POST", path, body)
        status = response.status_code
        if status < 300 or status in (400, 413):
            return response
        if status in (401, 403):
            raise _Retry(
                f"the site refused the key ({status}: {_detail(response)}); check MONITOR_KEY, "
                "it must be the bot's write key",
                self.auth_retry,
            )
        if status == 429:
            raise _Retry("429 too many requests", _retry_after(response))
        if status >= 500:
            raise _Retry(f"the site answered {status}")
        where = f" (redirected to {response.headers.get('Location')})" if response.is_redirect else ""
        raise _Retry(f"the site answered {status} for {path}{where}: is MONITOR_URL right?", self.auth_retry)

    def _park(self, records: list[Record], error: Any) -> None:
        """Move records the site refused for good to the dead-letter file, and say so."""
        now = _now(_UTC).isoformat()
        lines = []
        for record in records:
            try:
                item: Any = json.loads(record.payload)
            except ValueError:
                item = record.payload.decode(errors="replace")
            kind = "trade" if record.kind == "T" else "event"
            lines.append(json.dumps({"parked_at": now, "kind": kind, "error": error, "record": item}) + "\n")
            name = item.get("external_id") or item.get("kind") if isinstance(item, dict) else "?"
            log.error(
                "The site refused %s %s for good: %s. Parked in %s; the rest goes on.",
                kind,
                name,
                json.dumps(error)[:500],
                self.dead_letter_path,
            )
        with open(self.dead_letter_path, "a", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())


def _detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:200]
    except (ValueError, AttributeError):
        return response.text[:200]


def _retry_after(response: requests.Response) -> float | None:
    value: Any = response.headers.get("Retry-After")
    if value is None:
        try:
            value = response.json().get("retry_after")
        except (ValueError, AttributeError):
            value = None
    try:
        return min(max(float(value), 0.0), 300.0)
    except (TypeError, ValueError):
        return None
