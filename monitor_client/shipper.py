"""The way from the bot's spool to the site: one background thread, never in the bot's way.

The shipper reads the spool (``monitor_client.spool``) from its acknowledged position,
sends trades to ``POST /api/v1/trades/`` in batches and events to ``POST /api/v1/events/``
one by one, and acknowledges only what the site's own answer says it stored. While the
site is down it retries with exponential backoff and jitter (a replay stores nothing
twice: trades carry ``external_id``, events ``event_id``). A record the site refuses for
good is parked in the dead-letter file, so it never blocks the ones behind it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from monitor_client.spool import Position, Record, Spool

log = logging.getLogger("monitor_client")

API = "/api/v1/"
MAX_BATCH_BYTES = 4 * 1024 * 1024  # well under the site's MAX_BODY_BYTES (10 MB)
USER_AGENT = "monitor-client/1.0"


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

    def trading_status(self) -> tuple[bool, str] | None:
        """``GET status/``: whether the site's risk rules allow trading, and why; None when
        the site cannot be asked or answers something else than its status."""
        try:
            response = self.request("GET", "status/")
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
        return allowed, str(body.get("reason", ""))

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True)
class SitePacing:
    """How the shipper paces its requests to the site (the defaults are ``Monitor``'s)."""

    #: Trades per request at most.
    batch_size: int
    #: Seconds before the first retry while the site is down; each failure doubles it, up to
    #: ``backoff_max``.
    backoff_base: float
    backoff_max: float
    #: The slower pace after a 401/403 or a wrong URL.
    auth_retry: float
    #: Seconds that let a burst of fills gather into one request.
    linger: float

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` failed attempts in a row: exponential, with jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(failures - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class Shipper:
    """Ships one spool to the site from a daemon thread (``start``), and holds the newest
    heartbeat until it is sent.

    Without a ``site`` nothing is shipped: records wait in the spool for a process that
    has one. ``host`` gives the host's figures, called on this thread as each heartbeat is
    sent (so the bot's thread never waits for them).
    """

    def __init__(
        self,
        spool: Spool,
        site: SiteConnection | None,
        *,
        url: str,
        dead_letter_path: Path,
        pacing: SitePacing,
        host: Callable[[], dict[str, Any]] | None = None,
    ):
        self.spool = spool
        self.host = host
        self._host_failed = False
        self.site = site
        self.url = url
        self.dead_letter_path = dead_letter_path
        self.pacing = pacing
        self._wake = threading.Event()  # new records or a heartbeat
        self._hurry = threading.Event()  # cut a backoff short: flush() or close()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._heartbeat_lock = threading.Lock()
        self.pending_heartbeat: dict[str, Any] | None = None
        self._problem: str | None = None  # the current trouble, logged once per change
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.site is not None:
            self._thread = threading.Thread(target=self._ship_forever, name="monitor-shipper", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Records were spooled: ship them soon."""
        if not self._wake.is_set():
            self._wake.set()

    def send_heartbeat(self, beat: dict[str, Any]) -> None:
        """Send ``beat`` next; it replaces one still waiting, the newest heartbeat wins."""
        with self._heartbeat_lock:
            self.pending_heartbeat = beat
        self._wake.set()

    def drop_heartbeat(self) -> None:
        """Forget a heartbeat not yet taken for sending (the bot said it shut down)."""
        with self._heartbeat_lock:
            self.pending_heartbeat = None

    def wait_until_acked(self, target: Position, timeout: float) -> bool:
        """Wait until the site stored everything before ``target``; False after ``timeout``."""
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

    def stop(self) -> None:
        self._stopping.set()
        self._hurry.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self.site:
            self.site.close()

    def _ship_forever(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                did_work = self._ship_once()
            except _Retry as retry:
                failures += 1
                delay = retry.delay if retry.delay is not None else self.pacing.backoff(failures)
                self._trouble(str(retry))
                self._hurry.wait(delay)
                self._hurry.clear()
                continue
            except Exception as exc:  # a bug must not stop shipping for good
                failures += 1
                log.exception("The shipper failed unexpectedly; retrying")
                self._trouble(f"unexpected {type(exc).__name__}")
                self._hurry.wait(self.pacing.backoff(failures))
                self._hurry.clear()
                continue
            if failures:
                log.info("The site takes data again; the spool is being shipped.")
                failures = 0
                self._problem = None
            if not did_work:
                self._wake.wait(1.0)
                if self.pacing.linger and not self._stopping.is_set() and not self._hurry.is_set():
                    # Let a burst of fills gather into one request.
                    time.sleep(self.pacing.linger)

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
        with self._heartbeat_lock:
            beat, self.pending_heartbeat = self.pending_heartbeat, None
        if beat is not None:
            try:
                self._send_heartbeat(beat)
            except _Retry:
                with self._heartbeat_lock:
                    if self.pending_heartbeat is None:
                        self.pending_heartbeat = beat
                raise
        records = self.spool.read(self.pacing.batch_size, MAX_BATCH_BYTES)
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

    def _host_figures(self) -> dict[str, Any]:
        """The host's figures now; none when the sampler fails (it should not: it never raises)."""
        try:
            return self.host() if self.host is not None else {}
        except Exception:
            if not self._host_failed:  # said once, not every beat
                self._host_failed = True
                log.debug("The host figures failed; heartbeats go without them", exc_info=True)
            return {}

    def _send_heartbeat(self, beat: dict[str, Any]) -> None:
        # A copy: ``beat`` is the Monitor's latest, repeated by its heartbeat thread; a retry
        # takes the figures afresh.
        host = self._host_figures()
        response = self._post("heartbeat/", json.dumps({**beat, "host": host} if host else beat).encode())
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
                self.pacing.auth_retry,
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
        assert self.site is not None
        response = self.site.request("POST", path, body)
        status = response.status_code
        if status < 300 or status in (400, 413):
            return response
        if status in (401, 403):
            raise _Retry(
                f"the site refused the key ({status}: {_detail(response)}); check MONITOR_KEY, "
                "it must be the bot's write key",
                self.pacing.auth_retry,
            )
        if status == 429:
            raise _Retry("429 too many requests", _retry_after(response))
        if status >= 500:
            raise _Retry(f"the site answered {status}")
        where = f" (redirected to {response.headers.get('Location')})" if response.is_redirect else ""
        raise _Retry(
            f"the site answered {status} for {path}{where}: is MONITOR_URL right?", self.pacing.auth_retry
        )

    def _park(self, records: list[Record], error: Any) -> None:
        """Move records the site refused for good to the dead-letter file, and say so."""
        now = dt.datetime.now(dt.UTC).isoformat()
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
