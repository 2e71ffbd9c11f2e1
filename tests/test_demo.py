"""The paper-trading demo bot, started beside the site the way a new user starts it."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from alerts.evaluation import alert_for_event, evaluate_schedule, evaluate_trades
from alerts.models import Alert, AlertRule, TradingHalt
from monitor_client.checks import bot_state
from monitor_client.demo import SESSION, STARTING_CASH, DayBook, PaperBot, Position, parse_args
from tests.conftest import stored_trade
from tests.harness import (
    MARKET_ZONE,
    ROOT,
    Site,
    free_port,
    start_serve_script,
    stop,
    wait_for,
)
from trades.models import Bot, BotEvent, Trade

pytestmark = pytest.mark.server


def query(site: Site, sql: str) -> list[tuple[Any, ...]]:
    return site.sql(sql)


def demo_rows(site: Site, sql: str) -> list[tuple[Any, ...]]:
    return query(site, sql.replace("{bot}", "(SELECT id FROM trades_bot WHERE name = 'demo-bot')"))


def process_groups(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_serve_with_demo_trades_reports_and_stops_cleanly(site: Site) -> None:
    port = free_port()
    env = dict(
        site.env,
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        DEMO_ARGS=f"--tick 0.05 --seed 7 --heartbeat-every 1 --spool-dir {site.tmp / 'demo-spool'}",
    )
    env.pop("MONITOR_URL", None)
    env.pop("MONITOR_KEY", None)
    log = open(site.tmp / "serve.log", "wb")
    serve = start_serve_script(env, log, "--demo")
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v1/health/", timeout=90)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            closed = demo_rows(site, "SELECT pnl FROM trades_trade WHERE bot_id = {bot} AND pnl IS NOT NULL")
            if any(p > 0 for (p,) in closed) and any(p < 0 for (p,) in closed):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(
                "the demo made no winning and losing trades: " + site.log("serve.log")[-3000:]
            )
        key_file = site.tmp / "demo-bot.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        groups = process_groups(serve.pid)
        assert len(groups) == 2  # the web server and the demo, each in its own group ...
        groups += [pid for group in groups for pid in process_groups(group) if os.getpgid(pid) == pid]
        assert len(groups) == 3  # ... and the task cluster the web server forked, leading its own
        os.killpg(serve.pid, signal.SIGINT)
        assert serve.wait(60) == 0
        for group in groups:
            with pytest.raises(ProcessLookupError):
                os.killpg(group, 0)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=2)
    finally:
        stop(serve, timeout=60)  # serve.sh gives the demo 20 s and the site 30 s
        log.close()

    output = site.log("serve.log")
    assert "killing" not in output
    fills = int(re.search(r"Session closed: (\d+) fills", output).group(1))  # type: ignore[union-attr]
    assert "Everything reached the site." in output
    (count,) = demo_rows(site, "SELECT COUNT(*) FROM trades_trade WHERE bot_id = {bot}")[0]
    assert count == fills, "every fill of the demo reached the site, once"
    kinds = [
        kind
        for (kind,) in demo_rows(site, "SELECT kind FROM trades_botevent WHERE bot_id = {bot} ORDER BY id")
    ]
    assert kinds[:2] == ["startup", "market_open"]
    assert kinds[-2:] == ["market_close", "shutdown"]
    ((status, details),) = demo_rows(
        site, "SELECT last_heartbeat_status, last_heartbeat_details FROM trades_bot"
    )
    assert status == "running" and json.loads(details) == {}


def test_serve_with_demo_reuses_the_demo_key(site: Site) -> None:
    key = site.create_bot("demo-bot")
    (site.tmp / "demo-bot.key").write_text(key + "\n")
    port = free_port()
    env = dict(
        site.env,
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        DEMO_ARGS=f"--tick 0.05 --duration 2 --spool-dir {site.tmp / 'demo-spool'}",
    )
    serve = subprocess.Popen(
        ["bash", "scripts/serve.sh", "--demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v1/health/", timeout=90)
        deadline = time.monotonic() + 90
        while not demo_rows(
            site, "SELECT kind FROM trades_botevent WHERE bot_id = {bot} AND kind = 'shutdown'"
        ):
            assert time.monotonic() < deadline, "the demo did not finish"
            time.sleep(0.2)
        assert serve.poll() is None, "the demo ending by itself leaves the site running"
        assert [name for (name,) in query(site, "SELECT name FROM trades_bot")] == ["demo-bot"]
    finally:
        stop(serve, timeout=60)  # serve.sh gives the demo 20 s and the site 30 s


def test_demo_without_a_key_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MONITOR_KEY", "MONITOR_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "monitor_client.demo", "--spool-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MONITOR_KEY" in result.stderr and "Traceback" not in result.stderr


# --- what a new user sees: the demo judged by the site's own rules, on a simulated clock --------

# A trading morning (a Thursday, no holiday), a quarter of an hour after the open.
MORNING = dt.datetime(2026, 1, 15, 9, 45, tzinfo=MARKET_ZONE)
WARNINGS = {"warning", "critical"}


class SimulatedMonitor:
    """The demo bot's Monitor calls on a simulated clock (``ticks`` ticks of ``tick`` seconds after
    ``start``): each fill and event kept with its time, the site never asked."""

    def __init__(self, start: dt.datetime = MORNING) -> None:
        self.start, self.tick, self.ticks = start, 2.0, 0
        self.fills: list[tuple[dt.datetime, dict[str, Any]]] = []
        self.events: list[tuple[dt.datetime, str, str, str]] = []
        self.reports: list[tuple[dt.datetime, dict[str, Any]]] = []

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.ticks * self.tick)

    def record_trade(self, **fields: Any) -> bool:
        self.fills.append((self.now(), fields))
        return True

    def event(self, kind: str, level: str = "info", message: str = "", **details: Any) -> bool:
        self.events.append((self.now(), kind, level, message))
        return True

    def report_positions(self, positions: Any, equity: Any = None, cash: Any = None) -> None:
        # As the heartbeat carries it, through the Monitor's own checks (a mistake raises).
        self.reports.append((self.now(), bot_state(positions, equity, cash)))

    def trading_allowed(self) -> bool:
        # No halt without a max-daily-loss breach first, which judging the fills finds.
        return True

    def start_heartbeats(self, every: float) -> None:
        pass

    def after_tick(self) -> None:
        pass


def simulate(
    monitor: SimulatedMonitor, seed: int, minutes: float, *options: str, book_path: Path | None = None
) -> PaperBot:
    """The demo's ``run`` loop for ``minutes`` of simulated time, then its end of session."""
    args = parse_args([*options, "--seed", str(seed)])
    monitor.tick = args.tick
    paper = PaperBot(monitor, args, clock=monitor.now, book_path=book_path)  # type: ignore[arg-type]
    first = monitor.ticks
    for tick in range(1, round(minutes * 60 / args.tick) + 1):
        monitor.ticks = first + tick
        paper.step(tick)
        monitor.after_tick()
    paper.close_all("session end")
    return paper


