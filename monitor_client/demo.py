"""A paper-trading demo bot: ``python -m monitor_client.demo``.

It trades nothing real. Prices are random walks; a mean-reversion strategy opens a
position when a price strays from its recent average and closes it when the price
comes back, or at a stop loss or take profit, so there are wins and losses. Every
fill goes through ``Monitor.record_trade`` (closing fills carry their P&L), with
heartbeats carrying its open positions and its paper account's equity and cash
(``Monitor.report_positions``, after each fill and once per heartbeat period), events
(startup, market_open, with ``--glitch-rate`` the odd data_quality or connection_retry,
risk_limit when the site halts trading, market_close, shutdown) and logs through
``monitor_client.setup_logging``, exactly as a real bot would use them.

By default it keeps limits of its own, as a careful bot does, so that it stays calm under the
site's default rules for a whole session: at most ``--day-fills`` fills a trading day, paced over
the session (the default trade-frequency warning is above 50), and no position that could take the
day's realized P&L below minus ``--day-loss-limit`` (the default daily-loss warning is at -500;
its stop losses are stop orders, filled at their price). Its day (fills, P&L) is kept in its spool folder, so
a restart the same day goes on from it. ``--losing`` drops those limits and runs prices against
its positions: the site's warnings, then its halt.

Configured by ``MONITOR_URL`` (default ``http://127.0.0.1:8000``) and ``MONITOR_KEY``
(``python manage.py create_bot demo-bot`` prints one), or ``--url`` / ``--key``.
``./scripts/start.sh --demo`` does all of that and runs it beside the site.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from monitor_client.client import Monitor
from monitor_client.logsetup import setup_logging
from monitor_client.spool import SpoolError

log = logging.getLogger("demo_bot")

STRATEGY = "mean_reversion"
START_PRICES = {"AAPL": 187.0, "MSFT": 412.0, "NVDA": 128.0, "TSLA": 251.0, "AMD": 156.0, "JPM": 198.0}
CENT = Decimal("0.01")
# A regular NYSE session: the day's fills are paced so that they last it.
SESSION = dt.timedelta(hours=6, minutes=30)
# Of the day's fills, the share free at once, so that a new user sees trades in the first minutes.
FIRST_SHARE = Fraction(3, 10)
# How hard the day's P&L is pulled back toward zero: the drift toward open positions, in shares
# of the volatility per tick, at the loss limit (in proportion nearer zero, and against them on a
# winning day). With 1 a day's low averages about -75 in ten minutes and -110 in a session.
PULL = 1.0
BOOK_FILE = "demo-day.json"
# The paper account's cash at the start of a run; equity is cash plus the open positions at market.
STARTING_CASH = Decimal(100_000)


@dataclass
class Position:
    side: str  # "long" or "short"
    quantity: int
    entry: Decimal
    stop: Decimal | None = None  # with the demo's own limits: a stop order at this price

    @property
    def risk(self) -> Decimal:
        """The most it can lose: closed at its stop (0 without one: nothing is promised)."""
        return Decimal(0) if self.stop is None else abs(self.entry - self.stop) * self.quantity


@dataclass
class DayBook:
    """The demo's own count of its trading day: fills and realized P&L since ``started``.

    The site's rules count the bot's whole day, not one run, so the book is kept in the spool
    folder (``path``) and a restart the same day goes on from it. The day is the date of the
    demo's clock (``start.sh`` gives the demo the market's time zone).
    """

    day: dt.date
    started: dt.datetime
    fills: int = 0
    realized: Decimal = Decimal(0)
    path: Path | None = None

    @classmethod
    def open(cls, path: Path | None, now: dt.datetime) -> DayBook:
        """Today's book from ``path`` when it holds today's, else a new one started ``now``."""
        try:
            kept = json.loads(path.read_text()) if path is not None else None
            if kept and dt.date.fromisoformat(kept["day"]) == now.date():
                return cls(
                    day=now.date(),
                    started=dt.datetime.fromisoformat(kept["started"]),
                    fills=int(kept["fills"]),
                    realized=Decimal(kept["realized"]),
                    path=path,
                )
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
            log.warning("Starting a new day book: %s could not be read (%s)", path, exc)
        return cls(day=now.date(), started=now, path=path)

    def add(self, pnl: Decimal | None) -> None:
        self.fills += 1
        if pnl is not None:
            self.realized += pnl
        if self.path is None:
            return
        kept = {
            "day": self.day.isoformat(),
            "started": self.started.isoformat(),
            "fills": self.fills,
            "realized": str(self.realized),
        }
        spare = self.path.with_name(self.path.name + ".new")
        try:
            spare.write_text(json.dumps(kept))
            spare.replace(self.path)
        except OSError as exc:  # the demo trades on, and a restart today would count afresh
            log.warning("Could not keep the day book in %s (%s); keeping it in memory", self.path, exc)
            self.path = None

    def fills_allowed(self, limit: int, now: dt.datetime) -> int:
        """The day's fills allowed by ``now``: a first share at once, the rest evenly over a session
        (whole microseconds: no rounding decides the instant a fill is allowed)."""
        first = int(limit * FIRST_SHARE)  # exact: no float decides it
        elapsed = min(SESSION, max(dt.timedelta(0), now - self.started))
        return first + (limit - first) * elapsed // SESSION

    def when_allowed(self, fills: int, limit: int) -> dt.datetime | None:
        """The first instant ``fills`` fills are allowed (None: not this day)."""
        first = int(limit * FIRST_SHARE)  # exact: no float decides it
        if fills > limit:
            return None
        if fills <= first:
            return self.started
        session_us = SESSION // dt.timedelta(microseconds=1)
        return self.started + dt.timedelta(microseconds=-(-session_us * (fills - first) // (limit - first)))


@dataclass
class Instrument:
    """One symbol: its random-walk price, recent history and open position."""

    symbol: str
    price: float
    history: deque[float] = field(default_factory=lambda: deque(maxlen=12))
    position: Position | None = None

    def tick(self, rng: random.Random, volatility: float, drift: float) -> Decimal:
        self.price *= math.exp(rng.gauss(drift, volatility))
        self.history.append(self.price)
        return Decimal(str(self.price)).quantize(CENT)


class PaperBot:
    """The demo's orchestrator: market data in, fills out, everything reported."""

    def __init__(
        self,
        monitor: Monitor,
        args: argparse.Namespace,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
        book_path: Path | None = None,
    ):
        """``clock`` tells the time (a test's simulated one); ``book_path`` is where the day's book
        is kept (``main`` keeps it in the spool folder; None: in memory, for this run alone)."""
        self.monitor = monitor
        self.args = args
        self.clock = clock
        self.rng = random.Random(args.seed)
        self.instruments = [Instrument(s, START_PRICES.get(s, 100.0)) for s in args.symbols]
        # The time alone is not unique: a bot killed and restarted within the same second
        # would reuse its external ids, and the site would drop the new fills as repeats.
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        self.fills = 0
        self.realized = Decimal(0)
        self.halted = False
        self.stop = threading.Event()
        # The demo's own limits (off with --losing, or at 0): see the module's docstring.
        self.fill_limit = 0 if args.losing else args.day_fills
        self.loss_limit = Decimal(0) if args.losing else args.day_loss_limit
        self.book_path = book_path if self.fill_limit or self.loss_limit else None
        self.book = DayBook.open(self.book_path, clock())
        self.waiting = ""  # why no position opens now, as last said in the log
        self.cash = STARTING_CASH  # the paper account: a buy pays, a sell (or a short) is paid
        self.reported_at: dt.datetime | None = None  # the last report of the positions

    def run(self) -> None:
        monitor = self.monitor
        monitor.event(
            "startup",
            "info",
            f"Demo bot starting: {STRATEGY} on {', '.join(self.args.symbols)}",
            symbols=self.args.symbols,
            strategy=STRATEGY,
            paper=True,
        )
        self.report_positions(force=True)  # the first heartbeat carries the account
        monitor.start_heartbeats(every=self.args.heartbeat_every)
        monitor.event("market_open", "info", "Paper session open")
        log.info("Paper session open; a tick every %.2f s. Ctrl-C stops.", self.args.tick)
        started = time.monotonic()
        ticks = 0
        while not self.stop.wait(self.args.tick):
            ticks += 1
            self.step(ticks)
            if self.args.duration and time.monotonic() - started >= self.args.duration:
                break
        self.close_all("session end")
        self.report_positions(force=True)  # flat
        monitor.event(
            "market_close",
            "info",
            f"Paper session closed: {self.fills} fills, realized P&L {self.realized:+.2f}",
            fills=self.fills,
            realized_pnl=str(self.realized),
        )
        log.info("Session closed: %d fills, realized P&L %+.2f", self.fills, self.realized)

    def step(self, ticks: int) -> None:
        now = self.clock()
        if now.date() != self.book.day:  # a new day: a new book, and the day's fills again
            self.book = DayBook(day=now.date(), started=now, path=self.book_path)
        allowed = self.monitor.trading_allowed()
        if allowed == self.halted:  # the site's risk status changed
            self.halted = not allowed
            if self.halted:
                log.warning("The monitoring site halted trading; closing positions.")
                self.monitor.event("risk_limit", "warning", "Trading halted by the monitoring site")
                self.close_all("halted by the site")
            else:
                log.info("Trading allowed again.")
        if self.rng.random() < self.args.glitch_rate:
            self.glitch()
        fills = self.fills
        for instrument in self.instruments:
            price = instrument.tick(self.rng, self.args.volatility, self.drift(instrument))
            self.trade(instrument, price)
        self.report_positions(force=self.fills != fills)

    def report_positions(self, force: bool = False) -> None:
        """The open positions at the last prices, and the paper account, for the heartbeats: after a
        fill (``force``), else once per heartbeat period (the heartbeat thread repeats the last)."""
        now = self.clock()
        period = dt.timedelta(seconds=self.args.heartbeat_every)
        if not force and self.reported_at is not None and now - self.reported_at < period:
            return
        self.reported_at = now
        positions, value = [], Decimal(0)
        for instrument in self.instruments:
            position = instrument.position
            if position is None:
                continue
            quantity = position.quantity if position.side == "long" else -position.quantity
            market = Decimal(str(instrument.price)).quantize(CENT)
            value += quantity * market
            positions.append(
                {
                    "symbol": instrument.symbol,
                    "quantity": quantity,
                    "avg_price": position.entry,
                    "market_price": market,
                }
            )
        self.monitor.report_positions(positions, equity=self.cash + value, cash=self.cash)

    def drift(self, instrument: Instrument) -> float:
        """With --losing, prices run against open positions: the daily-loss warning fires within
        about two minutes and the max-daily-loss halt within about four (at the default tick).
        With a loss limit, the day's P&L is pulled back toward zero: prices lean toward open
        positions on a losing day and against them on a winning one."""
        position = instrument.position
        if position is None:
            return 0.0
        toward = 1 if position.side == "long" else -1
        if self.args.losing:
            return -toward * self.args.volatility
        if not self.loss_limit:
            return 0.0
        lean = max(-1.0, min(1.0, float(-self.book.realized / self.loss_limit)))
        return toward * lean * PULL * self.args.volatility

    def trade(self, instrument: Instrument, price: Decimal) -> None:
        history = instrument.history
        if len(history) < history.maxlen:  # type: ignore[operator]
            return
        # The recent prices' mean and spread (statistics.pstdev is exact, and about 20x slower).
        mean = sum(history) / len(history)
        spread = math.sqrt(sum([(p - mean) * (p - mean) for p in history]) / len(history)) or 1e-9
        score = (float(price) - mean) / spread
        position = instrument.position
        if position is None:
            if self.halted:
                return
            if abs(score) > self.args.entry_z:
                side = "short" if score > 0 else "long"
                quantity = max(1, int(self.args.notional / float(price)))
                candidate = Position(side, quantity, price, self.stop_price(side, price))
                if self.may_open(candidate):
                    instrument.position = candidate
                    self.fill(
                        instrument.symbol, "BUY" if side == "long" else "SELL", quantity, price, None, "open"
                    )
            return
        stop = position.stop
        if stop is not None and (price <= stop if position.side == "long" else price >= stop):
            self.close(instrument, stop, "stop loss")  # a stop order, filled at its price
            return
        change = (price - position.entry) / position.entry * (1 if position.side == "long" else -1)
        reverted = (score >= 0) if position.side == "long" else (score <= 0)
        if reverted or change <= -self.args.stop_loss or change >= self.args.take_profit:
            reason = "reverted" if reverted else ("stop loss" if change < 0 else "take profit")
            self.close(instrument, price, reason)

    def stop_price(self, side: str, entry: Decimal) -> Decimal | None:
        """With a loss limit, the stop order's price, rounded to the cent on the position's side."""
        if not self.loss_limit:
            return None
        if side == "long":
            return (entry * (1 - self.args.stop_loss)).quantize(CENT, rounding=ROUND_CEILING)
        return (entry * (1 + self.args.stop_loss)).quantize(CENT, rounding=ROUND_FLOOR)

    def may_open(self, candidate: Position) -> bool:
        """Whether the demo's own limits leave room for ``candidate`` (why not, once, in the log)."""
        book, now = self.book, self.clock()
        open_positions = [i.position for i in self.instruments if i.position is not None]
        waiting = ""
        if self.fill_limit:
            # Its opening and closing fills, and the closing fill of each position still open.
            needed = book.fills + len(open_positions) + 2
            if needed > book.fills_allowed(self.fill_limit, now):
                when = book.when_allowed(needed, self.fill_limit)
                waiting = f"{book.fills} of the day's {self.fill_limit} fills made; the next position " + (
                    f"waits until {when:%H:%M}" if when is not None else "waits for the next day"
                )
        if not waiting and self.loss_limit:
            at_risk = sum((p.risk for p in open_positions), candidate.risk)
            if book.realized - at_risk < -self.loss_limit:
                waiting = (
                    f"the day's realized P&L is {book.realized:+.2f}; no position while the open ones "
                    f"could take it below the demo's own limit of {-self.loss_limit:.2f}"
                )
        if waiting != self.waiting:
            self.waiting = waiting
            if waiting:
                log.info("No new position: %s.", waiting)
        return not waiting

    def close(self, instrument: Instrument, price: Decimal, reason: str) -> None:
        position = instrument.position
        assert position is not None
        sign = 1 if position.side == "long" else -1
        pnl = ((price - position.entry) * position.quantity * sign).quantize(CENT)
        instrument.position = None
        side = "SELL" if position.side == "long" else "BUY"
        self.fill(instrument.symbol, side, position.quantity, price, pnl, reason)

    def close_all(self, reason: str) -> None:
        for instrument in self.instruments:
            if instrument.position is not None:
                self.close(instrument, Decimal(str(instrument.price)).quantize(CENT), reason)

    def fill(
        self, symbol: str, side: str, quantity: int, price: Decimal, pnl: Decimal | None, note: str
    ) -> None:
        self.fills += 1
        if pnl is not None:
            self.realized += pnl
        self.cash += quantity * price if side == "SELL" else -quantity * price
        self.book.add(pnl)
        external_id = f"demo-{self.run_id}-{self.fills}"
        self.monitor.record_trade(
            external_id=external_id,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            strategy=STRATEGY,
            pnl=pnl,
            reason=note,
            paper=True,
        )
        result = "" if pnl is None else f", P&L {pnl:+.2f} (day {self.book.realized:+.2f})"
        # The order id in the log, as a real bot logs it: the record to check the site against.
        log.info("Fill %s: %s %d %s @ %s (%s)%s", external_id, side, quantity, symbol, price, note, result)

    def glitch(self) -> None:
        """What real feeds do now and then, so the event views have something to show."""
        symbol = self.rng.choice(self.instruments).symbol
        if self.rng.random() < 0.5:
            log.warning("Stale quote for %s; skipping one tick of it", symbol)
            self.monitor.event("data_quality", "warning", f"Stale quote for {symbol}", symbol=symbol)
        else:
            log.warning("Market data feed reconnecting")
            self.monitor.event("connection_retry", "info", "Market data feed reconnecting", attempt=1)


