"""Several web nodes and several task clusters on one database, as a team runs the site.

On the PostgreSQL run (scripts/test.sh) each node is what a second machine would run: its
own web server or cluster process, the same PostgreSQL database and the same Redis queue.
On the SQLite run they share one file on one machine, which the same promises hold for.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.alert_fixtures import *  # noqa: F403  (the loopback Discord webhook fixture)
from tests.conftest import make_trade
from tests.discord_server import DiscordServer
from tests.harness import Site, free_port, start_web, wait_for

pytestmark = pytest.mark.server


@pytest.fixture
def second_node(site: Site) -> Site:
    """Another web server on the same site's database (its own port, its own log folder)."""
    node = Site(url="", env=dict(site.env), tmp=site.tmp / "node-2", processes=site.processes)
    node.tmp.mkdir()
    port = free_port()
    node.url = f"http://127.0.0.1:{port}"
    start_web(node, port)
    wait_for(f"{node.url}/api/v1/health/")
    return node


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_same_batch_at_the_same_moment_on_two_web_nodes_is_stored_once(
    site: Site, second_node: Site
) -> None:
    key = site.create_bot("alpha")
    batch = [make_trade(n) for n in range(500)]
    nodes = [site.url, second_node.url] * 3
    start = threading.Barrier(len(nodes))

    def post(url: str) -> requests.Response:
        start.wait()
        return requests.post(f"{url}/api/v1/trades/", json=batch, headers=auth(key), timeout=60)

    with ThreadPoolExecutor(len(nodes)) as pool:
        responses = list(pool.map(post, nodes))
    assert {r.status_code for r in responses} <= {200, 201}, [r.text[:200] for r in responses]
    bodies = [r.json() for r in responses]
    # Every trade is new to exactly one request, and every answer names the same stored ids.
    assert sum(body["created"] for body in bodies) == 500
    assert all(body["ids"] == bodies[0]["ids"] for body in bodies)
    assert len(set(bodies[0]["ids"])) == 500
    assert site.sql("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM trades_trade") == [(500, 500)]


def test_one_trade_raced_on_two_web_nodes_is_one_row_and_one_201(site: Site, second_node: Site) -> None:
    key = site.create_bot("alpha")
    nodes = [site.url, second_node.url] * 6
    start = threading.Barrier(len(nodes))

    def post(url: str) -> int:
        start.wait()
        response = requests.post(f"{url}/api/v1/trades/", json=make_trade(7), headers=auth(key), timeout=60)
        return response.status_code

    with ThreadPoolExecutor(len(nodes)) as pool:
        statuses = Counter(pool.map(post, nodes))
    assert statuses == {201: 1, 200: len(nodes) - 1}
    assert site.sql("SELECT COUNT(*) FROM trades_trade") == [(1,)]


def test_two_task_clusters_send_each_alert_once(
    site: Site, second_node: Site, discord: DiscordServer
) -> None:
    """Two clusters (two machines on PostgreSQL and Redis) drain one outbox: the channel's lease
    and each alert's claim let exactly one of them send each alert."""
    site.sql(
        "UPDATE alerts_channel SET config = ?, rate_limit_per_minute = 100 WHERE name = 'discord'",
        json.dumps({"webhook_url": discord.url}),
    )
    site.sql("UPDATE alerts_summaryschedule SET enabled = FALSE, weekly_enabled = FALSE")
    key = site.create_bot("alpha")
    clusters = [site.start_cluster(), second_node.start_cluster()]
    sent = 24
    for n in range(sent):
        event = {"kind": "crash", "level": "critical", "message": f"crash {n}", "event_id": f"crash-{n}"}
        node = (site, second_node)[n % 2]
        response = requests.post(f"{node.url}/api/v1/events/", json=event, headers=auth(key), timeout=30)
        assert response.status_code == 201, response.text
    discord.wait_for_messages(sent, timeout=180)
    deadline = time.monotonic() + 60
    while site.sql("SELECT COUNT(*) FROM alerts_alert WHERE state = 'sent'") != [(sent,)]:
        assert time.monotonic() < deadline, site.sql(
            "SELECT state, COUNT(*) FROM alerts_alert GROUP BY state"
        )
        time.sleep(0.2)
    time.sleep(3)  # room for a second copy to show up, were there one
    assert len(discord.messages) == sent
    assert site.sql("SELECT COUNT(*), SUM(attempts) FROM alerts_alert") == [(sent, sent)]
    # Both clusters were up and working: each ran tasks of its own.
    assert all(cluster.poll() is None for cluster in clusters)
    for node in (site, second_node):
        assert "Traceback" not in node.log("qcluster.log")