def alerts_judging(runs: dict[str, SimulatedMonitor]) -> dict[str, list[tuple[str, str]]]:
    """(level, title) of every alert the site's rules raise over what each run of the demo sent,
    by the name of its bot (one bot a run; every run ends at the same moment).

    Its events are stored and judged one by one, as they came. Its fills are stored and judged as
    the site judges a batch, in two batches: the day rules judge the day's totals after each batch,
    so a day rule could first breach at the fill that took the day's P&L to its low (a loss limit)
    or at the last fill (the most trades); every per-trade rule sees every fill either way. Then the
    per-minute pass at the end, every bot's heartbeat fresh, as a running demo's is.
    """
    (end,) = {monitor.now() for monitor in runs.values()}
    bots = {name: Bot.objects.create(name=name) for name in runs}
    for name, monitor in runs.items():
        bot = bots[name]
        for at, kind, level, message in monitor.events:
            event, _ = BotEvent.objects.record(bot, kind=kind, level=level, message=message, occurred_at=at)
            alert_for_event(event, now=at)
        running, low, cut = Decimal(0), Decimal(0), 0
        for index, (_, fields) in enumerate(monitor.fills):
            running += fields["pnl"] or 0
            if running < low:
                low, cut = running, index + 1
        for batch in (monitor.fills[:cut], monitor.fills[cut:]):
            if batch:
                stored = [stored_trade(executed_at=at, **trade_fields(fields)) for at, fields in batch]
                ids = Trade.objects.record_batch(bot, stored).ids
                evaluate_trades(bot.pk, ids, now=batch[-1][0])
    Bot.objects.filter(pk__in=[bot.pk for bot in bots.values()]).update(last_heartbeat_at=end)
    evaluate_schedule(now=end)
    return {
        name: list(Alert.objects.filter(bot=bot).order_by("created_at", "pk").values_list("level", "title"))
        for name, bot in bots.items()
    }


