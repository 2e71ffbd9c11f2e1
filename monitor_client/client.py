"""The bot's side of the monitoring site: record trades, report health, ask for permission.

``Monitor`` never slows or crashes the bot. ``record_trade`` and ``event`` check their
input on the caller's thread (``monitor_client.checks``: a mistake there is the bot's
bug, so it raises ``ValueError`` at once instead of failing forever later), append to
the durable spool (``monitor_client.spool``) and return. A background thread
(``monitor_client.shipper``) sends the spool to the site, retrying while it is down.
Only ``flush`` and ``trading_allowed`` wait for the network, each bounded by a timeout.
Heartbeats carry the bot's state (``heartbeat``, ``report_positions``) and the host's
figures (``monitor_client.host``), the latter gathered by the shipper's thread as it
sends the beat, so no call of the bot waits for them.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

from monitor_client.checks import bot_state, event_json, heartbeat_body, trade_json
from monitor_client.host import HostSampler
from monitor_client.shipper import Shipper, SiteConnection, SitePacing
from monitor_client.spool import DEFAULT_MAX_BYTES, Spool
from monitor_client.wire import MAX_BATCH

log = logging.getLogger("monitor_client")


class Monitor:
    """Reports one bot's trades, heartbeats and events to the site; see docs/BOT_INTEGRATION.md.

    ``url`` and ``key`` default to ``MONITOR_URL`` and ``MONITOR_KEY``; without them
    everything is spooled and nothing shipped. ``spool_dir`` (default ``data/spool``
    under the working directory) belongs to this process alone. ``fail_open`` decides
    ``trading_allowed`` before the site ever answered. ``timeout`` bounds each request
    of the shipper, ``status_timeout`` the status check, cached ``status_ttl`` seconds.
    ``backoff_base``/``backoff_max`` shape the retries while the site is down;
    ``auth_retry`` is the slower pace after a 401/403 or a wrong URL. ``state_max_age``
    is how long the positions, equity and cash reported last go with the heartbeats (5 min:
    report them at least that often; a stale mark is not sent as current). ``clock`` is for
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
        state_max_age: float = 300.0,
    ):
        self.url = (url if url is not None else os.environ.get("MONITOR_URL", "")).strip()
        key = (key if key is not None else os.environ.get("MONITOR_KEY", "")).strip()
        self.fail_open = fail_open
        self.status_ttl = status_ttl
        self._clock = clock
        # Positions, equity and cash go with the heartbeats only this long after the bot last
        # reported them: a stalled trading loop's marks are not sent again as if current.
        self.state_max_age = state_max_age
        self._state_at: float | None = None
        self.spool = Spool(
            spool_dir if spool_dir is not None else Path.cwd() / "data" / "spool",
            max_bytes=spool_max_bytes,
            sync_interval=sync_interval,
            clock=clock,
        )
        self.dead_letter_path = self.spool.directory / "dead_letter.jsonl"
        configured = bool(self.url and key)
        if not configured:
            log.warning(
                "MONITOR_URL or MONITOR_KEY is not set: trades are kept in the spool %s and "
                "shipped once a Monitor with both runs on it.",
                self.spool.directory,
            )
        self._status_site = SiteConnection(self.url, key, status_timeout) if configured else None
        self._shipper = Shipper(
            self.spool,
            SiteConnection(self.url, key, timeout) if configured else None,
            url=self.url,
            dead_letter_path=self.dead_letter_path,
            # The disk figures are those of the spool folder's file system.
            host=HostSampler(self.spool.directory),
            pacing=SitePacing(
                batch_size=max(1, min(batch_size, MAX_BATCH)),
                backoff_base=backoff_base,
                backoff_max=backoff_max,
                auth_retry=auth_retry,
                linger=linger,
            ),
        )
        self._last_heartbeat: dict[str, Any] = {"status": "running", "details": {}}
        # The bot's state as last reported (positions, equity, cash): every heartbeat carries it.
        self._state: dict[str, Any] = {}
        self._state_lock = threading.Lock()
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._status_lock = threading.Lock()
        self._status: bool | None = None
        self._status_reason = ""
        self._status_checked_at: float | None = None
        self._status_failing = False
        self._crash_hook_installed = False
        self._closed = False
        # Whether the site heard the bot is running (a heartbeat) and since then it shut down (a
        # ``shutdown`` event) or crashed: close() says "shutdown" only for a bot that ran and did not.
        self._heartbeat_sent = False
        self._shutdown_sent = False
        self._crashed = False
        self._shipper.start()
        atexit.register(self._at_exit)

    @property
    def batch_size(self) -> int:
        """Trades per request: as asked, but never more than the site takes."""
        return self._shipper.pacing.batch_size

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
        payload = trade_json(external_id, symbol, side, quantity, price, strategy, pnl, executed_at, metadata)
        return self._spool_record(b"T", payload)

    def event(self, kind: str, level: str = "info", message: str = "", **details: Any) -> bool:
        """Report something about the bot (kinds and levels of the API), through the spool,
        so that an event from a crash is not lost while the site is down. Each event gets a
        fresh ``event_id`` stored with it in the spool, so a retry after a timeout or an
        outage (or after a restart) sends the same id and the site stores and alerts it once.

        A ``shutdown`` stops the heartbeat thread first and forgets a heartbeat not yet sent: the
        site shows the bot "stopped" until a heartbeat says it runs again, so none may follow the
        shutdown by accident."""
        payload = event_json(kind, level, message, details)
        if kind.strip().lower() == "shutdown":  # event_json checked it is a str of the kinds
            self.stop_heartbeats()
            self._shipper.drop_heartbeat()
            self._shutdown_sent = True
        return self._spool_record(b"E", payload)

    def heartbeat(
        self,
        status: str = "running",
        positions: Any = None,
        equity: int | float | Decimal | None = None,
        cash: int | float | Decimal | None = None,
        **details: Any,
    ) -> None:
        """Tell the site the bot is alive; sent by the shipper, the newest one wins.

        ``positions``, ``equity`` and ``cash`` report the bot's state as ``report_positions``
        does (None: unchanged); the beat carries the latest state reported, and the host's
        figures, added by the shipper's thread as it sends it. The heartbeat thread
        (``start_heartbeats``) repeats the latest status, details and state. Raises
        ``ValueError`` for a malformed position or amount, before anything is changed.
        """
        beat = heartbeat_body(status, details)
        state = bot_state(positions, equity, cash)
        with self._state_lock:
            if state:
                self._state = {**self._state, **state}
                self._state_at = self._clock()
            beat.update(self._state)
            self._last_heartbeat = beat
        beat = self._fresh(beat)
        self._heartbeat_sent, self._shutdown_sent = True, False
        self._shipper.send_heartbeat(beat)

    def report_positions(
        self,
        positions: Any,
        equity: int | float | Decimal | None = None,
        cash: int | float | Decimal | None = None,
    ) -> None:
        """Keep the bot's open positions (and the account's equity and cash, when given) for
        the heartbeats: sent with the next one, at once when the heartbeat thread runs, and
        repeated by it until the next report.

        ``positions`` is a list (an empty one: flat), each position a dict with the keys
        ``symbol``, ``quantity``, ``avg_price`` and ``market_price`` or a tuple of those four in
        that order; ``quantity`` is signed (negative: short). At most ``wire.MAX_POSITIONS``,
        each symbol once, numbers as a trade's (finite, 8 places, 15 significant digits,
        within ``MAX_QUANTITY`` / ``MAX_PRICE``; equity and cash within ``MAX_ABS_MONEY``).
        A mistake raises ``ValueError`` at once, naming the position and field.
        """
        state = bot_state(positions, equity, cash)
        with self._state_lock:
            self._state = {**self._state, **state}
            self._state_at = self._clock()
            beat = self._last_heartbeat = {**self._last_heartbeat, **self._state}
        thread = self._heartbeat_thread
        if thread is not None and thread.is_alive() and not self._heartbeat_stop.is_set():
            self._shipper.send_heartbeat(beat)

    def start_heartbeats(self, every: float = 60.0) -> None:
        """Send a heartbeat now and every ``every`` seconds from a daemon thread."""
        if self._heartbeat_thread and self._heartbeat_thread.is_alive():
            return
        self._heartbeat_stop.clear()
        self._heartbeat_sent, self._shutdown_sent = True, False

        def beat() -> None:
            while True:
                self._shipper.send_heartbeat(self._fresh(self._last_heartbeat))
                if self._heartbeat_stop.wait(every):
                    return

        self._heartbeat_thread = threading.Thread(target=beat, name="monitor-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def _fresh(self, beat: dict[str, Any]) -> dict[str, Any]:
        """``beat`` without the bot's positions, equity and cash once they are older than
        ``state_max_age``: the site then sees them as not reported (its rules judge realized
        P&L alone, the cockpit shows the last positions as of their time) rather than as current."""
        at = self._state_at
        if at is None or self._clock() - at <= self.state_max_age:
            return beat
        return {key: value for key, value in beat.items() if key not in ("positions", "equity", "cash")}

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
        answer = self._status_site.trading_status() if self._status_site else None
        if answer is None:
            return None
        allowed, reason = answer
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
        self._crashed = True  # close() at exit must not call the crash a shutdown
        try:
            lines = traceback.format_exception(kind, exc, tb)
            summary = f"{kind.__name__}: {exc}"
            self.event(
                "crash",
                "critical",
                f"Unhandled exception in thread {thread}: {summary}",
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
        if not self._shipper.running:
            return False
        return self._shipper.wait_until_acked(target, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop heartbeats, ship what is spooled (up to ``timeout``), stop the threads.

        A bot that sent heartbeats and neither reported a ``shutdown`` since nor crashed
        gets one here ("monitor closed"), so the site shows it stopped, not silent.
        Returns whether everything was shipped; anything left stays in the spool for
        the next start.
        """
        if self._closed:
            return not self.spool.pending()
        if self._heartbeat_sent and not self._shutdown_sent and not self._crashed:
            try:
                self.event("shutdown", "info", "Monitor closed", reason="monitor closed")
            except Exception:
                log.exception("Could not report the shutdown")
        self.stop_heartbeats()
        shipped = self.flush(timeout)
        self._closed = True
        self._shipper.stop()
        self.spool.close()
        if self._status_site:
            self._status_site.close()
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
        self._shipper.wake()
        return True
