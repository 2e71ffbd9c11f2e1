"""Anomaly rules benchmark: false alerts over a long history with no anomaly, how soon bursts are
caught, and what the rules add to the evaluation of one batch.

Run as ``.venv/bin/python bench/anomaly.py [--weeks 12] [--seed 7] [--bursts 10] [--batches 200]``.
In-process, over a throwaway SQLite database migrated as a new site's, with the seeded rules:

1. False alerts: a bot on the NYSE calendar with a daily rhythm (Poisson fills each minute of the
   session, by hour: busy at the open, quiet at lunch; half of them closing a position with a
   P&L drawn from a normal distribution) for ``--weeks`` weeks. Every minute's fills are one batch,
   judged as it arrives (``evaluate_trades``); three minutes past each hour the hourly figures are
   stored and the periodic pass runs (``evaluate_schedule``). Only the two anomaly rules are on, at
   the seeded sensitivity. Target: no alert.
2. Detection delay: after that history, ``--bursts`` bursts at open hours of the following days: a
   loop that fills 10 times a minute, a bot twice as busy as usual... For each, the fills and the
   minutes from the burst's first fill to the alert; a losing loop (10 fills a minute, -25 each);
   a quiet hour (no fill in an hour that always has some), caught by the pass after it ends.
3. Cost: one single-trade batch's evaluation (``evaluate_trades``) on that bot, every seeded rule
   that is on by default, with the anomaly rules on against off (alternating, median of
   ``--batches`` each). Target: on / off cost <= 1.10.
4. The same for one evaluation of the bot's state (a heartbeat with positions), for the record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from common import ROOT, code_version, machine_line, manage, run_as_script, site_env, verdict

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
# Fills per hour of the New York session (the 09:00 hour is the half hour from the open).
RHYTHM = {9: 30, 10: 20, 11: 12, 12: 4, 13: 6, 14: 12, 15: 25}
COST_TARGET = 1.10
ANOMALY = ("trade_rate_anomaly", "pnl_anomaly")


def setup_django(tmp: Path) -> None:
    env = site_env(tmp)
    manage(env, "migrate", "--noinput")
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitorsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Simulation:
    def __init__(self, seed: int) -> None:
        from trades import market
        from trades.models import Bot

        self.rng = random.Random(seed)
        self.bot = Bot.objects.create(name="steady", calendar="XNYS")
        self.calendar = market.calendar_for(self.bot)
        self.serial = 0

    def fills(self, at: dt.datetime, n: int, pnl: Decimal | None = None) -> list[int]:
        """``n`` fills at ``at``; without ``pnl``, half close a position with a normal P&L."""
        from trades.models import Trade

        rows = []
        for _ in range(n):
            self.serial += 1
            value = pnl
            if value is None and self.rng.random() < 0.5:
                value = Decimal(str(round(self.rng.gauss(2, 30), 2)))
            rows.append(
                Trade(
                    bot=self.bot,
                    external_id=f"t{self.serial}",
                    symbol="AAPL",
                    side="SELL",
                    quantity=1,
                    price=10,
                    pnl=value,
                    executed_at=at,
                    trading_day=self.calendar.trading_day_of(at),
                )
            )
        return [trade.pk for trade in Trade.objects.bulk_create(rows)]

    def usual_rate(self, minute: dt.datetime) -> float:
        """The bot's fills a minute at ``minute``: its rhythm while the market is open, else none."""
        if not self.calendar.is_open(minute):
            return 0.0
        local = minute.astimezone(NY)
        per_hour = RHYTHM.get(local.hour, 0)
        return per_hour / (30 if local.hour == 9 else 60)

    def hour(
        self, start: dt.datetime, judge: bool, extra: dict[int, tuple[int, Decimal | None]] | None = None
    ) -> list:
        """One hour of the bot from ``start`` (UTC): each minute's fills a batch, judged when ``judge``;
        at minute 3 the hourly task and the periodic pass. ``extra``: minute -> (fills, pnl) added.
        The alerts raised, with the minute."""
        from alerts.evaluation import evaluate_schedule, evaluate_trades
        from trades.hours import record_hours

        raised = []
        for m in range(60):
            minute = start + dt.timedelta(minutes=m)
            now = minute + dt.timedelta(seconds=30)
            ids = self.fills(minute, poisson(self.rng, self.usual_rate(minute)))
            if extra and m in extra:
                n, pnl = extra[m]
                ids += self.fills(minute, n, pnl)
            if ids and judge:
                raised += [(m, a) for a in evaluate_trades(self.bot.pk, ids, now=now)]
            if m == 3:
                record_hours(now)
                if judge:
                    raised += [(m, a) for a in evaluate_schedule(now=now)]
        return raised