def trade_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: fields[k] for k in ("external_id", "symbol", "side", "quantity", "price", "strategy", "pnl")}


def default_rules() -> dict[str, tuple[str, Decimal | None, bool]]:
    return {r.name: (r.level, r.threshold, r.enabled) for r in AlertRule.objects.filter(bot__isnull=True)}


@pytest.fixture
def quiet_demo() -> Iterator[None]:
    demo_log = logging.getLogger("demo_bot")
    level = demo_log.level
    demo_log.setLevel(logging.ERROR)
    yield
    demo_log.setLevel(level)


@pytest.mark.django_db
def test_ten_minutes_of_the_default_demo_raise_no_warning_over_200_seeds(quiet_demo: None) -> None:
    rules = default_rules()  # as the migrations seed them, which is what a new user has
    assert rules["trade-frequency"] == ("warning", Decimal(50), True)
    assert rules["daily-loss-warning"] == ("warning", Decimal(-500), True)
    assert rules["event-data-quality"][0] == rules["event-connection-retry"][0] == "warning"
    runs: dict[str, SimulatedMonitor] = {}
    for seed in range(200):
        runs[f"demo-{seed}"] = monitor = SimulatedMonitor()
        simulate(monitor, seed, 10)
        assert monitor.fills, f"seed {seed} made no trade in ten minutes"
    pnls = [fields["pnl"] for run in runs.values() for _, fields in run.fills if fields["pnl"] is not None]
    assert min(pnls) < 0 < max(pnls), "wins and losses"
    judged = alerts_judging(runs)
    loud = {name: alerts for name, alerts in judged.items() if any(level in WARNINGS for level, _ in alerts)}
    assert not loud, f"{len(loud)} of 200 seeds warned: {dict(list(loud.items())[:5])}"
    assert not TradingHalt.objects.exists()


@pytest.mark.django_db
def test_a_whole_session_of_the_default_demo_raises_no_warning(quiet_demo: None) -> None:
    """Five seeds of a whole session (the bounds hold by construction: see the tests below)."""
    runs = {f"demo-{seed}": SimulatedMonitor(start=MORNING.replace(hour=9, minute=30)) for seed in range(5)}
    for seed, monitor in enumerate(runs.values()):
        paper = simulate(monitor, seed, 390)
        assert paper.book.fills == len(monitor.fills) <= 40
        # Still trading in the afternoon: the fills are paced over the session, not spent at once.
        afternoon = [at for at, _ in monitor.fills if at.hour >= 13]
        assert len(afternoon) >= 4, (seed, [at for at, _ in monitor.fills])
    for name, alerts in alerts_judging(runs).items():
        assert not [a for a in alerts if a[0] in WARNINGS], (name, alerts)


class JudgedMonitor(SimulatedMonitor):
    """Each fill and event stored and judged at once, the per-minute pass each simulated minute, and
    the site's trading status as the demo asks it: the whole loop, for a few seeds."""

    def __init__(self, bot: Bot) -> None:
        super().__init__()
        self.bot, self.allowed = bot, True

    def record_trade(self, **fields: Any) -> bool:
        super().record_trade(**fields)
        ids = Trade.objects.record_batch(
            self.bot, [stored_trade(executed_at=self.now(), **trade_fields(fields))]
        ).ids
        evaluate_trades(self.bot.pk, ids, now=self.now())
        self.allowed = self.in_force() is None  # only an evaluation halts
        return True

    def event(self, kind: str, level: str = "info", message: str = "", **details: Any) -> bool:
        super().event(kind, level, message)
        event, _ = BotEvent.objects.record(
            self.bot, kind=kind, level=level, message=message, occurred_at=self.now()
        )
        alert_for_event(event, now=self.now())
        return True

    def trading_allowed(self) -> bool:
        return self.allowed

    def in_force(self) -> TradingHalt | None:
        return TradingHalt.objects.in_force(self.bot, self.now().date())

    def after_tick(self) -> None:
        if self.ticks % round(60 / self.tick) == 0:
            Bot.objects.filter(pk=self.bot.pk).update(last_heartbeat_at=self.now())
            evaluate_schedule(now=self.now())
            self.allowed = self.in_force() is None


