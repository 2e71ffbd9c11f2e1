"""The bot-side client against the real site under its web server, over real sockets."""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from monitor_client import Monitor
from tests.harness import POLL_SECONDS, ROOT, Site, free_port, site_queue_length, start_web, stop

pytestmark = pytest.mark.server

# Quick retries, so that tests of outages do not wait out production backoffs.
FAST = {"backoff_base": 0.05, "backoff_max": 0.5, "auth_retry": 0.5, "linger": 0.0}


def query(site: Site, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the site's own database, as the admin would see it."""
    return site.sql(sql, *params)


def stored_ids(site: Site) -> list[str]:
    return [row[0] for row in query(site, "SELECT external_id FROM trades_trade")]


def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


def restart_site(site: Site) -> None:
    """The site comes back on the address it had."""
    start_web(site, int(site.url.rsplit(":", 1)[1]), threads=2)

    def answers() -> bool:
        try:
            return requests.get(f"{site.url}/api/v1/health/", timeout=10).status_code in (200, 503)
        except requests.RequestException:  # refused while starting, or slow on a busy machine
            return False

    eventually(answers, timeout=90, what="the site answering again")


def dead_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def key(site: Site) -> str:
    return site.create_bot("client-bot")


@pytest.fixture
def monitors() -> Iterator[list[Monitor]]:
    made: list[Monitor] = []
    yield made
    for monitor in made:
        monitor.close(timeout=1)


@pytest.fixture
def make_monitor(tmp_path: Path, monitors: list[Monitor]) -> Callable[..., Monitor]:
    def make(url: str, key: str, **options: Any) -> Monitor:
        options = {**FAST, **options}
        monitor = Monitor(url, key, options.pop("spool_dir", tmp_path / "spool"), **options)
        monitors.append(monitor)
        return monitor

    return make


def record(monitor: Monitor, count: int, prefix: str = "ord", **fields: Any) -> list[str]:
    ids = [f"{prefix}-{n}" for n in range(count)]
    for n, external_id in enumerate(ids):
        trade: dict[str, Any] = {
            "external_id": external_id,
            "symbol": "AAPL",
            "side": "BUY" if n % 2 else "sell",
            "quantity": 10 + n % 7,
            "price": 187.25,
            "strategy": "momentum",
            "pnl": None if n % 2 else Decimal("-1.25"),
        }
        trade.update(fields)
        assert monitor.record_trade(**trade)
    return ids


# --- trades --------------------------------------------------------------------


def test_trades_reach_the_database_exactly_once(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(site.url, key)
    ids = record(monitor, 2500)  # more than one batch
    executed = dt.datetime(2026, 1, 15, 10, 31, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    monitor.record_trade(
        external_id="exact",
        symbol="msft",
        side="buy",
        quantity=Decimal("0.12345678"),
        price=Decimal("412.10000001"),
        pnl=0.1 + 0.2,
        executed_at=executed,
        order_type="limit",
        fee=Decimal("0.35"),
    )
    assert monitor.flush(timeout=60)
    # The bot replays its fills after a restart: nothing is stored twice.
    record(monitor, 2500)
    assert monitor.flush(timeout=60)

    stored = stored_ids(site)
    assert sorted(stored) == sorted([*ids, "exact"])
    answer = requests.get(
        f"{site.url}/api/v1/trades/",
        params={"symbol": "MSFT"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).json()["results"][0]
    assert Decimal(str(answer["quantity"])) == Decimal("0.12345678")
    assert Decimal(str(answer["price"])) == Decimal("412.10000001")
    assert Decimal(str(answer["pnl"])) == Decimal("0.3")
    assert dt.datetime.fromisoformat(answer["executed_at"]) == executed
    assert answer["side"] == "BUY"
    assert answer["metadata"] == {"order_type": "limit", "fee": "0.35"}
    assert not monitor.spool.pending()


def test_trade_time_defaults_to_when_it_was_recorded_not_when_shipped(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(dead_url(), key)
    before = dt.datetime.now(dt.UTC)
    record(monitor, 1)
    recorded = dt.datetime.now(dt.UTC)
    monitor.close(timeout=0.5)
    time.sleep(2)  # the gap between recording and shipping that must not show in the trade
    later = make_monitor(site.url, key, spool_dir=monitor.spool.directory)
    assert later.flush(timeout=30)
    (executed_at,) = query(site, "SELECT executed_at FROM trades_trade")[0]
    moment = dt.datetime.fromisoformat(executed_at).replace(tzinfo=dt.UTC)
    assert before <= moment <= recorded  # and so 2 s before it was shipped


def test_site_down_for_a_while_then_up_loses_and_doubles_nothing(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(site.url, key)
    first = record(monitor, 200, prefix="before")
    assert monitor.flush(timeout=60)

    stop(site.processes[0])  # the site goes down
    during = record(monitor, 1500, prefix="during")
    monitor.event("connection_lost", "warning", "broker feed dropped", feed="iex")
    assert monitor.flush(timeout=1) is False
    assert monitor.spool.pending()

    restart_site(site)
    after = record(monitor, 50, prefix="after")
    assert monitor.flush(timeout=60)
    stored = stored_ids(site)
    assert len(stored) == len(set(stored))
    assert set(stored) == {*first, *during, *after}
    events = query(site, "SELECT kind, level, message FROM trades_botevent")
    assert events == [("connection_lost", "warning", "broker feed dropped")]


SIGKILLED_BOT = """
import sys
from monitor_client import Monitor
monitor = Monitor(sys.argv[1], sys.argv[2], sys.argv[3], backoff_base=0.05, backoff_max=0.2)
for n in range(int(sys.argv[4])):
    monitor.record_trade(external_id=f"fill-{n}", symbol="NVDA", side="BUY", quantity=1, price=100 + n % 10)
print("recorded", flush=True)
monitor.event("custom", "info", "after the trades")
import time
time.sleep(600)
"""


@pytest.mark.parametrize("reachable", [True, False], ids=["site-up-mid-shipping", "site-unreachable"])
def test_bot_killed_right_after_record_trade_loses_nothing(
    site: Site, key: str, tmp_path: Path, make_monitor: Callable[..., Monitor], reachable: bool
) -> None:
    count = 3000
    spool = tmp_path / "spool"
    url = site.url if reachable else dead_url()
    bot = subprocess.Popen(
        [sys.executable, "-c", SIGKILLED_BOT, url, key, str(spool), str(count)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bot.stdout is not None
        assert bot.stdout.readline().strip() == "recorded"
        bot.send_signal(signal.SIGKILL)
        assert bot.wait(30) == -signal.SIGKILL
    finally:
        if bot.poll() is None:
            bot.kill()
    if not reachable:
        assert stored_ids(site) == []

    restarted = make_monitor(site.url, key, spool_dir=spool)
    assert restarted.flush(timeout=60)
    stored = stored_ids(site)
    assert len(stored) == count
    assert set(stored) == {f"fill-{n}" for n in range(count)}


def test_a_poison_trade_is_parked_and_never_blocks_the_others(
    site: Site, key: str, make_monitor: Callable[..., Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="monitor_client")
    monitor = make_monitor(site.url, key)
    # Within the wire contract the bot checks, refused by the site's own bounds (a units bug
    # in the bot, metadata too large to store).
    record(monitor, 300, prefix="good-a")
    monitor.record_trade(external_id="poison-price", symbol="AAPL", side="BUY", quantity=1, price=2e7)
    record(monitor, 300, prefix="good-b")
    monitor.record_trade(
        external_id="poison-metadata", symbol="AAPL", side="BUY", quantity=1, price=10, note="x" * 5000
    )
    record(monitor, 5, prefix="good-c")
    assert monitor.flush(timeout=60)

    stored = set(stored_ids(site))
    assert len(stored) == 605
    assert not stored & {"poison-price", "poison-metadata"}
    parked = [json.loads(line) for line in monitor.dead_letter_path.read_text().splitlines()]
    assert {item["record"]["external_id"]: set(item["error"]) for item in parked} == {
        "poison-price": {"price"},
        "poison-metadata": {"metadata"},
    }
    assert "poison-price" in caplog.text and "refused" in caplog.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"side": "HOLD"}, "side must be BUY or SELL"),
        ({"executed_at": dt.datetime(2026, 1, 15, 10, 31)}, "timezone-aware"),
        ({"quantity": 0}, "quantity must be greater than 0"),
        ({"quantity": True}, "quantity must be a number"),
        ({"price": "187.25"}, "price must be a number"),
        ({"price": float("nan")}, "price must be a finite number"),
        ({"pnl": Decimal("0.123456789")}, "more than 8 decimal places"),
        ({"external_id": ""}, "external_id"),
        ({"symbol": " "}, "symbol"),
        ({"symbol": "BRK B"}, "symbol"),
        ({"symbol": "A" * 33}, "symbol"),
        ({"strategy": "s" * 101}, "strategy"),
        ({"pnl": Decimal("12345678.12345678")}, "more than 15 significant digits"),
    ],
)
def test_a_trade_the_site_would_refuse_forever_raises_on_the_callers_thread(
    tmp_path: Path, make_monitor: Callable[..., Monitor], fields: dict[str, Any], message: str
) -> None:
    monitor = make_monitor(dead_url(), "key")
    trade = {"external_id": "x", "symbol": "AAPL", "side": "BUY", "quantity": 1, "price": 10, **fields}
    before = monitor.spool.end()
    with pytest.raises(ValueError, match=message):
        monitor.record_trade(**trade)
    assert monitor.spool.end() == before, "nothing was spooled"


def test_a_wrong_key_is_logged_clearly_and_trades_wait_in_the_spool(
    site: Site,
    key: str,
    tmp_path: Path,
    make_monitor: Callable[..., Monitor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor_client")
    wrong = make_monitor(site.url, "not-a-key")
    ids = record(wrong, 20)
    assert wrong.flush(timeout=1) is False
    eventually(lambda: "MONITOR_KEY" in caplog.text, what="the key problem is logged")
    assert any(r.levelno == logging.ERROR and "401" in r.message for r in caplog.records)
    assert "not-a-key" not in caplog.text, "the key is never logged"
    wrong.close(timeout=0.5)

    right = make_monitor(site.url, key, spool_dir=wrong.spool.directory)
    assert right.flush(timeout=30)
    assert sorted(stored_ids(site)) == sorted(ids)


# --- heartbeats, events, crashes -----------------------------------------------


def test_heartbeat_thread_keeps_reporting_until_closed(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(site.url, key)

    def last_beat() -> tuple[Any, ...] | None:
        rows = query(
            site, "SELECT last_heartbeat_at, last_heartbeat_status FROM trades_bot WHERE name='client-bot'"
        )
        return rows[0] if rows[0][0] else None

    monitor.start_heartbeats(every=0.2)
    first, status = eventually(last_beat, what="a first heartbeat")
    assert status == "running"
    eventually(lambda: last_beat()[0] != first, what="a second heartbeat")  # type: ignore[index]
    monitor.heartbeat("paused", reason="market closed")
    eventually(lambda: last_beat()[1] == "paused", what="the explicit heartbeat")  # type: ignore[index]
    paused_at = last_beat()[0]  # type: ignore[index]
    # The thread repeats the latest status rather than going back to "running".
    eventually(lambda: last_beat()[0] != paused_at, what="a repeated heartbeat")  # type: ignore[index]
    assert last_beat()[1] == "paused"  # type: ignore[index]
    monitor.close(timeout=5)
    assert not any(t.name == "monitor-heartbeat" and t.is_alive() for t in threading.enumerate())


def test_closing_a_monitor_that_beat_says_shutdown_once_and_no_heartbeat_follows(
    site: Site, key: str, make_monitor: Callable[..., Monitor], tmp_path: Path
) -> None:
    def shutdowns() -> list[tuple[Any, ...]]:
        return query(site, "SELECT message FROM trades_botevent WHERE kind = 'shutdown' ORDER BY id")

    def stopped() -> tuple[Any, ...]:
        return query(site, "SELECT stopped_at, last_heartbeat_at FROM trades_bot WHERE name='client-bot'")[0]

    quiet = make_monitor(site.url, key, spool_dir=tmp_path / "quiet")
    record(quiet, 1, prefix="quiet")
    assert quiet.close(timeout=30)
    assert shutdowns() == [] and stopped()[0] is None  # it never said it ran: nothing to stop

    closed = make_monitor(site.url, key, spool_dir=tmp_path / "closed")
    closed.start_heartbeats(every=0.05)
    eventually(lambda: stopped()[1], what="a heartbeat")
    assert closed.close(timeout=30)
    assert shutdowns() == [("Monitor closed",)]
    # Stopped: a heartbeat stored after the shutdown would have said the bot runs again.
    assert stopped()[0] is not None

    # A bot that reports its own shutdown while its heartbeat thread races: that one shutdown, and
    # no heartbeat after it (the site would call the bot running again).
    own = make_monitor(site.url, key, spool_dir=tmp_path / "own")
    own.start_heartbeats(every=0.01)
    eventually(lambda: stopped()[0] is None, what="the heartbeat that says it runs again")
    own.event("shutdown", "info", "Bot stopped")
    assert own.flush(timeout=30)
    # A fixed wait, as the assertion is that something does not happen: 50 heartbeat periods.
    time.sleep(0.5)
    assert stopped()[0] is not None
    assert own.close(timeout=30)
    assert shutdowns() == [("Monitor closed",), ("Bot stopped",)]
    assert stopped()[0] is not None


def test_events_reach_the_site_with_their_details(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(site.url, key)
    monitor.event("startup", "info", "bot v1.2 starting", version="1.2", symbols=["AAPL"])
    record(monitor, 3)
    monitor.event("risk_limit", "critical", "exposure above limit", exposure=Decimal("125000.50"))
    with pytest.raises(ValueError, match="kind must be one of"):
        monitor.event("exploded", "info", "no such kind")
    assert monitor.flush(timeout=30)
    rows = query(site, "SELECT kind, level, message, details FROM trades_botevent ORDER BY id")
    assert [(kind, level, message) for kind, level, message, _ in rows] == [
        ("startup", "info", "bot v1.2 starting"),
        ("risk_limit", "critical", "exposure above limit"),
    ]
    assert json.loads(rows[1][3]) == {"exposure": "125000.50"}


CRASHING_BOT = """
import sys, threading
from monitor_client import Monitor
monitor = Monitor(sys.argv[1], sys.argv[2], sys.argv[3])
monitor.install_crash_hook(timeout=20)
monitor.record_trade(external_id="before-crash", symbol="TSLA", side="SELL", quantity=3, price=250, pnl=-12.5)
def place_orders():
    raise RuntimeError("broker rejected order: insufficient buying power")
if sys.argv[4] == "thread":
    worker = threading.Thread(target=place_orders, name="order-router")
    worker.start()
    worker.join()
    sys.exit(0)
place_orders()
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_crash_hook_reports_an_unhandled_exception_before_the_process_dies(
    site: Site, key: str, tmp_path: Path, where: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_BOT, site.url, key, str(tmp_path / "spool"), where],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == (1 if where == "main" else 0)
    assert "RuntimeError: broker rejected order" in result.stderr, "the usual traceback still prints"
    rows = query(site, "SELECT kind, level, message, details FROM trades_botevent")
    assert len(rows) == 1
    kind, level, message, details = rows[0]
    assert (kind, level) == ("crash", "critical")
    assert "RuntimeError: broker rejected order: insufficient buying power" in message
    details = json.loads(details)
    assert details["exception"] == "RuntimeError"
    assert details["thread"] == ("MainThread" if where == "main" else "order-router")
    assert "place_orders" in details["traceback"]
    assert stored_ids(site) == ["before-crash"]


# --- trading_allowed -----------------------------------------------------------


class StatusSite:
    """A loopback stand-in for ``GET /api/v1/status/`` whose answer the test sets and counts."""

    def __init__(self) -> None:
        self.allowed = True
        self.requests = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests += 1
                body = json.dumps(
                    {
                        "trading_allowed": site.allowed,
                        "reason": "daily loss limit",
                        "bot": "b",
                        "checked_at": "x",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self.thread.start()

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def status_site() -> Iterator[StatusSite]:
    instance = StatusSite()
    yield instance
    instance.shutdown()


def test_trading_allowed_reads_the_real_sites_status(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    assert make_monitor(site.url, key).trading_allowed() is True


def test_trading_allowed_is_cached_briefly(
    status_site: StatusSite, make_monitor: Callable[..., Monitor]
) -> None:
    clock = Clock()
    monitor = make_monitor(status_site.url, "key", status_ttl=5, clock=clock)
    assert monitor.trading_allowed() is True
    status_site.allowed = False
    clock.now += 4.9
    assert monitor.trading_allowed() is True
    assert status_site.requests == 1
    clock.now += 0.2
    assert monitor.trading_allowed() is False
    assert status_site.requests == 2


def test_trading_allowed_keeps_the_last_answer_while_the_site_is_unreachable(
    status_site: StatusSite, make_monitor: Callable[..., Monitor]
) -> None:
    clock = Clock()
    status_site.allowed = False
    monitor = make_monitor(status_site.url, "key", status_ttl=5, clock=clock, fail_open=True)
    assert monitor.trading_allowed() is False
    status_site.shutdown()
    clock.now += 60
    assert monitor.trading_allowed() is False, "a halt stays a halt while the site is down"


@pytest.mark.parametrize("fail_open", [True, False])
def test_trading_allowed_fails_open_or_closed_as_configured_with_no_answer_yet(
    make_monitor: Callable[..., Monitor], fail_open: bool
) -> None:
    clock = Clock()
    monitor = make_monitor(dead_url(), "key", fail_open=fail_open, clock=clock)
    assert monitor.trading_allowed() is fail_open
    assert monitor.trading_allowed(fail_open=not fail_open) is (not fail_open)


# --- bounded waits ---------------------------------------------------------------


@pytest.fixture
def hanging_url() -> Iterator[str]:
    """A socket that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stopping.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stopping.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_flush_and_trading_allowed_are_bounded_when_the_site_hangs(
    hanging_url: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(hanging_url, "key", timeout=60, status_timeout=1, fail_open=False)
    record(monitor, 5)
    started = time.monotonic()
    assert monitor.flush(timeout=1) is False
    assert time.monotonic() - started < 10  # the request itself would wait 60 s
    started = time.monotonic()
    assert monitor.trading_allowed() is False
    assert time.monotonic() - started < 10
    started = time.monotonic()
    assert monitor.close(timeout=1) is False
    assert time.monotonic() - started < 15
    assert monitor.spool.acked < monitor.spool.end(), "what was not shipped stays spooled"


# --- an unhealthy site: 5xx, 429, a batch refused as a whole ----------------------


class FlakyFront:
    """A loopback front of the real site, like a load balancer having a bad day.

    ``answers`` is a list of canned replies (status, headers, body) given in turn to
    trade posts before they are forwarded; ``refuse_over`` answers 400 without item
    indices (as for a too-large body) to any batch with more trades than that.
    """

    def __init__(
        self,
        target: str,
        answers: list[tuple[int, dict[str, str], bytes]],
        refuse_over: int = 0,
        lose_event_answers: int = 0,
    ):
        self.answers = list(answers)
        self.refuse_over = refuse_over
        # Events forwarded to the site whose answer is then lost (a 504 from a proxy that
        # gave up waiting): the site stored them, the bot cannot know.
        self.lose_event_answers = lose_event_answers
        self.event_bodies: list[bytes] = []
        self.log: list[tuple[float, int, int]] = []  # (time, trades in the request, status)
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                count = len(json.loads(body)) if self.path.endswith("/trades/") else 0
                if count and front.answers:
                    status, headers, reply = front.answers.pop(0)
                elif count > front.refuse_over > 0:
                    status, headers = 400, {}
                    reply = b'{"detail": "too large", "errors": {"body": ["split the batch"]}}'
                else:
                    upstream = requests.post(
                        target + self.path,
                        data=body,
                        headers={
                            "Authorization": self.headers["Authorization"],
                            "Content-Type": "application/json",
                        },
                        timeout=30,
                    )
                    status, headers, reply = upstream.status_code, {}, upstream.content
                    if self.path.endswith("/events/"):
                        front.event_bodies.append(body)
                        if front.lose_event_answers > 0:
                            front.lose_event_answers -= 1
                            status, reply = 504, b'{"detail": "gateway timeout"}'
                front.log.append((time.monotonic(), count, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(POLL_SECONDS,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_5xx_and_429_are_retried_honouring_retry_after(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    front = FlakyFront(
        site.url,
        [
            (503, {}, b'{"detail": "maintenance"}'),
            (502, {}, b"bad gateway"),
            (429, {"Retry-After": "0.5"}, b'{"detail": "slow down"}'),
        ],
    )
    try:
        monitor = make_monitor(front.url, key)
        ids = record(monitor, 120)
        assert monitor.flush(timeout=60)
    finally:
        front.close()
    assert sorted(stored_ids(site)) == sorted(ids)
    statuses = [status for _, _, status in front.log]
    assert statuses[:3] == [503, 502, 429]
    assert statuses[3] in (200, 201)
    after_429 = front.log[3][0] - front.log[2][0]
    assert after_429 >= 0.5, "the next try waited for Retry-After"


def test_an_event_whose_answer_was_lost_is_stored_and_alerted_once(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    front = FlakyFront(site.url, [], lose_event_answers=2)
    try:
        monitor = make_monitor(front.url, key)
        monitor.event("crash", "critical", "strategy thread died")
        assert monitor.flush(timeout=60)
    finally:
        front.close()
    sent = [json.loads(body) for body in front.event_bodies]
    assert len(sent) == 3  # two answers lost, so sent three times, always with the same id
    assert len({item["event_id"] for item in sent}) == 1 and len(sent[0]["event_id"]) == 32
    assert [status for _, _, status in front.log] == [504, 504, 200]
    rows = query(site, "SELECT kind, event_id FROM trades_botevent")
    assert rows == [("crash", sent[0]["event_id"])]
    # The alert follows the stored row: one alert task queued, not three.
    assert site_queue_length(site.env) == 1


def test_each_event_gets_its_own_id_kept_in_the_spool_across_a_restart(
    site: Site, key: str, make_monitor: Callable[..., Monitor], tmp_path: Path
) -> None:
    down = make_monitor(dead_url(), key, spool_dir=tmp_path / "spool")
    down.event("startup", "info", "one")
    down.event("startup", "info", "two")
    down.close(timeout=1)
    monitor = make_monitor(site.url, key, spool_dir=tmp_path / "spool")
    assert monitor.flush(timeout=60)
    rows = query(site, "SELECT message, event_id FROM trades_botevent ORDER BY id")
    assert [message for message, _ in rows] == ["one", "two"]
    assert len({event_id for _, event_id in rows}) == 2 and all(rows[0])


def test_a_batch_refused_as_a_whole_is_split_until_it_goes_through(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    front = FlakyFront(site.url, [], refuse_over=100)
    try:
        monitor = make_monitor(front.url, key)
        ids = record(monitor, 900)
        assert monitor.flush(timeout=60)
    finally:
        front.close()
    stored = stored_ids(site)
    assert sorted(stored) == sorted(ids)
    assert not monitor.dead_letter_path.exists(), "nothing was parked: only the batch size was wrong"
    assert max(count for _, count, status in front.log if status in (200, 201)) <= 100


def test_a_full_spool_refuses_new_trades_without_raising(
    make_monitor: Callable[..., Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitor_client")
    monitor = make_monitor(dead_url(), "key", spool_max_bytes=64 * 1024)
    results = [
        monitor.record_trade(external_id=f"t-{n}", symbol="AAPL", side="BUY", quantity=1, price=1)
        for n in range(600)
    ]
    accepted = results.index(False)
    assert 100 < accepted and not any(results[accepted:])
    assert "80%" in caplog.text and "full" in caplog.text
    assert monitor.spool.used_bytes <= 64 * 1024


def test_a_single_trade_refused_without_item_errors_is_parked(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    front = FlakyFront(site.url, [(400, {}, b'{"detail": "refused", "errors": {"body": ["not accepted"]}}')])
    try:
        monitor = make_monitor(front.url, key)
        record(monitor, 1, prefix="refused")
        assert monitor.flush(timeout=30)
        ids = record(monitor, 3, prefix="later")
        assert monitor.flush(timeout=30)
    finally:
        front.close()
    assert sorted(stored_ids(site)) == sorted(ids)
    (parked,) = [json.loads(line) for line in monitor.dead_letter_path.read_text().splitlines()]
    assert parked["record"]["external_id"] == "refused-0"
    assert parked["error"] == {"body": ["not accepted"]}


def test_an_answer_that_is_not_the_sites_acknowledges_nothing(
    site: Site, key: str, make_monitor: Callable[..., Monitor], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="monitor_client")
    front = FlakyFront(
        site.url,
        [
            (200, {}, b"<html>Welcome to nginx!</html>"),
            (301, {"Location": "https://elsewhere.example/api/v1/trades/"}, b""),
        ],
    )
    try:
        monitor = make_monitor(front.url, key)
        ids = record(monitor, 10)
        assert monitor.flush(timeout=60)
    finally:
        front.close()
    assert sorted(stored_ids(site)) == sorted(ids)
    assert [status for _, _, status in front.log][:2] == [200, 301]
    assert "is MONITOR_URL the monitoring site?" in caplog.text
    assert "redirected to https://elsewhere.example" in caplog.text


def test_trades_recorded_from_many_bot_threads_are_each_stored_once(
    site: Site, key: str, make_monitor: Callable[..., Monitor]
) -> None:
    monitor = make_monitor(site.url, key)
    errors: list[BaseException] = []

    def strategy(name: str) -> None:
        try:
            record(monitor, 400, prefix=name, strategy=name)
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=strategy, args=(f"strategy{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert monitor.flush(timeout=60)
    stored = stored_ids(site)
    assert len(stored) == len(set(stored)) == 2400


def test_without_url_and_key_trades_wait_in_the_spool_for_a_configured_monitor(
    site: Site,
    key: str,
    tmp_path: Path,
    make_monitor: Callable[..., Monitor],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("MONITOR_URL", raising=False)
    monkeypatch.delenv("MONITOR_KEY", raising=False)
    caplog.set_level(logging.WARNING, logger="monitor_client")
    unconfigured = Monitor(spool_dir=tmp_path / "spool")
    assert "MONITOR_URL or MONITOR_KEY is not set" in caplog.text
    ids = record(unconfigured, 5)
    assert unconfigured.flush(timeout=1) is False
    unconfigured.close(timeout=1)

    monkeypatch.setenv("MONITOR_URL", site.url)
    monkeypatch.setenv("MONITOR_KEY", key)
    configured = make_monitor(None, None, spool_dir=tmp_path / "spool")  # from the environment
    assert configured.flush(timeout=30)
    assert sorted(stored_ids(site)) == sorted(ids)
