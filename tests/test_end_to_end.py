"""The whole flow end to end, and the faults it must survive, with real processes on loopback.

The site runs under its real web server (and the django-q2 cluster where alerts
matter), the demo bot (``python -m monitor_client.demo``) trades against it through
``monitor_client``, the bot's logs go to the loopback Loki. Every check compares
what the bot itself logged with what reached the other side of a socket: the
database, Loki.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
import requests

from backups.postgres import client_binary
from tests.discord_server import DiscordServer
from tests.end_to_end import (
    BOT,
    SESSION_CLOSED,
    Stack,
    allow_alert_bursts,
    assert_each_fill_stored_once,
    cluster_idle,
    eventually,
    new_stack,
)
from tests.harness import clear_of_market_midnight, on_postgres, site_database_name, wait_for
from tests.loopback_loki import LoopbackLoki
from tests.storage_servers import Service, start_moto

pytestmark = pytest.mark.server

# Fast ticks so a few seconds hold dozens of fills, without the demo's own day limits (they pace
# its fills over a session); no feed glitches (their events are noise here); heartbeats every second.
NO_DAY_LIMITS = ("--day-fills", "0", "--day-loss-limit", "0")
FAST = ("--tick", "0.05", *NO_DAY_LIMITS, "--glitch-rate", "0", "--heartbeat-every", "1")
# Prices run against every position: the daily loss (-500) and then the max daily loss
# (-1000) are breached within seconds, and the site halts trading. With this seed the
# day's realized P&L, once at -500 or below, never comes back above it (a recovery
# would end the breach and a new one would rightly alert again).
LOSING = ("--losing", "--seed", "16")
HALTED = "The monitoring site halted trading"


@pytest.fixture
def loki() -> Iterator[LoopbackLoki]:
    server = LoopbackLoki()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def discord() -> Iterator[DiscordServer]:
    server = DiscordServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def stack(tmp_path: Path, migrated_template: Path) -> Iterator[Stack]:
    """A prepared site (database, the bot ``demo-bot`` and its key), nothing started yet.

    Whatever a test starts is stopped afterwards, process group by process group;
    the logs are printed (pytest shows them when the test failed).
    """
    instance = new_stack(tmp_path)
    instance.prepare(migrated_template)
    try:
        yield instance
    finally:
        instance.stop_all()
        print(instance.logs())


def fills_logged_since(stack: Stack, count: int, more: int) -> bool:
    return len(stack.logged_fills()) >= count + more


def footers(discord: DiscordServer) -> list[str]:
    return [embed.get("footer", {}).get("text", "") for embed in discord.embeds()]


TRADE_ROWS = (
    "SELECT t.external_id, b.name, t.symbol, t.side, t.quantity, t.price, t.strategy, t.pnl,"
    " t.executed_at, t.metadata"
    " FROM trades_trade t JOIN trades_bot b ON b.id = t.bot_id ORDER BY t.id"
)


def trade_rows(database: Path | str) -> list[tuple[object, ...]]:
    """The trades of a SQLite file, or of a PostgreSQL database given by its URL."""
    if isinstance(database, str):
        with psycopg.connect(database) as connection:
            return connection.execute(TRADE_ROWS).fetchall()
    with sqlite3.connect(database) as db:
        return db.execute(TRADE_ROWS).fetchall()


def restored_copy(stack: Stack) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """``backup_now``, then the backup restored apart from the site: the trades of both."""
    if not on_postgres():
        backed_up = stack.manage("backup_now")
        assert "uploaded trades_latest.db" in backed_up.stdout
        restored = stack.tmp / "restored.db"
        stack.manage("restore_backup", "latest", "--output", str(restored))
        return trade_rows(restored), trade_rows(stack.tmp / "trades.db")
    # On PostgreSQL the backup is a pg_dump file: saved with --output, then restored into a new database.
    backed_up = stack.manage("backup_now")
    assert "uploaded trades_latest.pgdump" in backed_up.stdout
    dump = stack.tmp / "restored.pgdump"
    stack.manage("restore_backup", "latest", "--output", str(dump))
    site_url = stack.env["DATABASE_URL"]
    name = site_database_name(stack.tmp / "restored")
    with psycopg.connect(site_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    restored_url = site_url.rsplit("/", 1)[0] + f"/{name}"
    subprocess.run(
        [client_binary("pg_restore"), "--no-owner", f"--dbname={restored_url}", str(dump)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return trade_rows(restored_url), trade_rows(site_url)


def test_the_demo_bot_trades_alerts_logs_and_its_trades_restore_from_a_backup(
    loki: LoopbackLoki, discord: DiscordServer, moto: Service, stack: Stack
) -> None:
    bucket = "trading-backups"
    credentials = {
        "AWS_ACCESS_KEY_ID": moto.extra["access_key"],
        "AWS_SECRET_ACCESS_KEY": moto.extra["secret_key"],
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=bucket)
    stack.env.update(
        DISCORD_WEBHOOK_URL=discord.url,
        LOKI_URL=loki.url,
        CLOUD_STORAGE_PROVIDER="aws",
        AWS_S3_BUCKET=bucket,
        AWS_REGION="us-east-1",
        AWS_ENDPOINT_URL=moto.url,
        **credentials,
    )
    allow_alert_bursts(stack)
    clear_of_market_midnight(15)  # one trading day: its loss alerts once each, the halt in force
    stack.start_web()
    stack.start_cluster()

    demo = stack.start_demo(*FAST, *LOSING)
    eventually(lambda: HALTED in stack.bot_log_text(), "the site halting the losing bot", timeout=120)
    output = demo.finish()
    eventually(lambda: cluster_idle(stack), "the cluster done with the run's trades and alerts", timeout=120)

    # Every fill the bot recorded is stored, once.
    assert "Everything reached the site." in output
    logged = stack.logged_fills()
    assert_each_fill_stored_once(stack, logged, stack.stored_fills())
    (closed,) = SESSION_CLOSED.findall(output)
    assert int(closed) == len(logged) > 0

    # The daily-loss rule fired once, and exactly that alert reached Discord, once, as a warning.
    ((alert_id, level, state, subject),) = stack.sql(
        "SELECT id, level, state, subject FROM alerts_alert WHERE source = 'daily_loss'"
    )
    assert (level, state) == ("warning", "sent")
    ((bot_id,),) = stack.sql("SELECT id FROM trades_bot WHERE name = ?", BOT)
    assert subject.startswith(f"bot-{bot_id}:")
    daily_loss = [e for e in discord.embeds() if " · daily_loss · " in e.get("footer", {}).get("text", "")]
    assert len(daily_loss) == 1
    assert daily_loss[0]["footer"]["text"] == f"warning · daily_loss · alert #{alert_id}"
    # The demo reports its positions, so the day is judged with them marked to market.
    day_loss_title = rf"⚠️ {BOT}: day P&L -[0-9,.]+ on [0-9-]+ \(open positions -?[0-9,.]+\)"
    assert re.fullmatch(day_loss_title, daily_loss[0]["title"]), daily_loss[0]["title"]
    # The max daily loss went out as critical and halted trading, which the bot obeyed.
    ((halt_id,),) = stack.sql(
        "SELECT id FROM alerts_alert WHERE source = 'max_daily_loss' AND state = 'sent'"
    )
    assert footers(discord).count(f"critical · max_daily_loss · alert #{halt_id}") == 1
    status = requests.get(
        f"{stack.url}/api/v1/status/", headers={"Authorization": f"Bearer {stack.key}"}, timeout=10
    ).json()
    assert status["trading_allowed"] is False
    # Every alert the site sent arrived exactly once.
    sent = {str(pk) for (pk,) in stack.sql("SELECT id FROM alerts_alert WHERE state = 'sent'")}
    arrived = Counter(text.rpartition(" alert #")[2] for text in footers(discord))
    assert set(arrived) == sent and set(arrived.values()) == {1}

    # The bot's logs reached Loki with its labels: every fill, as an info line of its logger.
    bot_entries = eventually(
        lambda: [e for e in loki.entries if e.labels.get("application") == "trading-bot"], "bot logs in Loki"
    )
    assert all({"level", "logger"} <= set(entry.labels) for entry in bot_entries)
    fills = [e for e in bot_entries if e.line.startswith("Fill ")]
    assert {e.line.split(":")[0].removeprefix("Fill ") for e in fills} == set(logged)
    assert {(e.labels["level"], e.labels["logger"]) for e in fills} == {("info", "demo_bot")}
    assert any(e.labels["level"] == "warning" and e.line.startswith(HALTED) for e in bot_entries)

    # A backup in S3 (moto) restores to a database holding the same trades.
    rows, live_rows = restored_copy(stack)
    stored_objects = {item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert ("trades_latest.pgdump" if on_postgres() else "trades_latest.db") in stored_objects
    assert rows == live_rows
    assert {row[0] for row in rows} >= set(logged)


def test_site_down_and_back_up_while_the_bot_trades_loses_and_doubles_nothing(stack: Stack) -> None:
    stack.start_web()
    demo = stack.start_demo(*FAST, "--seed", "3")
    eventually(lambda: len(stack.stored_fills()) >= 5, "the demo's first fills stored")

    stack.stop_web()
    logged_at_outage = len(stack.logged_fills())
    eventually(lambda: fills_logged_since(stack, logged_at_outage, 20), "20 fills recorded, the site down")
    eventually(lambda: "Cannot ship to" in stack.bot_log_text(), "the client reporting the outage")
    down_fills = stack.logged_fills()[logged_at_outage:]
    assert not set(down_fills) & set(stack.stored_fills())

    stack.start_web()
    eventually(lambda: set(down_fills) <= set(stack.stored_fills()), "the spooled fills shipped", timeout=90)
    output = demo.finish()

    assert "Everything reached the site." in output
    logged = stack.logged_fills()
    assert_each_fill_stored_once(stack, logged, stack.stored_fills())
    (closed,) = SESSION_CLOSED.findall(output)
    assert int(closed) == len(logged)
    assert "The site takes data again" in stack.bot_log_text()


def test_bot_killed_mid_run_and_restarted_on_its_spool_loses_and_doubles_nothing(stack: Stack) -> None:
    stack.start_web()
    first = stack.start_demo(*FAST, "--seed", "4")
    eventually(lambda: len(stack.stored_fills()) >= 5, "the demo's first fills stored")

    # The site freezes (SIGSTOP): the shipper's request in flight gets no answer and new
    # fills wait in the spool. Then the bot dies without a chance to clean up.
    assert stack.web is not None
    os.killpg(stack.web.pid, signal.SIGSTOP)
    try:
        frozen_at = len(stack.logged_fills())
        eventually(lambda: fills_logged_since(stack, frozen_at, 10), "10 fills recorded while the site hangs")
        first.kill()
    finally:
        os.killpg(stack.web.pid, signal.SIGCONT)
    logged_by_first = stack.logged_fills()
    # The site takes the request it held (or drops it with the closed connection).
    wait_for(f"{stack.url}/api/v1/health/", timeout=60)
    shipped_before_restart = set(stack.stored_fills())
    unshipped = [fill for fill in logged_by_first if fill not in shipped_before_restart]
    assert len(unshipped) >= 5, "the kill left fills in the spool only (else this test proves nothing)"

    second = stack.start_demo(*FAST, "--seed", "5", "--duration", "3")
    output = eventually(lambda: second.process.poll() is not None and second.text(), "the second run ending")
    assert second.process.returncode == 0
    assert "Everything reached the site." in output

    logged = stack.logged_fills()
    stored = stack.stored_fills()
    # The one fill the first run may have recorded in the instant before it was killed,
    # without the time to log it, is the next of that run (and must be stored once too).
    last = logged_by_first[-1]
    run, _, number = last.rpartition("-")
    in_flight = f"{run}-{int(number) + 1}"
    assert_each_fill_stored_once(stack, logged + ([in_flight] if in_flight in stored else []), stored)
    assert set(unshipped) <= set(stored)
    (closed,) = SESSION_CLOSED.findall(output)
    assert int(closed) == len(logged) - len(logged_by_first)


def test_loki_down_leaves_the_bot_trading_and_its_shipper_says_so(loki: LoopbackLoki, stack: Stack) -> None:
    loki.set_mode("hang")  # the harder way to be down: a request that never gets an answer
    stack.env["LOKI_URL"] = loki.url
    stack.start_web()
    demo = stack.start_demo(*FAST, "--seed", "6", "--duration", "8")
    eventually(lambda: "Loki unreachable" in stack.bot_log_text(), "the shipper reporting the outage")
    eventually(lambda: len(stack.stored_fills()) >= 10, "fills stored while Loki hangs")
    assert loki.hanging and not loki.entries

    loki.set_mode("ok")
    output = eventually(lambda: demo.process.poll() is not None and demo.text(), "the demo ending on time")
    assert demo.process.returncode == 0
    assert "Everything reached the site." in output
    logged = stack.logged_fills()
    assert_each_fill_stored_once(stack, logged, stack.stored_fills())
    # Once Loki answers again, what waited in the shipper's queue arrives: every fill's line.
    assert "Loki reachable again" in stack.bot_log_text()
    shipped = [line.split(":")[0].removeprefix("Fill ") for line in loki.lines() if line.startswith("Fill ")]
    assert sorted(shipped) == sorted(logged)


def test_discord_down_then_up_delivers_each_late_alert_once(discord: DiscordServer, stack: Stack) -> None:
    discord.then("status", 503, times=100_000)  # down: every webhook request answered 503
    stack.env["DISCORD_WEBHOOK_URL"] = discord.url
    allow_alert_bursts(stack)
    clear_of_market_midnight(15)  # one trading day: one daily-loss and one max-daily-loss alert
    stack.start_web()
    stack.env["DJANGO_SETTINGS_MODULE"] = "tests.e2e_cluster_settings"
    stack.start_cluster()
    demo = stack.start_demo(*FAST, *LOSING)
    eventually(lambda: HALTED in stack.bot_log_text(), "the site halting the losing bot", timeout=120)
    demo.finish()

    def tried_and_waiting() -> bool:
        rows = stack.sql("SELECT state, attempts FROM alerts_alert WHERE source LIKE '%daily_loss'")
        return len(rows) == 2 and all(state == "pending" and tries >= 1 for state, tries in rows)

    eventually(tried_and_waiting, "the loss alerts tried and waiting in the outbox", timeout=60)
    assert discord.messages == [] and set(discord.statuses) == {503}

    discord.back_up()
    # What waited is sent by the next delivery pass after its retry delay. The delay (30 s) and
    # the alerts schedule's minute are pinned where they live (tests/test_alert_delivery.py,
    # tests/test_backup_cluster.py): here the alerts come due now and the pass is queued.
    stack.sql("UPDATE alerts_alert SET next_attempt_at = NULL WHERE state = 'pending'")
    stack.site.queue_task("alerts.tasks.deliver")
    eventually(lambda: cluster_idle(stack), "every alert delivered after Discord came back", timeout=120)
    rows = stack.sql("SELECT id, state, attempts FROM alerts_alert ORDER BY id")
    assert {state for _, state, _ in rows} == {"sent"}
    arrived = Counter(text.rpartition(" alert #")[2] for text in footers(discord))
    assert set(arrived) == {str(pk) for pk, _, _ in rows} and set(arrived.values()) == {1}
    for source in ("daily_loss", "max_daily_loss"):
        ((alert_id,),) = stack.sql("SELECT id FROM alerts_alert WHERE source = ?", source)
        statuses = [
            code
            for (code,) in stack.sql(
                "SELECT status_code FROM alerts_deliveryattempt WHERE alert_id = ? ORDER BY id", alert_id
            )
        ]
        # Tried while Discord was down, then delivered by exactly one successful request.
        assert statuses[0] == 503 and statuses[-1] in (200, 204)
        assert statuses.count(200) + statuses.count(204) == 1