@pytest.mark.django_db
def test_a_losing_demo_shows_the_whole_halt_path_within_ten_minutes(quiet_demo: None) -> None:
    for seed in range(3):
        bot = Bot.objects.create(name=f"losing-{seed}")
        monitor = JudgedMonitor(bot)
        monitor.event("startup", "info", "Demo bot starting")
        monitor.event("market_open", "info", "Paper session open")
        simulate(monitor, seed, 10, "--losing")
        alerts = list(
            Alert.objects.filter(bot=bot).order_by("created_at", "pk").values_list("level", "title")
        )
        titles = [title for _, title in alerts]
        assert titles[:2] == [f"{bot.name}: Startup", f"{bot.name}: Market Open"], alerts
        losses = [level for level, title in alerts if "realized P&L" in title]
        assert losses[:2] == ["warning", "critical"], alerts  # the daily-loss warning, then the halt's
        halt = TradingHalt.objects.get(bot=bot)
        assert halt.resumed_at is None
        # The bot saw the halt, said so (a critical alert of its own), and opened nothing after it.
        assert f"{bot.name}: Risk Limit" in titles, alerts
        (halted_at,) = [at for at, kind, _, _ in monitor.events if kind == "risk_limit"]
        assert not [f for at, f in monitor.fills if at > halted_at and f["reason"] == "open"]
        Bot.objects.filter(pk=bot.pk).update(is_active=False)


def test_the_demo_reports_its_positions_and_paper_account_after_each_fill_and_each_period() -> None:
    monitor = SimulatedMonitor()
    paper = simulate(monitor, 5, 30, "--losing", "--heartbeat-every", "15")
    paper.report_positions(force=True)  # as run() does after the session's end closed everything
    assert len(monitor.fills) >= 4
    assert monitor.reports[-1][1] == {
        "positions": [],
        "equity": float(STARTING_CASH + paper.realized),
        "cash": float(STARTING_CASH + paper.realized),
    }
    fill_times = {at for at, _ in monitor.fills}
    reported_at = [at for at, _ in monitor.reports]
    assert fill_times <= set(reported_at), "a report in the tick of each fill"
    gaps = [b - a for a, b in itertools.pairwise(reported_at)]
    assert max(gaps) <= dt.timedelta(seconds=15 + paper.args.tick), "one at least each heartbeat period"
    assert min(gaps[:-1]) >= dt.timedelta(seconds=paper.args.tick), "none between ticks"
    sides = set()
    for at, state in monitor.reports:
        # The account as the fills up to that moment make it: signed quantities, cash paid and received.
        held: dict[str, int] = {}
        cash = STARTING_CASH
        for _, fill in (f for f in monitor.fills if f[0] <= at):
            sign = 1 if fill["side"] == "BUY" else -1
            held[fill["symbol"]] = held.get(fill["symbol"], 0) + sign * fill["quantity"]
            cash -= sign * fill["quantity"] * fill["price"]
        positions = {p["symbol"]: p for p in state["positions"]}
        assert {s: p["quantity"] for s, p in positions.items()} == {s: q for s, q in held.items() if q}
        assert Decimal(str(state["cash"])) == cash
        open_value = sum(p["quantity"] * Decimal(str(p["market_price"])) for p in positions.values())
        assert Decimal(str(state["equity"])) == cash + open_value
        sides |= {p["quantity"] > 0 for p in positions.values()}
    assert sides == {True, False}, "longs and shorts both reported"


# --- the demo's own limits, at their boundaries -----------------------------------------------


def paper_bot(tmp_path: Path | None = None, *options: str) -> tuple[PaperBot, SimulatedMonitor]:
    monitor = SimulatedMonitor()
    args = parse_args([*options, "--seed", "1"])
    book = tmp_path / "demo-day.json" if tmp_path else None
    return PaperBot(monitor, args, clock=monitor.now, book_path=book), monitor  # type: ignore[arg-type]


def long_at(entry: str, quantity: int = 80, stop: str | None = "99.00") -> Position:
    return Position("long", quantity, Decimal(entry), Decimal(stop) if stop else None)


