"""Alerts benchmark: breach-to-channel latency, and what rules cost single-trade ingestion.

Run as ``.venv/bin/python bench/alerts.py [--alerts N] [--seconds S] [--rounds R]
[--channels discord,telegram]``. It starts the site as users run it (its web server, and a
real ``manage.py qcluster``) over a throwaway SQLite database, and the tests' loopback
stand-ins of the chosen channels (Discord's webhook, Telegram's Bot API; Telegram is
configured by its environment variables, as its default channel), then measures:

1. latency: from the API's answer to a trade that breaches the max daily loss, to each
   loopback service receiving the critical alert (one breach at a time, each on its
   own trading day so each raises a new alert; only that rule on); target p95 <= 2 s
   for every channel.
   The cluster's ORM broker polls its queue every ``Q_CLUSTER["poll"]`` = 0.5 s when
   idle, which is most of the figure (see docs/ALERTS.md);
2. throughput: single-trade POSTs from 4 client processes with every default rule on,
   against every rule off, in alternating rounds of the same run (the order flips each
   round, so a drift in the shared machine's load hits both); target on/off >= 90%.

A missed target is reported as FAIL; the exit status is 0 unless the run broke.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import (
    HOST,
    ROOT,
    ClientJob,
    Server,
    code_version,
    free_port,
    machine_line,
    manage,
    new_site_with_bot,
    percentile,
    run_as_script,
    run_clients,
    site_env,
    start_cluster,
    stop_group,
    verdict,
)

sys.path.insert(0, str(ROOT))
from tests import telegram_server
from tests.discord_server import DiscordServer  # the loopback webhook the tests use
from tests.telegram_server import TelegramServer

LATENCY_TARGET_P95_S = 2.0
THROUGHPUT_TARGET_RATIO = 0.90
CLIENTS = 4
TRADES = "/api/v1/trades/"


def sql(db: Path, statement: str, *params: object) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        return conn.execute(statement, params).fetchall()


def post(port: int, key: str, trade: dict[str, object]) -> int:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{TRADES}",
        data=json.dumps(trade).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def measure_latency(
    port: int, key: str, discord: DiscordServer | None, telegram: TelegramServer | None, count: int
) -> dict[str, list[float]]:
    """Seconds from the API's answer to each service's receipt, per breach (the first one warms up)."""
    first_day = dt.date(2025, 1, 6)
    latencies: dict[str, list[float]] = {}
    for n in range(count + 1):
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
        seen_discord = len(discord.messages) if discord else 0
        seen_telegram = len(telegram.messages) if telegram else 0
        status = post(port, key, trade)
        answered, answered_mono = time.time(), time.monotonic()
        if status != 201:
            raise RuntimeError(f"the breaching trade got HTTP {status}")
        if discord is not None:
            message = discord.wait_for_messages(seen_discord + 1, timeout=60)[seen_discord]
            title = message.payload["embeds"][0]["title"]
            if not title.startswith("🚨") or str(day) not in title:
                raise RuntimeError(f"unexpected alert: {title}")
            if n:
                latencies.setdefault("discord", []).append(message.at - answered)
        if telegram is not None:
            deadline = time.monotonic() + 60
            while len(telegram.messages) <= seen_telegram:
                if time.monotonic() > deadline:
                    raise RuntimeError("no Telegram message within 60 s")
                time.sleep(0.01)
            text = telegram.messages[seen_telegram]["text"]
            if not text.startswith("🚨") or str(day) not in text:
                raise RuntimeError(f"unexpected alert: {text[:80]}")
            if n:
                latencies.setdefault("telegram", []).append(
                    telegram.received_at[seen_telegram] - answered_mono
                )
    return latencies


def single_trade_jobs(port: int, key: str, seconds: float, prefix: str) -> list[ClientJob]:
    template = (
        b'{"external_id": "' + prefix.encode() + b'-%d", "symbol": "AAPL", "side": "BUY",'
        b' "quantity": 1, "price": 10, "strategy": "bench"}'
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [
        ClientJob(port, "POST", TRADES, headers, (201,), 100_000, seconds, template=template, first=i * 10**6)
        for i in range(CLIENTS)
    ]


def evaluations(log: Path) -> int:
    """Evaluation tasks the cluster has run so far (django-q2 logs one line per task)."""
    return log.read_text(errors="replace").count("Processed 'alerts.tasks.evaluate_trades'")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20, help="breaches to time (default 20)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each throughput round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each mode (default 4)")
    parser.add_argument(
        "--channels", default="discord,telegram", help="loopback channels: discord, telegram or both"
    )
    args = parser.parse_args()
    kinds = [k.strip() for k in args.channels.split(",") if k.strip()]
    if not kinds or set(kinds) - {"discord", "telegram"}:
        parser.error("--channels takes discord, telegram or both")

    discord = DiscordServer(burst=10_000).start() if "discord" in kinds else None
    telegram = TelegramServer().start() if "telegram" in kinds else None
    server: Server | None = None
    cluster: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "trades.db"
        cluster_log = tmp / "qcluster.log"
        try:
            # The cluster's per-task lines, which evaluations() counts, are off on the console by default.
            env = site_env(tmp) | {"LOG_TASKS": "true"}
            if telegram is not None:
                env |= {
                    "TELEGRAM_BOT_TOKEN": telegram_server.TOKEN,
                    "TELEGRAM_CHAT_ID": telegram_server.CHAT_ID,
                    "TELEGRAM_API_URL": telegram.api_url,
                }
            key = new_site_with_bot(env)
            manage(env, "setup_schedules")
            if discord is not None:
                sql(db, "UPDATE alerts_channel SET config = ?", json.dumps({"webhook_url": discord.url}))
            server = Server(env, free_port(), tmp / "web.log")
            server.wait_ready()
            cluster = start_cluster(env, cluster_log)
            print(f"Alerts benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
            print(machine_line())
            print(
                f"site: waitress (monitorsite.serve), {server.threads()} threads,"
                " qcluster with 2 workers (poll 0.5 s)"
            )
            print(f"code: {ROOT} at {code_version()}")

            names = " + ".join(kinds)
            print(f"\n1. Breach -> channel latency ({names}), {args.alerts} critical alerts, one at a time")
            sql(db, "UPDATE alerts_alertrule SET enabled = (name = 'max-daily-loss')")
            per_channel = measure_latency(server.port, key, discord, telegram, args.alerts)
            for kind, latencies in per_channel.items():
                p50, p95 = statistics.median(latencies), percentile(latencies, 95)
                print(
                    f"   {kind:<9} p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms,"
                    f" max {max(latencies) * 1000:.0f} ms; p95 / target ({LATENCY_TARGET_P95_S:.0f} s)"
                    f" = {p95 / LATENCY_TARGET_P95_S:.2f}  {verdict(p95 <= LATENCY_TARGET_P95_S)}"
                )

            rounds = f"{args.rounds} x {args.seconds:g} s per mode"
            print(f"\n2. Single-trade POSTs, {CLIENTS} client processes, {rounds}")
            rates: dict[str, list[float]] = {"off": [], "on": []}
            posted_on, errors = 0, 0
            tasks_before = evaluations(cluster_log)
            for round_no in range(args.rounds):
                for mode in ("off", "on") if round_no % 2 == 0 else ("on", "off"):
                    sql(db, "UPDATE alerts_alertrule SET enabled = ?", int(mode == "on"))
                    time.sleep(1)  # the previous round's evaluations finish first
                    run = run_clients(single_trade_jobs(server.port, key, args.seconds, f"{mode}{round_no}"))
                    rates[mode].append(run.rate)
                    posted_on += run.ok if mode == "on" else 0
                    errors += run.errors
            time.sleep(3)
            tasks = evaluations(cluster_log) - tasks_before
            off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
            print(f"   rules off (baseline) {off:7.1f} trades/s  rounds {[round(r) for r in rates['off']]}")
            print(f"   rules on             {on:7.1f} trades/s  rounds {[round(r) for r in rates['on']]}")
            print(f"   evaluation tasks run: {tasks} for {posted_on} batches with rules on, errors {errors}")
            ratio = on / off
            print(
                f"   on / off = {ratio:.2f} (target >= {THROUGHPUT_TARGET_RATIO:.2f})"
                f"  {verdict(ratio >= THROUGHPUT_TARGET_RATIO and not errors)}"
            )
            unsent = sql(db, "SELECT COUNT(*) FROM alerts_alert WHERE state IN ('pending', 'sending')")[0][0]
            print(f"\nalerts left unsent at the end: {unsent}")
            print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            return 0
        finally:
            if cluster is not None:
                stop_group(cluster)
            if server is not None:
                server.stop()
            for stand_in in (discord, telegram):
                if stand_in is not None:
                    stand_in.stop()


if __name__ == "__main__":
    run_as_script(main)
