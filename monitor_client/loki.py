"""Shipping log records to Grafana Loki without ever making the caller wait.

python-logging-loki (0.3.1) gives the v1 push format and its label handling, but
its handler sends one HTTP request per record, on the caller's thread, with no
timeout: a Loki that hangs blocks the bot forever. Its queue handler fixes the
thread but not the timeout, and breaks under ``dictConfig`` on Python 3.12.

So :class:`LokiShippingHandler` keeps the library's handler and emitter (labels
and payload) and replaces the sending: ``emit`` only appends to a bounded queue;
one background thread per process sends what has gathered every half second as
one push (many records per request), with a timeout on every request. While Loki
is away the oldest records are dropped and counted (the file log keeps them all),
one warning is logged per outage, and what is still queued at exit is flushed
within a short deadline.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests
from logging_loki import LokiHandler
from logging_loki.emitter import LokiEmitterV1

from monitor_client.logsetup import check_loki_settings

PUSH_PATH = "/loki/api/v1/push"
# Labels taken from a record's ``extra`` when present; anything else stays in the line.
RECORD_LABELS = ("strategy", "symbol")
# What of a record is queued: (created, levelname, name, EXTRAS values, line). No
# record, args or exception: a queued traceback would keep every frame's locals
# alive for as long as Loki is away.
EXTRAS = ("tags", *RECORD_LABELS)
Queued = tuple[float, str, str, tuple[Any, ...], str]
# Loki's default limit is 2048; label values are short names, a long one is a mistake.
LABEL_VALUE_MAX = 200
# Loki refuses a push holding a line over its max_line_size (256 KB on Grafana
# Cloud), and with it the rest of the batch: longer lines are cut (4 bytes a
# character at worst). The file log keeps them whole.
LINE_MAX = 60_000
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# The shipper reports on itself here; these records reach the file and console
# handlers but never Loki (see LokiShippingHandler.emit), so an outage warning
# cannot feed itself.
log = logging.getLogger("monitor_client.loki")


def push_url(url: str) -> str:
    """The push endpoint for ``LOKI_URL``, which may be the base URL or the endpoint itself."""
    url = url.rstrip("/")
    return url if url.endswith(PUSH_PATH) else url + PUSH_PATH


def clean_label_value(value: Any) -> str | None:
    """A non-empty single-line string, cut to LABEL_VALUE_MAX characters; None drops the label."""
    text = " ".join(str(value).split())[:LABEL_VALUE_MAX]
    return text or None


class LokiEmitter(LokiEmitterV1):
    """python-logging-loki's v1 payload, with this project's labels and the record's own time.

    The library labels the level ``severity`` and stamps each entry with the time
    of sending; Loki should see ``level`` and the time the record was made, which
    matters once records wait in a queue.
    """

    level_tag = "level"
    logger_tag = "logger"

    def build_tags(self, record: logging.LogRecord) -> dict[str, Any]:
        tags = super().build_tags(record)
        for name in RECORD_LABELS:
            value = record.__dict__.get(name)
            if value is not None:
                tags[name] = value
        cleaned: dict[str, str] = {}
        for name, value in tags.items():
            label, text = self.clean_label_name(name), clean_label_value(value)
            if label and text:
                cleaned[label] = text
        return cleaned

    def clean_label_name(self, name: Any) -> str | None:
        """The library's cleaning, then what Loki also requires: no leading digit, no ``__`` prefix."""
        label = self.format_label(str(name)).lstrip("_")
        if label and label[0].isdigit():
            label = "_" + label
        return label if label and _LABEL_NAME.fullmatch(label) else None

    def build_payload(self, record: logging.LogRecord, line: str) -> dict[str, Any]:
        payload = super().build_payload(record, line)
        # Loki wants nanoseconds since the epoch as a decimal string.
        payload["streams"][0]["values"][0][0] = str(int(record.created * 1e9))
        return payload

    def build_batch(self, items: Iterable[Queued]) -> dict[str, Any]:
        """One push body for many queued records: one stream per label set, entries in time order.

        The library's payload is built for the first record of each label set (level,
        logger, extra labels) and the others are added to its stream: it deep-copies
        its tags on every call, and the shipper thread's time is time the caller's
        thread may wait for the GIL.
        """
        streams: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        stream_of: dict[tuple[str, ...], dict[str, Any]] = {}
        for created, level, logger, extras, line in items:
            # repr: an ``extra`` value may be unhashable; labels are made of its str anyway.
            source = (level, logger, repr(extras))
            stream = stream_of.get(source)
            if stream is None:
                fields = {"created": created, "levelname": level, "name": logger}
                record = logging.makeLogRecord({**fields, **dict(zip(EXTRAS, extras, strict=True))})
                first = self.build_payload(record, line)["streams"][0]
                key = tuple(sorted(first["stream"].items()))
                stream = streams.get(key)
                if stream is None:
                    streams[key] = stream_of[source] = first
                    continue
                stream_of[source] = stream
            stream["values"].append([str(int(created * 1e9)), line])
        for stream in streams.values():
            stream["values"].sort(key=lambda entry: int(entry[0]))
        return {"streams": list(streams.values())}


