"""Alerts end to end: the web server, a real task cluster and the loopback Discord webhook."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
import requests

from tests.discord_server import DiscordServer
from tests.harness import Site, clear_of_market_midnight, stop

pytestmark = pytest.mark.server


@pytest.fixture
def discord() -> Iterator[DiscordServer]:
    server = DiscordServer().start()
    try:
        yield server
    finally:
        server.stop()


def sql(site: Site, statement: str, *params: object) -> list[tuple[object, ...]]:
    return site.sql(statement, *params)


def point_channel_at(site: Site, discord: DiscordServer) -> None:
    sql(
        site,
        "UPDATE alerts_channel SET config = ? WHERE name = 'discord'",
        json.dumps({"webhook_url": discord.url}),
    )
    # Otherwise, from 16:05 New York time on a trading day, the cluster's first pass sends
    # the daily summary to this channel mid-test (tests/test_alert_summary.py tests it).
    sql(site, "UPDATE alerts_summaryschedule SET enabled = FALSE")


def wait_for_rows(
    site: Site, statement: str, expected: list[tuple[object, ...]], timeout: float = 120
) -> None:
    """Wait until ``statement`` gives ``expected``: a worker records a send after Discord answered it."""
    deadline = time.monotonic() + timeout
    while (rows := sql(site, statement)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{statement}: {rows}, expected {expected} within {timeout} s")
        time.sleep(0.1)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_trade_past_the_max_daily_loss_reaches_discord_and_halts_trading(
    site: Site, discord: DiscordServer
) -> None:
    clear_of_market_midnight(5)  # the halt lasts until the next trading day: asked for the same day
    point_channel_at(site, discord)
    key = site.create_bot("alpha")
    site.start_cluster()
    trade = {
        "external_id": "loss-1",
        "symbol": "TSLA",
        "side": "SELL",
        "quantity": 5,
        "price": 200,
        "pnl": -1200,
        "strategy": "meanrev",
    }
    response = requests.post(f"{site.url}/api/v1/trades/", json=trade, headers=auth(key), timeout=10)
    assert response.status_code == 201
    discord.wait_for_messages(2, timeout=120)
    titles = sorted(discord.titles())
    assert titles[0].startswith("⚠️ alpha: realized P&L -1,200.00 on ") and titles[1].startswith(
        "🚨 alpha: realized P&L"
    )
    status = requests.get(f"{site.url}/api/v1/status/", headers=auth(key), timeout=10).json()
    assert status["trading_allowed"] is False and "max daily loss" in status["reason"]
    # Discord has both messages a moment before the worker records the second as sent.
    wait_for_rows(site, "SELECT state, COUNT(*) FROM alerts_alert GROUP BY state", [("sent", 2)])
    assert "Traceback" not in site.log("qcluster.log")


def test_a_killed_task_cluster_leaves_no_alert_unsent_and_none_sent_twice(
    site: Site, discord: DiscordServer
) -> None:
    point_channel_at(site, discord)
    key = site.create_bot("alpha")
    site.env["DJANGO_SETTINGS_MODULE"] = "tests.alerts_cluster_settings"  # an 8 s send lease
    cluster = site.start_cluster()
    discord.then("hang", 120)  # the first send never gets an answer
    event = {"kind": "crash", "level": "critical", "message": "segfault in the order router"}
    assert (
        requests.post(f"{site.url}/api/v1/events/", json=event, headers=auth(key), timeout=10).status_code
        == 201
    )
    deadline = time.monotonic() + 120
    while not sql(site, "SELECT 1 FROM alerts_alert WHERE state = 'sending'") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sql(site, "SELECT state FROM alerts_alert") == [("sending",)]
    # The worker claimed the alert and its channel (the 8 s lease of alerts_cluster_settings) before now.
    leases_over_by = time.monotonic() + 8
    # The row says "sending" a moment before the request leaves: wait until Discord holds it.
    discord.wait_until_held(1, timeout=30)
    # Mid-send: kill the whole cluster (sentinel and workers) as the OOM killer would.
    os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait(10)
    discord.stop_hanging()
    assert discord.messages == []
    site.start_cluster()
    # The next delivery pass after the leases expired reclaims and sends it. The alerts schedule
    # would run one within its minute (the cluster's scheduler first looks 30 s after it starts;
    # tests/test_backup_cluster.py proves the schedule): the pass is queued once the leases are over.
    time.sleep(max(0.0, leases_over_by - time.monotonic()) + 0.5)
    site.queue_task("alerts.tasks.deliver")
    try:
        discord.wait_for_messages(1, timeout=180)
    except AssertionError as exc:
        rows = sql(site, "SELECT state, claimed_at, attempts, last_error FROM alerts_alert")
        schedules = sql(site, "SELECT name, next_run FROM django_q_schedule")
        raise AssertionError(
            f"{exc}; alerts {rows}; schedules {schedules}; {site.log('qcluster.log')[-3000:]}"
        ) from exc
    # The row says "sent" a moment after Discord has the message.
    wait_for_rows(site, "SELECT state, attempts FROM alerts_alert", [("sent", 1)])
    time.sleep(3)  # room for a second copy to show up, were there one
    assert discord.titles() == ["🚨 alpha: Crash"]
    assert sql(site, "SELECT state, attempts FROM alerts_alert") == [("sent", 1)]
    for process in site.processes:
        stop(process)
    assert "reclaimed 1 alert(s) left unsent by a stopped worker" in site.log("qcluster.log")
