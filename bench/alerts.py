"""Alerts benchmark: breach-to-Discord latency, and what rules cost single-trade ingestion.

Run as ``.venv/bin/python bench/alerts.py [--alerts N] [--seconds S]`` from the
repository root. It starts the site as users run it (gunicorn with 4 workers and
a real ``qcluster`` over a throwaway SQLite database) and the tests' loopback
Discord webhook, then measures:

1. latency: from the API's answer to a trade that breaches the max daily loss, to
   the loopback webhook receiving the critical alert (one breach at a time, each
   on its own trading day so each is a new alert); target p95 <= 2 s;
2. throughput: single-trade POSTs from 4 client threads with every default rule
   on, against every rule off, in alternating rounds of the same run; target
   rules-on / rules-off >= 90%.

The cluster's ORM broker polls its queue every ``Q_CLUSTER["poll"]`` = 0.5 s, which
bounds the queueing part of the latency at half a second on average; see
docs/ALERTS.md for the cost of polling faster.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.discord_server import DiscordServer  # noqa: E402
from tests.harness import Site, free_port, manage, site_env, start_gunicorn, stop, wait_for  # noqa: E402

LATENCY_TARGET_P95_S = 2.0
THROUGHPUT_TARGET_RATIO = 0.90
CLIENTS = 4


def sql(site: Site, statement: str, *params: object) -> None:
    with sqlite3.connect(site.tmp / "trades.db", timeout=30) as db:
        db.execute(statement, params)


def evaluations(site: Site) -> int:
    """Evaluation tasks the cluster has run so far (django-q2 logs one line per task)."""
    return site.log("qcluster.log").count("Processed 'alerts.tasks.evaluate_trades'")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def measure_latency(site: Site, key: str, discord: DiscordServer, count: int) -> list[float]:
    """One breach at a time; each trade falls on its own day, so each raises one critical alert."""
    headers = {"Authorization": f"Bearer {key}"}
    first_day = dt.date(2025, 1, 6)
    latencies = []
    for n in range(count + 1):  # the first one warms the cluster's workers up and is not counted
        day = first_day + dt.timedelta(days=n)
        trade = {
            "external_id": f"breach-{n}",
            "symbol": "TSLA",
            "side": "SELL",
            "quantity": 1,
            "price": 10,
            "pnl": -1500,
            "executed_at": f"{day.isoformat()}T15:00:00-05:00",
        }
        seen = len(discord.messages)
        response = requests.post(f"{site.url}/api/v1/trades/", json=trade, headers=headers, timeout=30)
        answered = time.time()
        assert response.status_code == 201, response.text
        message = discord.wait_for_messages(seen + 1, timeout=60)[seen]
        title = message.payload["embeds"][0]["title"]
        assert title.startswith("🚨") and str(day) in title, title
        if n:
            latencies.append(message.at - answered)
    return latencies


def post_for(site: Site, key: str, seconds: float, prefix: str) -> tuple[float, int]:
    """Single-trade POSTs from CLIENTS threads for ``seconds``: trades per second, and how many."""
    done = [0] * CLIENTS
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        n = 0
        while time.monotonic() < stop_at:
            trade = {
                "external_id": f"{prefix}-{index}-{n}",
                "symbol": "AAPL",
                "side": "BUY",
                "quantity": 1,
                "price": 10,
                "strategy": "bench",
            }
            response = session.post(f"{site.url}/api/v1/trades/", json=trade, timeout=30)
            assert response.status_code == 201, response.text
            n += 1
        done[index] = n

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started), sum(done)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20, help="breaches to time (default 20)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each mode, alternating")
    args = parser.parse_args()

    discord = DiscordServer(burst=1000).start()
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp_name:
        tmp = Path(tmp_name)
        env = site_env(tmp)
        manage(env, "migrate", "--noinput")
        manage(env, "setup_schedules")
        port = free_port()
        site = Site(url=f"http://127.0.0.1:{port}", env=env, tmp=tmp, processes=[])
        try:
            start_gunicorn(site, port, workers=4)
            wait_for(f"{site.url}/api/v1/health/")
            key = site.create_bot("bench")
            sql(site, "UPDATE alerts_channel SET webhook_url = ?", discord.url)
            site.start_cluster()

            # 1. latency, with only the max-daily-loss rule on (one alert per breach).
            sql(site, "UPDATE alerts_alertrule SET enabled = (name = 'max-daily-loss')")
            latencies = measure_latency(site, key, discord, args.alerts)
            p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
            print(f"breach -> Discord latency over {len(latencies)} alerts (cluster poll 0.5 s):")
            print(
                f"  p50 {p50 * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms   max {max(latencies) * 1000:7.0f} ms"
            )
            verdict = "PASS" if p95 <= LATENCY_TARGET_P95_S else "FAIL"
            print(
                f"  p95 / target {LATENCY_TARGET_P95_S:.0f} s = {p95 / LATENCY_TARGET_P95_S:.2f}  {verdict}"
            )

            # 2. throughput, rules off against every default rule on, alternating.
            rates: dict[str, list[float]] = {"off": [], "on": []}
            posted_on = 0
            tasks_before = evaluations(site)
            for round_no in range(args.rounds):
                # Alternate which mode goes first, so a drift in the machine's load hits both alike.
                for mode in ("off", "on") if round_no % 2 == 0 else ("on", "off"):
                    enabled = 0 if mode == "off" else 1
                    sql(site, "UPDATE alerts_alertrule SET enabled = ?", enabled)
                    time.sleep(1)  # let the queue settle between rounds
                    rate, posted = post_for(site, key, args.seconds, f"{mode}{round_no}")
                    rates[mode].append(rate)
                    posted_on += posted if mode == "on" else 0
            time.sleep(2)
            tasks = evaluations(site) - tasks_before
            off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
            print(
                f"single-trade POST throughput, {CLIENTS} clients, {args.rounds} x {args.seconds:g} s per mode:"
            )
            print(f"  rules off (baseline) {off:7.1f} trades/s   rounds {[round(r) for r in rates['off']]}")
            print(f"  rules on             {on:7.1f} trades/s   rounds {[round(r) for r in rates['on']]}")
            print(f"  evaluation tasks run: {tasks} for {posted_on} single-trade batches with rules on")
            ratio = on / off
            verdict = "PASS" if ratio >= THROUGHPUT_TARGET_RATIO else "FAIL"
            print(f"  on / off = {ratio:.2f} (target >= {THROUGHPUT_TARGET_RATIO:.2f})  {verdict}")
        finally:
            for process in site.processes:
                stop(process)
            discord.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