@dataclass(frozen=True)
class LokiPacing:
    """How many records a ``LokiShipper`` holds and how it paces its pushes.

    These are the handler's ``shipper_options`` (``loki_options`` of ``setup_logging``).
    """

    #: Records held at most; while Loki is away the oldest beyond this are dropped.
    capacity: int = 10_000
    #: Records per push at most; a queue this long wakes the thread at once.
    batch_size: int = 1000
    #: Seconds between pushes; while Loki is away the wait doubles with each failed push.
    interval: float = 0.5
    #: The longest wait between pushes while Loki is away.
    max_backoff: float = 30.0
    #: Seconds each push may take.
    timeout: float = 3.0
    #: Seconds a flush waits unless told otherwise, as at exit.
    exit_timeout: float = 2.0

    def backoff(self, failures: int) -> float:
        """The wait before the next push after ``failures`` failed ones in a row."""
        return min(self.max_backoff, self.interval * 2**failures)


class LokiShipper:
    """A bounded queue of records and the one background thread that pushes them to Loki.

    ``enqueue`` is all the caller's thread does. The thread starts with the first
    record of each process: the task cluster sets the site up and then forks its
    workers, and a thread does not survive a fork, so a child starts its own (see
    ``_after_fork``).
    """

    def __init__(self, emitter: LokiEmitter, pacing: LokiPacing) -> None:
        self.emitter = emitter
        self.pacing = pacing
        self._reset()
        _live_shippers.add(self)

    def _reset(self) -> None:
        """Fresh state: at construction, and in a forked child (whose parent ships its own queue)."""
        self._queue: collections.deque[Queued] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.thread_id: int | None = None
        self._in_flight = 0
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.last_error: str | None = None
        self.outage_since: float | None = None
        self._dropped_at_outage = 0
        self._last_rejection_warning = 0.0
        self.emitter._session = None  # a requests session's sockets belong to the parent

    # --- the caller's side ------------------------------------------------------

    def enqueue(self, item: Queued) -> None:
        with self._lock:
            if len(self._queue) >= self.pacing.capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            full = len(self._queue) >= self.pacing.batch_size
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            thread = threading.Thread(target=self._run, name="loki-shipper", daemon=True)
            self._thread = thread
        thread.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been sent (or given up); False on timeout."""
        if self._stop.is_set():  # closed: nothing will send what is left
            return not self._queue
        deadline = time.monotonic() + (self.pacing.exit_timeout if timeout is None else timeout)
        if self._thread is None:
            with self._lock:
                if not self._queue:
                    return True
            self._start()
        # One wake-up: the thread then sends until the queue is empty, or tries once
        # and backs off when Loki is away (not a retry every few milliseconds).
        self._wake.set()
        while time.monotonic() < deadline:
            with self._lock:
                if not self._queue and not self._in_flight:
                    return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float | None = None) -> None:
        """Flush within ``timeout`` (default ``exit_timeout``), then stop the thread."""
        if not self._stop.is_set():
            self.flush(timeout)
            self._stop.set()
            self._wake.set()

    def state(self) -> dict[str, Any]:
        """What the health check reports: backlog, counts, and the outage if there is one."""
        with self._lock:
            queued = len(self._queue) + self._in_flight
        since = self.outage_since
        return {
            "queued": queued,
            "sent": self.sent,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "last_error": self.last_error,
            "outage_since": None if since is None else _iso(since),
        }

    # --- the shipper thread ----------------------------------------------------

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        delay = self.pacing.interval
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._drain():
                failures, delay = 0, self.pacing.interval
            else:
                failures += 1
                delay = self.pacing.backoff(failures)

    def _drain(self) -> bool:
        """Push until the queue is empty; False when Loki is unreachable (the batch is kept)."""
        while True:
            with self._lock:
                count = min(len(self._queue), self.pacing.batch_size)
                batch = [self._queue.popleft() for _ in range(count)]
                self._in_flight = count
            if not batch:
                return True
            outcome = self._push(batch)
            with self._lock:
                self._in_flight = 0
                if outcome == "failed":
                    # Back at the front, oldest first; what no longer fits is the oldest.
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > self.pacing.capacity:
                        self._queue.popleft()
                        self.dropped += 1
            if outcome == "failed":
                return False

    def _push(self, batch: list[Queued]) -> str:
        try:
            body = self.emitter.build_batch(batch)
        except Exception as exc:  # a record that cannot be encoded must not block the queue
            self.rejected += len(batch)
            self._warn_rejected(f"{type(exc).__name__} building the push", len(batch))
            return "rejected"
        try:
            response = self.emitter.session.post(self.emitter.url, json=body, timeout=self.pacing.timeout)
        except requests.RequestException as exc:
            return self._failed(type(exc).__name__)
        status = response.status_code
        if 200 <= status < 300:
            self.sent += len(batch)
            self._recovered()
            return "sent"
        if 400 <= status < 500 and status not in (401, 403, 408, 429):
            # Loki refuses the content itself (a bad label, an entry too old): sending
            # it again cannot help, so it is counted and dropped; the file log has it.
            self.rejected += len(batch)
            self._recovered()
            first_line = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            self._warn_rejected(f"HTTP {status}: {first_line}", len(batch))
            return "rejected"
        return self._failed(f"HTTP {status}")

    def _failed(self, error: str) -> str:
        self.last_error = error
        if self.outage_since is None:
            self.outage_since = time.time()
            self._dropped_at_outage = self.dropped
            log.warning(
                "Loki unreachable (%s); retrying in the background. Up to %d records wait for it, "
                "older ones are dropped; the file log keeps everything.",
                error,
                self.pacing.capacity,
            )
        return "failed"

    def _recovered(self) -> None:
        if self.outage_since is not None:
            log.warning(
                "Loki reachable again after %.0f s; %d records were dropped meanwhile.",
                time.time() - self.outage_since,
                self.dropped - self._dropped_at_outage,
            )
            self.outage_since = None

    def _warn_rejected(self, error: str, count: int) -> None:
        self.last_error = error
        now = time.monotonic()
        if now - self._last_rejection_warning >= 60:  # at most one a minute
            self._last_rejection_warning = now
            log.warning("Loki rejected %d records (%s)", count, self.last_error)


class LokiShippingHandler(LokiHandler):
    """A logging handler whose ``emit`` only enqueues; see the module docstring.

    Usable from ``dictConfig`` (``"()": "monitor_client.loki.LokiShippingHandler"``)
    on Python 3.11 and 3.12, unlike the library's ``LokiQueueHandler``.
    """

    emitters = {"1": LokiEmitter}

    def __init__(
        self,
        url: str,
        application: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tags: dict[str, str] | None = None,
        **shipper_options: Any,
    ) -> None:
        check_loki_settings(url, username, password)
        auth = (username, password) if username and password else None
        super().__init__(
            push_url(url), tags={**(tags or {}), "application": application}, auth=auth, version="1"
        )
        self.shipper = LokiShipper(self.emitter, LokiPacing(**shipper_options))

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        # emit() is safe across threads by itself (the shipper's lock), so the
        # handler-wide lock that logging.Handler.handle takes is skipped.
        result = self.filter(record)
        if result:
            self.emit(result if isinstance(result, logging.LogRecord) else record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread is not None and record.thread == self.shipper.thread_id:
            return  # the shipper's own warnings and its HTTP library's logs stay out of Loki
        try:
            if self._message_only() and not record.exc_info and not record.stack_info:
                line = record.getMessage()  # what format() would give, at a third of the cost
            else:
                line = self.format(record)
        except Exception:
            logging.Handler.handleError(self, record)
            return
        if len(line) > LINE_MAX:
            line = line[:LINE_MAX] + " [cut]"
        extra = record.__dict__
        extras = (extra.get("tags"), extra.get("strategy"), extra.get("symbol"))  # in EXTRAS order
        self.shipper.enqueue((record.created, record.levelname, record.name, extras, line))

    def _message_only(self) -> bool:
        formatter = self.formatter
        return formatter is None or (type(formatter) is logging.Formatter and formatter._fmt == "%(message)s")

    def handleError(self, record: logging.LogRecord) -> None:
        # The library's version closes the emitter's session on every error.
        logging.Handler.handleError(self, record)

    def flush(self) -> None:
        # logging.shutdown() flushes every handler at exit: bounded by exit_timeout.
        self.shipper.flush()

    def close(self) -> None:
        self.shipper.close()
        super().close()


def shipping_health() -> dict[str, Any]:
    """The health check of log shipping in this process (non-vital).

    Not ok while Loki is unreachable; the backlog and the dropped count are
    reported either way.
    """
    shippers = [shipper for shipper in list(_live_shippers) if not shipper._stop.is_set()]
    if not shippers:
        return {"ok": True, "enabled": False}
    states = [shipper.state() for shipper in shippers]
    result: dict[str, Any] = {
        "ok": all(state["outage_since"] is None for state in states),
        "enabled": True,
        **{key: sum(state[key] for state in states) for key in ("queued", "sent", "dropped", "rejected")},
    }
    outages = sorted(state["outage_since"] for state in states if state["outage_since"])
    if outages:
        result["outage_since"] = outages[0]
        errors = [state["last_error"] for state in states if state["outage_since"]]
        result["reason"] = f"Loki unreachable since {outages[0]} ({errors[0]})"
    return result


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


_live_shippers: weakref.WeakSet[LokiShipper] = weakref.WeakSet()


def _after_fork() -> None:
    # The child inherits the queue (its parent ships those records), locks that may
    # be held by a thread that no longer exists, and no shipper thread at all.
    for shipper in list(_live_shippers):
        stopped = shipper._stop.is_set()
        shipper._reset()
        if stopped:
            shipper._stop.set()


def _flush_at_exit() -> None:
    for shipper in list(_live_shippers):
        shipper.close()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_flush_at_exit)
