"""The Telegram commands' reader as it runs: its loop in a thread of the test, then inside real task
clusters, against the loopback Bot API. One poller per token, a webhook deleted first, 409, 429 and
network failures waited out, and no update lost or handled twice across restarts."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from alerts.models import CommandReader
from monitorsite.telegram import commands
from monitorsite.telegram import reader as reader_module
from monitorsite.telegram.reader import Config, Reader, reader_state
from tests.alert_fixtures import *  # noqa: F403  (the telegram fixture: the loopback Bot API)
from tests.harness import Site, free_port, start_web, stop, wait_for
from tests.telegram_server import CHAT_ID, TOKEN, USER_ID, TelegramServer
from trades.formats import format_duration
from trades.models import Bot

DEADLINE = 60.0  # only waited out when something is broken


def eventually(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)
    return result


@pytest.fixture
def fast_polls(settings: Any) -> None:
    settings.TELEGRAM_POLL_SECONDS = 1
    settings.TELEGRAM_LEASE_SECONDS = 4


class Running:
    """A reader's loop in a thread of this process, as the cluster runs it."""

    def __init__(self, telegram: TelegramServer, holder: str) -> None:
        config = Config(token=TOKEN, chat_id=CHAT_ID, api_url=telegram.api_url, users=frozenset({USER_ID}))
        self.reader = Reader(config, holder=holder)
        self.thread = threading.Thread(target=self.reader.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.reader.stop.set()
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()
        self.reader.release()


@pytest.fixture
def running(telegram: TelegramServer, transactional_db: Any, fast_polls: None) -> Iterator[Running]:
    Bot.objects.create(name="alpha")
    loop = Running(telegram, "first")
    try:
        yield loop
    finally:
        loop.stop()


def getupdates(telegram: TelegramServer) -> list[Any]:
    return [r for r in telegram.requests if r.path.endswith("/getUpdates")]


def replies(telegram: TelegramServer) -> list[str]:
    return [m["text"] for m in telegram.messages]


def test_a_webhook_is_deleted_first_and_the_menu_registered(
    telegram: TelegramServer, transactional_db: Any, fast_polls: None
) -> None:
    telegram.webhook_url = "https://example.org/hook"
    loop = Running(telegram, "first")
    try:
        telegram.user_says("/help")
        eventually(lambda: replies(telegram), "the answer to /help")
        assert telegram.webhook_url in ("", None)
        assert [c["command"] for c in telegram.my_commands] == list(commands.COMMANDS)
        assert telegram.conflicts == 0
    finally:
        loop.stop()


def test_a_409_and_a_429_are_waited_out_and_no_update_is_lost_or_repeated(
    telegram: TelegramServer, running: Running
) -> None:
    eventually(lambda: CommandReader.objects.filter(polled_at__isnull=False).exists(), "a first poll")
    asked = len(getupdates(telegram))  # the planned answers go to the polls that come next
    telegram.then("status", 409, method="getUpdates")
    telegram.then("429", 2, method="getUpdates")
    # The commands come once Telegram has answered 409 and then 429 (not to the poll in flight).
    eventually(lambda: len(getupdates(telegram)) >= asked + 2, "the 409 and the 429")
    telegram.user_says("/help")
    telegram.user_says("/positions")
    eventually(lambda: len(replies(telegram)) >= 2, "both answers")
    polls = getupdates(telegram)
    # The poll after the 429 waited at least the 2 s Telegram asked for.
    assert polls[asked + 2].at - polls[asked + 1].at >= 2.0
    time.sleep(0.5)  # any repeat would come within the next poll
    text = replies(telegram)
    assert len(text) == 2 and text[0].startswith("Commands:") and text[1].startswith("alpha")


def test_a_network_failure_is_retried_logged_once_and_recorded_for_health(
    telegram: TelegramServer, running: Running, caplog: pytest.LogCaptureFixture, settings: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="monitorsite.telegram.reader")
    settings.TELEGRAM_COMMAND_USERS = (USER_ID,)
    settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_CHAT_ID, settings.TELEGRAM_API_URL = (
        TOKEN,
        CHAT_ID,
        telegram.api_url,
    )
    eventually(lambda: reader_state()["ok"], "health ok after a poll")
    telegram.then("drop", None, times=3, method="getUpdates")
    eventually(lambda: CommandReader.objects.exclude(error="").exists(), "the error recorded")
    telegram.user_says("/help")
    eventually(lambda: replies(telegram), "the answer after the failures")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "getUpdates" in r.getMessage()]

    assert len(warnings()) == 1 and "cannot reach 127.0.0.1" in warnings()[0]
    # Polling again ended that outage: the next one is logged again.
    telegram.then("drop", None, method="getUpdates")
    eventually(lambda: len(warnings()) == 2, "the next outage logged")
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in CommandReader.objects.get().error


