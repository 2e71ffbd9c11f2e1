"""The whole flow end to end, and the faults it must survive, with real processes on loopback.

The site runs under its real web server (and the django-q2 cluster where alerts
matter), the demo bot (``python -m monitor_client.demo``) trades against it through
``monitor_client``, the bot's logs go to the loopback Loki. Every check compares
what the bot itself logged with what reached the other side of a socket: the
database, Loki.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.end_to_end import (
    SESSION_CLOSED,
    Stack,
    assert_each_fill_stored_once,
    eventually,
    new_stack,
)
from tests.harness import wait_for
from tests.loopback_loki import LoopbackLoki

pytestmark = pytest.mark.server

# Fast ticks so a few seconds hold dozens of fills; no feed glitches (their events
# are noise here); heartbeats every second.
FAST = ("--tick", "0.05", "--glitch-rate", "0", "--heartbeat-every", "1")


@pytest.fixture
def loki() -> Iterator[LoopbackLoki]:
    server = LoopbackLoki()
    try:
        yield server
    finally:
        server.stop()


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
    assert "Loki reachable again" in stack.bot_log_text()
    shipped = {line.split(":")[0].removeprefix("Fill ") for line in loki.lines() if line.startswith("Fill ")}
    assert shipped and shipped <= set(logged)