def test_the_day_fills_allowed_are_a_first_share_then_paced_over_a_session() -> None:
    paper, _ = paper_bot()
    book = paper.book
    assert book.fills_allowed(40, MORNING) == 12 and book.fills_allowed(40, MORNING + SESSION) == 40
    # The 13th fill: exactly 1/28 of the session after the start, not a microsecond before.
    thirteenth = book.when_allowed(13, 40)
    assert thirteenth == MORNING + dt.timedelta(microseconds=835_714_286)  # 390 min / 28, rounded up
    assert book.fills_allowed(40, thirteenth) == 13
    assert book.fills_allowed(40, thirteenth - dt.timedelta(microseconds=1)) == 12
    assert book.when_allowed(12, 40) == MORNING and book.when_allowed(41, 40) is None


def test_a_position_opens_when_its_two_fills_are_within_the_days_allowance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    paper, monitor = paper_bot()
    paper.book.fills = 10  # 10 + 2 = 12: the first share, exactly
    assert paper.may_open(long_at("100.00"))
    paper.book.fills = 11  # 13 fills: one past it
    with caplog.at_level(logging.INFO, logger="demo_bot"):
        assert not paper.may_open(long_at("100.00"))
        assert not paper.may_open(long_at("100.00"))
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("No new position")]
    assert waits == ["No new position: 11 of the day's 40 fills made; the next position waits until 09:58."]
    # A position already open needs its closing fill too.
    paper.instruments[0].position = long_at("100.00")
    paper.book.fills = 9  # 9 + 1 + 2 = 12
    assert paper.may_open(long_at("100.00"))
    paper.book.fills = 10
    assert not paper.may_open(long_at("100.00"))
    # The day's last position: 38 + 2 = 40 at the session's end; none past it, that day.
    paper.instruments[0].position = None
    monitor.ticks = round(SESSION.total_seconds() / monitor.tick)
    paper.book.fills = 38
    assert paper.may_open(long_at("100.00"))
    paper.book.fills = 39
    assert not paper.may_open(long_at("100.00"))
    assert paper.waiting.endswith("the next position waits for the next day")


def test_no_position_opens_that_could_take_the_day_past_the_loss_limit() -> None:
    paper, _ = paper_bot()
    paper.instruments[0].position = long_at("100.00", quantity=50)  # at risk: 50 x 1.00
    paper.book.realized = Decimal("-120.00")
    assert paper.may_open(long_at("100.00", quantity=80))  # -120 - 50 - 80 = -250: the limit itself
    assert not paper.may_open(long_at("100.00", quantity=80, stop="98.99"))  # 80.80 at risk: past it
    assert paper.waiting.startswith("the day's realized P&L is -120.00; no position while the open ones")
    paper.book.realized = Decimal("-119.99")
    assert paper.may_open(long_at("100.00", quantity=80))
    # Without a loss limit (or with --losing) nothing is held back for it.
    unlimited, _ = paper_bot(None, "--day-loss-limit", "0")
    unlimited.book.realized = Decimal("-10000")
    assert unlimited.may_open(long_at("100.00", stop=None))
    losing, _ = paper_bot(None, "--losing")
    losing.book.realized, losing.book.fills = Decimal("-10000"), 10_000
    assert losing.may_open(long_at("100.00", stop=None))


def test_a_stop_is_an_order_at_a_cent_price_on_the_positions_side_and_fills_at_it() -> None:
    paper, monitor = paper_bot()
    assert paper.stop_price("long", Decimal("123.47")) == Decimal("122.24")  # 122.2353 up: less at risk
    assert paper.stop_price("short", Decimal("123.47")) == Decimal("124.70")  # 124.7047 down
    assert paper_bot(None, "--day-loss-limit", "0")[0].stop_price("long", Decimal("100")) is None
    instrument = paper.instruments[0]
    for price, closed in (("122.25", False), ("122.24", True), ("120.00", True)):
        instrument.history.clear()
        instrument.history.extend([125.0] * 12)  # far above: the long has not reverted
        instrument.position = Position("long", 64, Decimal("123.47"), Decimal("122.24"))
        paper.trade(instrument, Decimal(price))
        assert (instrument.position is None) == closed, price
    for price, closed in (("124.69", False), ("124.70", True)):
        instrument.history.clear()
        instrument.history.extend([120.0] * 12)  # far below: the short has not reverted
        instrument.position = Position("short", 64, Decimal("123.47"), Decimal("124.70"))
        paper.trade(instrument, Decimal(price))
        assert (instrument.position is None) == closed, price
    # Each close at the stop's price, whatever the tick's price: the loss is what was at risk.
    assert [(f["side"], f["price"], f["pnl"], f["reason"]) for _, f in monitor.fills] == [
        ("SELL", Decimal("122.24"), Decimal("-78.72"), "stop loss"),
        ("SELL", Decimal("122.24"), Decimal("-78.72"), "stop loss"),
        ("BUY", Decimal("124.70"), Decimal("-78.72"), "stop loss"),
    ]