def test_health_says_when_the_commands_are_not_read(db: Any, settings: Any, telegram: TelegramServer) -> None:
    assert reader_state() == {"ok": True, "enabled": False}
    settings.TELEGRAM_COMMAND_USERS = (USER_ID,)
    settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_CHAT_ID = TOKEN, CHAT_ID
    assert reader_state() == {"ok": False, "reason": "Telegram commands never read"}
    # Read lately: ok, exactly up to its limit; past it, the last error is named.
    limit = dt.timedelta(seconds=2 * (reader_module.poll_seconds() + 10) + reader_module.IDLE_SECONDS)
    now = timezone.now()
    error = "getUpdates: api.telegram.org answered 409: Conflict: terminated by other getUpdates request"
    CommandReader.objects.create(token_hash=Config.from_settings().token_hash, polled_at=now, error=error)
    with mock.patch("django.utils.timezone.now", return_value=now + limit):
        assert reader_state()["ok"] is True
    with mock.patch("django.utils.timezone.now", return_value=now + limit + dt.timedelta(seconds=1)):
        late = format_duration(limit + dt.timedelta(seconds=1))
        assert reader_state() == {"ok": False, "reason": f"Telegram commands not read for {late}: {error}"}


def test_a_restart_mid_conversation_handles_no_update_twice(
    telegram: TelegramServer, running: Running
) -> None:
    telegram.user_says("/help")
    eventually(lambda: len(replies(telegram)) == 1, "the first answer")
    running.stop()
    telegram.user_says("/positions")
    telegram.user_says("/health")
    successor = Running(telegram, "second")
    try:
        eventually(lambda: len(replies(telegram)) == 3, "the answers after the restart")
        time.sleep(0.5)
        text = replies(telegram)
        assert len(text) == 3 and text[1].startswith("alpha") and text[2].startswith("Site: ")
    finally:
        successor.stop()


def test_the_reader_is_off_without_command_users(settings: Any) -> None:
    settings.TELEGRAM_COMMAND_USERS = ()
    assert reader_module.start(threading.Event()) is None


# --- real task clusters ------------------------------------------------------------------------------


@pytest.mark.server
def test_two_clusters_poll_once_and_a_killed_one_is_replaced(site: Site, telegram: TelegramServer) -> None:
    site.env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_CHAT_ID=CHAT_ID,
        TELEGRAM_API_URL=telegram.api_url,
        TELEGRAM_COMMAND_USERS=f"{USER_ID}",
        DJANGO_SETTINGS_MODULE="tests.telegram_cluster_settings",
    )
    site.create_bot("alpha")
    # The site as it runs: two web processes with the same settings. They answer, and never poll.
    stop(site.processes.pop())
    port = free_port()
    site.url = f"http://127.0.0.1:{port}"
    start_web(site, port, processes=2)
    health = wait_for(f"{site.url}/api/v1/health/").json()
    assert health["components"]["telegram_commands"]["reason"] == "Telegram commands never read"
    assert not [r for r in telegram.requests if r.path.endswith("/getUpdates")]
    first = site.start_cluster()
    second = site.start_cluster()
    for n in range(3):
        telegram.user_says("/help")
        eventually(lambda n=n: len(replies(telegram)) == n + 1, f"answer {n + 1}", timeout=90)
    assert telegram.conflicts == 0 and telegram.max_in_flight == 1
    holder = site.sql("SELECT holder FROM alerts_commandreader")[0][0]
    pid = int(holder.split(":")[1])
    killed = first if pid == first.pid else second
    assert pid in (first.pid, second.pid)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(10)
    telegram.user_says("/positions")
    eventually(lambda: len(replies(telegram)) == 4, "the answer from the other cluster", timeout=90)
    assert replies(telegram)[3].startswith("alpha")
    survivor = second if killed is first else first
    eventually(
        lambda: site.sql("SELECT holder FROM alerts_commandreader")[0][0].split(":")[1] == str(survivor.pid),
        "the survivor holds the lease",
    )
    stop(survivor)
    # A cluster that stops lets go of the lease: the next one need not wait it out.
    assert site.sql("SELECT holder FROM alerts_commandreader")[0][0] == ""
    assert "Traceback" not in site.log("qcluster.log")
    assert TOKEN.split(":")[1] not in site.log("qcluster.log")