def open_hours(calendar: object, start: dt.datetime, count: int, rng: random.Random) -> list[dt.datetime]:
    """``count`` open hours (10:00 to 15:00 New York) on the trading days from ``start``, one a day."""
    found, day = [], start.astimezone(NY).date()
    while len(found) < count:
        day += dt.timedelta(days=1)
        if calendar.is_trading_day(day):  # type: ignore[attr-defined]
            found.append(
                dt.datetime(day.year, day.month, day.day, rng.choice([10, 11, 12, 13, 14]), tzinfo=NY)
            )
    return [moment.astimezone(UTC) for moment in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=12, help="weeks of history with no anomaly (default 12)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bursts", type=int, default=10, help="bursts of each kind to time (default 10)")
    parser.add_argument("--batches", type=int, default=200, help="batches timed per mode (default 200)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-anomaly-") as tmp_name:
        setup_django(Path(tmp_name))
        from alerts.evaluation import evaluate_trades
        from alerts.models import Alert, AlertRule, Condition
        from trades.hours import record_hours
        from trades.models import Trade

        print(f"Anomaly rules benchmark, {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(machine_line())
        print(f"code: {ROOT} at {code_version()}")
        seeded = AlertRule.objects.filter(kind__in=ANOMALY)
        print("rules: " + ", ".join(f"{r.name} threshold {r.threshold}" for r in seeded))

        # 1. a long history with no anomaly
        AlertRule.objects.exclude(kind__in=ANOMALY).update(enabled=False)
        sim = Simulation(args.seed)
        start = dt.datetime(2026, 1, 5, tzinfo=NY).astimezone(UTC)  # a Monday
        end = start + dt.timedelta(weeks=args.weeks)
        judged_from = start + dt.timedelta(days=14)
        hour, raised, judged_hours, began = start, [], 0, time.monotonic()
        while hour < end:
            judge = hour >= judged_from
            judged_hours += judge and sim.calendar.is_open(hour + dt.timedelta(minutes=45))
            raised += [a for _, a in sim.hour(hour, judge)]
            hour += dt.timedelta(hours=1)
        fills = sim.serial
        print(
            f"\n1. False alerts: {args.weeks} weeks of a NYSE bot with a daily rhythm {RHYTHM} fills/hour"
            f" (Poisson), {fills} fills, judged from day 15 ({judged_hours} open hours judged by batch and"
            f" by the hourly pass; {time.monotonic() - began:.0f} s)"
        )
        false = [a for a in raised if a.level != "info"]
        print(f"   alerts: {len(false)}  (target 0)  {verdict(not false)}")
        for alert in raised[:6]:
            print(f"     {alert.created_at:%Y-%m-%d %H:%M}Z {alert.level} {alert.title}")

        # 2. detection delay
        def reset() -> None:
            Condition.objects.all().delete()
            Alert.objects.all().delete()

        print(f"\n2. Detection delay, {args.bursts} bursts of each kind at open hours after the history")
        cases = [
            ("loop, 10 fills/min", 10, None),
            ("twice as busy (+1 fill/min)", 1, None),
            ("losing loop, 10 fills/min at -25.00", 10, Decimal(-25)),
        ]
        rng = random.Random(args.seed + 1)
        at = hour
        between: list[object] = []  # alerts of the ordinary hours between bursts (not the one after)
        for name, per_minute, pnl in cases:
            delays: list[tuple[int, int]] = []
            missed = 0
            for burst_hour in open_hours(sim.calendar, at, args.bursts, rng):
                after_burst = True
                while at < burst_hour:  # ordinary hours up to the burst, judged (their alerts counted)
                    found = [a for _, a in sim.hour(at, True)]
                    between += [] if after_burst else found  # the hour after a burst judges the burst
                    after_burst = False
                    at += dt.timedelta(hours=1)
                reset()
                first = rng.randrange(5, 20)
                extra = {m: (per_minute, pnl) for m in range(first, 60)}
                caught = [
                    (m, a)
                    for m, a in sim.hour(at, True, extra)
                    if a.source == ("pnl_anomaly" if pnl is not None else "trade_rate_anomaly")
                ]
                at += dt.timedelta(hours=1)
                if not caught:
                    missed += 1
                    continue
                minute = caught[0][0]
                delays.append((minute - first + 1, (minute - first + 1) * per_minute))
                reset()
            if delays:
                minutes = [d[0] for d in delays]
                burst_fills = [d[1] for d in delays]
                print(
                    f"   {name:<38} caught {len(delays)}/{args.bursts}: minutes to the alert median"
                    f" {statistics.median(minutes):g}, max {max(minutes)}; burst fills median"
                    f" {statistics.median(burst_fills):g}, max {max(burst_fills)}"
                )
            else:
                print(f"   {name:<38} caught 0/{args.bursts}")
        # A quiet hour: no fill at all in a 10:00 hour (usually 20); the pass at 11:03 judges it.
        quiet_hour = open_hours(sim.calendar, at, 1, rng)[0].astimezone(NY).replace(hour=10).astimezone(UTC)
        while at < quiet_hour:
            sim.hour(at, True)
            at += dt.timedelta(hours=1)
        reset()
        rate, sim.usual_rate = sim.usual_rate, lambda minute: 0.0  # type: ignore[method-assign]
        sim.hour(at, True)
        sim.usual_rate = rate  # type: ignore[method-assign]
        at += dt.timedelta(hours=1)
        after = [(m, a) for m, a in sim.hour(at, True) if "fills in the hour" in a.title]
        print(
            "   quiet hour (0 fills, usually 20)      "
            + (
                f"caught at minute {after[0][0]} of the next hour (the pass after the hour ends)"
                if after
                else "missed"
            )
        )
        ended = [a for a in between if a.level == "info"]  # type: ignore[attr-defined]
        false = [a for a in between if a.level != "info"]  # type: ignore[attr-defined]
        print(
            f"   ordinary hours between the bursts (not the hour after each): {len(ended)} notices that"
            f" a burst was over, {len(false)} alerts (target 0)  {verdict(not false)}"
        )
        for alert in false[:5]:
            print(f"     {alert.created_at:%Y-%m-%d %H:%M}Z {alert.title}")  # type: ignore[attr-defined]

        # 3. cost of one batch's evaluation
        AlertRule.objects.update(enabled=True)
        AlertRule.objects.filter(name="position-size").update(enabled=False)  # off as seeded
        reset()
        record_hours(at)
        moment = open_hours(sim.calendar, at, 1, rng)[0] + dt.timedelta(minutes=20)
        times: dict[str, list[float]] = {"off": [], "on": []}
        for n in range(args.batches):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                AlertRule.objects.filter(kind__in=ANOMALY).update(enabled=mode == "on")
                ids = sim.fills(moment, 1)
                began = time.perf_counter()
                evaluate_trades(sim.bot.pk, ids, now=moment + dt.timedelta(seconds=5))
                times[mode].append(time.perf_counter() - began)
                Trade.objects.filter(pk__in=ids).delete()  # the hour stays a usual one
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(
            f"\n3. One single-trade batch's evaluation, the seeded rules on, {args.batches} batches per mode"
            f" (a bot with {args.weeks} weeks of hourly history, at an open hour)"
        )
        print(f"   anomaly rules off {off * 1000:.2f} ms, on {on * 1000:.2f} ms (medians)")
        ratio = on / off
        print(
            f"   on / off cost = {ratio:.2f} (target <= {COST_TARGET:.2f})  {verdict(ratio <= COST_TARGET)}"
        )

        # 4. cost of one evaluation of the bot's state (a heartbeat with positions)
        from alerts.evaluation import evaluate_state
        from trades.models import BotSnapshot

        position = [{"symbol": "AAPL", "quantity": "10", "unrealized_pnl": "5"}]
        BotSnapshot.objects.create(
            bot=sim.bot, taken_at=moment - dt.timedelta(minutes=15), positions=position, unrealized_pnl=5
        )
        times = {"off": [], "on": []}
        for n in range(args.batches):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                AlertRule.objects.filter(kind__in=ANOMALY).update(enabled=mode == "on")
                taken = moment + dt.timedelta(seconds=n)
                BotSnapshot.objects.create(bot=sim.bot, taken_at=taken, positions=position, unrealized_pnl=5)
                began = time.perf_counter()
                evaluate_state(sim.bot.pk, taken, now=taken + dt.timedelta(seconds=1))
                times[mode].append(time.perf_counter() - began)
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(
            f"\n4. One evaluation of the bot's state (a heartbeat with positions), the seeded rules on,"
            f" {args.batches} per mode:\n   pnl_anomaly off {off * 1000:.2f} ms, on {on * 1000:.2f} ms"
            f" (medians), on / off = {on / off:.2f} (no target: one state evaluation per queue wait)"
        )
        return 0


if __name__ == "__main__":
    run_as_script(main)