def fill_limit(text: str) -> int:
    """``--day-fills``: 0 (no limit), or at least the two fills of one position."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number of fills, got {text!r}") from None
    if value < 0 or value == 1:
        raise argparse.ArgumentTypeError(f"0 (no limit) or at least 2 (a position's two fills), got {value}")
    return value


def loss_limit(text: str) -> Decimal:
    """``--day-loss-limit``: a sum of money, 0 or more (0: no limit)."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"a sum of money such as 250, got {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"a sum of money, 0 (no limit) or more, got {text!r}")
    return value


# The defaults make a calm run for a new user: no warning under the site's default rules in its
# first ten minutes (tests/test_demo.py judges 200 seeds with the real rules), nor in a session.
# Its own limits do that: at most 40 fills a day, 12 at once and the rest paced over a session
# (the default trade-frequency warning is above 50 trades in a day), and no position that could
# take the day below -250 (the default daily-loss warning is at -500). Feed events (data_quality,
# connection_retry) are warnings under the default rules, so they are off unless --glitch-rate
# asks for them. The demo before those limits made about 40 fills in ten minutes: the
# trade-frequency warning came at about 13 minutes, and now and then a daily-loss warning.
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m monitor_client.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=os.environ.get("MONITOR_URL") or "http://127.0.0.1:8000")
    parser.add_argument("--key", default=os.environ.get("MONITOR_KEY", ""), help="default: $MONITOR_KEY")
    parser.add_argument("--symbols", type=lambda s: [x.strip().upper() for x in s.split(",") if x.strip()],
                        default=["AAPL", "MSFT", "NVDA", "TSLA"], help="comma separated")  # fmt: skip
    parser.add_argument(
        "--tick", type=float, default=2.0, help="seconds between price ticks (smaller is faster)"
    )
    parser.add_argument("--duration", type=float, default=0, help="seconds to trade; 0 runs until stopped")
    parser.add_argument("--volatility", type=float, default=0.004, help="per-tick log-price volatility")
    parser.add_argument("--notional", type=float, default=8_000, help="dollars per position")
    parser.add_argument(
        "--entry-z", type=float, default=2.4, help="distance from the mean that opens a trade"
    )
    parser.add_argument("--stop-loss", type=Decimal, default=Decimal("0.01"), help="fraction of entry")
    parser.add_argument("--take-profit", type=Decimal, default=Decimal("0.015"), help="fraction of entry")
    parser.add_argument(
        "--day-fills",
        type=fill_limit,
        default=40,
        help="most fills in a trading day, paced over a session (0: no limit)",
    )
    parser.add_argument(
        "--day-loss-limit",
        type=loss_limit,
        default=Decimal(250),
        help="opens no position that could take the day's realized P&L below minus this (0: no limit)",
    )
    parser.add_argument(
        "--losing",
        action="store_true",
        help="no limits of its own, and prices run against positions: see the loss alerts and the halt",
    )
    parser.add_argument(
        "--glitch-rate", type=float, default=0.0, help="chance per tick of a feed event (alerts as a warning)"
    )
    parser.add_argument("--heartbeat-every", type=float, default=15)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--spool-dir", type=Path, default=Path("data") / "spool" / "demo-bot")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def configure_logging(level: str) -> str | None:
    """The bot's logging setup (file, console, Loki when LOKI_URL is set); a problem as one line."""
    try:
        # "trading-bot", the contract's default: the dashboard's log panel and the docs' Loki
        # queries select the bot's logs by application="trading-bot".
        setup_logging(application="trading-bot", level=level)
    except ValueError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = configure_logging(args.log_level.upper())
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if not args.key:
        print(
            "Set MONITOR_KEY to the bot's write key (python manage.py create_bot demo-bot prints one), "
            "or run ./scripts/start.sh --demo.",
            file=sys.stderr,
        )
        return 2
    try:
        monitor = Monitor(args.url, args.key, args.spool_dir)
    except SpoolError as exc:
        print(exc, file=sys.stderr)
        return 2
    monitor.install_crash_hook()
    bot = PaperBot(monitor, args, book_path=args.spool_dir / BOOK_FILE)

    def stop(signum: int, frame: Any) -> None:
        log.info("Stopping (%s)", signal.Signals(signum).name)
        bot.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        bot.run()
    finally:
        monitor.event("shutdown", "info", "Demo bot stopped", fills=bot.fills, realized_pnl=str(bot.realized))
        if monitor.close(timeout=10):
            log.info("Everything reached the site.")
        else:
            log.warning(
                "Not everything reached the site; the rest waits in %s for the next start.", args.spool_dir
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
