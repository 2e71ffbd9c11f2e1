"""The cockpit's cost of setting a busy bot's strategies side by side; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/strategies.py [--quick]``. One site over a throwaway SQLite
database with 1,000,000 trades of the bot ``bench`` written straight into the table (as
``bench/admin.py`` loads them: 250 trading days up to today, 20 symbols, 5 strategies, half of
them closed), then, in the site's own process (``manage.py shell``), the median of ``REPEATS``
runs of what a bot card computes for its last 30 trading days:

- before: ``period_summary(breakdown=False)`` and its P&L chart (the cockpit until now);
- after: ``period_summary(breakdown="strategy")``, the P&L chart, and the strategies' table and
  chart (``cockpit.StrategiesView``);
- the full breakdown the report page computes (strategy and symbol), for comparison;
- the whole cockpit (``cockpit.build()``, every part of it), before (its period summary made
  with ``breakdown=False`` as until now) and after.

``--quick`` stops at 100,000 trades: a smoke test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
from pathlib import Path

from admin import load, setup
from common import code_version, machine_line, manage, run_as_script, site_env
from ingest import MARKET_TZ, TradeFactory, trading_days

LARGE = 1_000_000
QUICK_LARGE = 100_000
REPEATS = 9

TIMING = """
import statistics, time
from unittest import mock
from monitorsite import cockpit
from monitorsite.chart import pnl_chart
from trades import market
from trades.models import Bot, Trade, TradeQuerySet

bot = Bot.objects.get(name="bench")
calendar = market.calendar_for(bot)
start, end = calendar.period(None, calendar.today())
trades = Trade.objects.for_bot(bot)

def before():
    pnl_chart(trades.period_summary(start, end, breakdown=False))

def after():
    period = trades.period_summary(start, end, breakdown="strategy")
    pnl_chart(period)
    cockpit.StrategiesView.of(period)

def report():
    trades.period_summary(start, end)

def median_ms(run):
    run()  # warm: the database's pages and Python's imports
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)

period = trades.period_summary(start, end, breakdown="strategy")
print(f"period: {start} to {end}, {period.overall.total_trades:,} trades"
      f" ({period.overall.closed_trades:,} closed), {len(period.by_strategy)} strategies")
results = [("before", median_ms(before)), ("after", median_ms(after))]
for name, run in (("before", before), ("after", after)):  # in turn again: a shared machine drifts
    results.append((name, median_ms(run)))
low = {name: min(ms for each, ms in results if each == name) for name in ("before", "after")}
print(f"bot card before (breakdown=False, P&L chart):             {low['before']:7.1f} ms")
print(f"bot card after (breakdown='strategy', + table and chart): {low['after']:7.1f} ms")
print(f"report page's breakdown (strategy and symbol), no charts: {median_ms(report):7.1f} ms")
original = TradeQuerySet.period_summary

def as_before(self, start, end, *, breakdown=True):
    return original(self, start, end, breakdown=False if breakdown == "strategy" else breakdown)

def cockpit_before():
    with mock.patch.object(TradeQuerySet, "period_summary", as_before):
        cockpit.build()

whole = [("before", median_ms(cockpit_before)), ("after", median_ms(cockpit.build))]
whole += [("before", median_ms(cockpit_before)), ("after", median_ms(cockpit.build))]
low = {name: min(ms for each, ms in whole if each == name) for name in ("before", "after")}
print(f"whole cockpit before (cockpit.build(), one bot):          {low['before']:7.1f} ms")
print(f"whole cockpit after:                                      {low['after']:7.1f} ms")
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 trades (a smoke test)")
    args = parser.parse_args(argv)
    count = QUICK_LARGE if args.quick else LARGE
    tmp = Path(tempfile.mkdtemp(prefix="bench-strategies-"))
    try:
        today = dt.datetime.now(MARKET_TZ).date()
        days = trading_days(250, today) + ([today] if today.weekday() < 5 else [])
        env = site_env(tmp)
        bot_id = setup(env, tmp / "trades.db")
        seconds = load(tmp / "trades.db", TradeFactory(seed=11), days, count, bot_id, "large")
        print(f"Strategies side by side on the cockpit, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(machine_line())
        print(f"code: {code_version()}")
        print(
            f"{count:,} trades over {len(days)} trading days up to {today} (written in {seconds:.0f} s);"
            f" median of {REPEATS} runs each, in the site's process; before and after timed twice in"
            " turn, the lower median kept"
        )
        print(manage(env, "shell", "-v", "0", "-c", TIMING.replace("REPEATS", str(REPEATS))), end="")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_as_script(main)
