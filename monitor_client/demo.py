"""A paper-trading demo bot: ``python -m monitor_client.demo``.

It trades nothing real. Prices are random walks; a mean-reversion strategy opens a
position when a price strays from its recent average and closes it when the price
comes back, or at a stop loss or take profit, so there are wins and losses. Every
fill goes through ``Monitor.record_trade`` (closing fills carry their P&L), with
heartbeats, events (startup, market_open, the odd data_quality or connection_retry,
risk_limit when the site halts trading, market_close, shutdown) and logs through
``monitor_client.setup_logging``, exactly as a real bot would use them.

Configured by ``MONITOR_URL`` (default ``http://127.0.0.1:8000``) and ``MONITOR_KEY``
(``python manage.py create_bot demo-bot`` prints one), or ``--url`` / ``--key``.
``./scripts/start.sh --demo`` does all of that and runs it beside the site.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import secrets
import signal
import statistics
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from monitor_client.client import Monitor
from monitor_client.logsetup import setup_logging
from monitor_client.spool import SpoolError

log = logging.getLogger("demo_bot")

STRATEGY = "mean_reversion"
START_PRICES = {"AAPL": 187.0, "MSFT": 412.0, "NVDA": 128.0, "TSLA": 251.0, "AMD": 156.0, "JPM": 198.0}
CENT = Decimal("0.01")


@dataclass
class Position:
    side: str  # "long" or "short"
    quantity: int
    entry: Decimal


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

    def __init__(self, monitor: Monitor, args: argparse.Namespace):
        self.monitor = monitor
        self.args = args
        self.rng = random.Random(args.seed)
        self.instruments = [Instrument(s, START_PRICES.get(s, 100.0)) for s in args.symbols]
        # The time alone is not unique: a bot killed and restarted within the same second
        # would reuse its external ids, and the site would drop the new fills as repeats.
        self.run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
        self.fills = 0
        self.realized = Decimal(0)
        self.halted = False
        self.stop = threading.Event()

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
        monitor.event(
            "market_close",
            "info",
            f"Paper session closed: {self.fills} fills, realized P&L {self.realized:+.2f}",
            fills=self.fills,
            realized_pnl=str(self.realized),
        )
        log.info("Session closed: %d fills, realized P&L %+.2f", self.fills, self.realized)

    def step(self, ticks: int) -> None:
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
        for instrument in self.instruments:
            price = instrument.tick(self.rng, self.args.volatility, self.drift(instrument))
            self.trade(instrument, price)

    def drift(self, instrument: Instrument) -> float:
        """With --losing, prices run against open positions: the daily-loss warning fires within
        about two minutes and the max-daily-loss halt within about four (at the default tick)."""
        if not self.args.losing or instrument.position is None:
            return 0.0
        return -self.args.volatility if instrument.position.side == "long" else self.args.volatility

    def trade(self, instrument: Instrument, price: Decimal) -> None:
        history = instrument.history
        if len(history) < history.maxlen:  # type: ignore[operator]
            return
        mean = statistics.fmean(history)
        spread = statistics.pstdev(history) or 1e-9
        score = (float(price) - mean) / spread
        position = instrument.position
        if position is None:
            if self.halted:
                return
            if abs(score) > self.args.entry_z:
                side = "short" if score > 0 else "long"
                quantity = max(1, int(self.args.notional / float(price)))
                instrument.position = Position(side, quantity, price)
                self.fill(
                    instrument.symbol, "BUY" if side == "long" else "SELL", quantity, price, None, "open"
                )
            return
        change = (price - position.entry) / position.entry * (1 if position.side == "long" else -1)
        reverted = (score >= 0) if position.side == "long" else (score <= 0)
        if reverted or change <= -self.args.stop_loss or change >= self.args.take_profit:
            reason = "reverted" if reverted else ("stop loss" if change < 0 else "take profit")
            self.close(instrument, price, reason)

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
        result = "" if pnl is None else f", P&L {pnl:+.2f} (day {self.realized:+.2f})"
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


# The defaults make a calm first run for a new user (measured over 40 seeds of ten minutes
# each: about 40 fills with wins and losses, under the default trade-frequency limit of 50;
# the -500 daily-loss warning in 2 of 40, the -1000 halt in none; a feed event every few
# minutes). The first run used to trade 1,000 fills in ten minutes, warn within 10 s and
# halt within a minute, so the alerts a new user saw first were all about the demo itself.
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
    parser.add_argument("--losing", action="store_true", help="prices run against positions: see loss alerts")
    parser.add_argument("--glitch-rate", type=float, default=0.005, help="chance per tick of a feed event")
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
    bot = PaperBot(monitor, args)

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