def test_the_days_pnl_is_pulled_toward_zero_and_losing_runs_against_positions() -> None:
    paper, _ = paper_bot()
    instrument = paper.instruments[0]
    volatility = paper.args.volatility
    instrument.position = long_at("100.00")
    for realized, drift in (("-250", volatility), ("-500", volatility), ("-125", volatility / 2), ("0", 0.0)):
        paper.book.realized = Decimal(realized)
        assert paper.drift(instrument) == pytest.approx(drift), realized
    paper.book.realized = Decimal("125")
    assert paper.drift(instrument) == pytest.approx(-volatility / 2)  # a winning day leans back too
    instrument.position = Position("short", 80, Decimal("100.00"), Decimal("101.00"))
    assert paper.drift(instrument) == pytest.approx(volatility / 2)
    losing, _ = paper_bot(None, "--losing")
    losing.instruments[0].position = long_at("100.00", stop=None)
    assert losing.drift(losing.instruments[0]) == -volatility


def test_the_day_book_carries_over_a_restart_the_same_day_and_not_to_the_next(
    tmp_path: Path, quiet_demo: None
) -> None:
    first = SimulatedMonitor()
    paper = simulate(first, 1, 10, book_path=tmp_path / "demo-day.json")
    assert paper.book.fills == len(first.fills) == 12
    # A restart ten minutes later goes on from the book: no second first share of fills.
    second = SimulatedMonitor()
    second.ticks = first.ticks
    again = simulate(second, 2, 10, book_path=tmp_path / "demo-day.json")
    assert again.book.started == MORNING
    assert again.book.fills == 12 + len(second.fills) <= again.book.fills_allowed(40, second.now())
    assert again.book.realized == sum(f["pnl"] or 0 for _, f in first.fills + second.fills)
    # The next day's run starts a day of its own.
    tomorrow = SimulatedMonitor(start=MORNING + dt.timedelta(days=1))
    fresh = simulate(tomorrow, 3, 10, book_path=tmp_path / "demo-day.json")
    assert fresh.book.fills == len(tomorrow.fills) > 0 and fresh.book.started == tomorrow.start


def test_an_unreadable_day_book_starts_a_new_day(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    book = tmp_path / "demo-day.json"
    book.write_text("{not json")
    opened = DayBook.open(book, MORNING)
    assert (opened.fills, opened.realized, opened.started) == (0, 0, MORNING)
    assert f"Starting a new day book: {book} could not be read" in caplog.text


def test_a_run_past_midnight_starts_the_next_days_book() -> None:
    monitor = SimulatedMonitor(start=MORNING.replace(hour=23, minute=59, second=58))
    paper = PaperBot(monitor, parse_args(["--seed", "1"]), clock=monitor.now)  # type: ignore[arg-type]
    paper.book.fills = 30
    monitor.ticks = 0
    paper.step(0)
    assert paper.book.day == MORNING.date() and paper.book.fills == 30
    monitor.ticks = 1  # 00:00:00 the next day
    paper.step(1)
    assert paper.book.day == MORNING.date() + dt.timedelta(days=1) and paper.book.fills == 0


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--day-fills", "1", "0 (no limit) or at least 2 (a position's two fills), got 1"),
        ("--day-fills", "-3", "0 (no limit) or at least 2 (a position's two fills), got -3"),
        ("--day-fills", "ten", "a whole number of fills, got 'ten'"),
        ("--day-loss-limit", "-250", "a sum of money, 0 (no limit) or more, got '-250'"),
        ("--day-loss-limit", "lots", "a sum of money such as 250, got 'lots'"),
        ("--day-loss-limit", "inf", "a sum of money, 0 (no limit) or more, got 'inf'"),
    ],
)
def test_a_bad_limit_is_refused_naming_its_option(
    option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([option, value])
    assert exit_.value.code == 2
    assert f"error: argument {option}: {words}" in capsys.readouterr().err
    assert parse_args([option, "0"]) is not None  # 0: no limit
