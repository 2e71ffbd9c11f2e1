"""The outbox: claims, retries, the rate limit and its digest, reclaiming a killed worker's alerts."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django_q.models import Success
from rest_framework.test import APIClient

from alerts.delivery import deliver_pending
from alerts.evaluation import raise_alert
from alerts.health import outbox
from alerts.models import Alert, AlertState, Channel
from monitorsite.health import HEARTBEAT_TASK
from tests.alert_fixtures import *  # noqa: F403  (the discord, channel and fast_http fixtures)
from tests.discord_server import DiscordServer

T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


def later(seconds: float) -> dt.datetime:
    return T + dt.timedelta(seconds=seconds)


def new_alert(level: str = "info", title: str = "alert", now: dt.datetime = T) -> Alert:
    (alert,) = raise_alert(source="test", level=level, title=title, now=now)
    return alert


def states() -> dict[str, str]:
    return dict(Alert.objects.values_list("title", "state"))


@pytest.mark.django_db
def test_an_alert_is_written_before_it_is_sent_and_each_attempt_is_recorded(
    channel: Channel, discord: DiscordServer
) -> None:
    alert = new_alert(title="daily loss")
    assert alert.state == AlertState.PENDING and discord.messages == []
    assert deliver_pending(now=T) == 1
    alert.refresh_from_db()
    assert (alert.state, alert.sent_at, alert.attempts) == (AlertState.SENT, T, 1)
    (attempt,) = alert.delivery_attempts.all()
    assert attempt.status_code == 200 and attempt.error == "" and attempt.duration_ms > 0
    assert deliver_pending(now=later(1)) == 0
    assert len(discord.messages) == 1


@pytest.mark.django_db
def test_without_a_webhook_alerts_are_stored_not_sent(db: Any, settings: Any) -> None:
    settings.DISCORD_WEBHOOK_URL = None
    assert new_alert().state == AlertState.STORED
    assert outbox()["ok"] is True


@pytest.mark.django_db
def test_the_environment_webhook_is_used_when_the_channel_has_none(
    discord: DiscordServer, fast_http: Any
) -> None:
    fast_http.DISCORD_WEBHOOK_URL = discord.url
    new_alert(title="from env")
    deliver_pending(now=T)
    assert discord.titles() == ["🔔 from env"]


@pytest.mark.django_db
def test_overflow_beyond_the_rate_limit_is_folded_into_one_digest_when_the_window_opens(
    channel: Channel, discord: DiscordServer
) -> None:
    assert channel.rate_limit_per_minute == 5
    created = [new_alert(title=f"alert {n}", now=later(n / 10)) for n in range(12)]
    deliver_pending(now=later(2))
    assert len(discord.messages) == 5
    held = set(Alert.objects.filter(state=AlertState.PENDING, held=True).values_list("pk", flat=True))
    assert held == {a.pk for a in created[5:]}
    deliver_pending(now=later(30))  # the window is still full
    assert len(discord.messages) == 5
    deliver_pending(now=later(63))  # the window has opened
    assert len(discord.messages) == 6
    digest = Alert.objects.get(source="digest")
    assert digest.state == AlertState.SENT
    # The exact set of held-back alerts, each marked as delivered through that digest.
    assert set(digest.folded.values_list("pk", flat=True)) == held
    assert set(digest.folded.values_list("state", flat=True)) == {AlertState.FOLDED}
    embed = discord.embeds()[-1]
    assert embed["title"] == "🔔 7 alerts held back by the rate limit"
    assert [line.split("] ")[1] for line in embed["description"].splitlines()] == [
        f"alert {n}" for n in range(5, 12)
    ]
    # Nothing dropped: every alert is sent or folded into a sent digest.
    assert Alert.objects.exclude(source="digest").filter(state=AlertState.SENT).count() == 5


@pytest.mark.django_db
def test_a_lone_held_alert_is_sent_as_itself_not_as_a_digest(
    channel: Channel, discord: DiscordServer
) -> None:
    for n in range(6):
        new_alert(title=f"alert {n}")
    deliver_pending(now=later(1))
    deliver_pending(now=later(62))
    assert discord.titles()[-1] == "🔔 alert 5"
    assert not Alert.objects.filter(source="digest").exists()


@pytest.mark.django_db
def test_a_critical_alert_never_waits_behind_info_ones(channel: Channel, discord: DiscordServer) -> None:
    for n in range(5):
        new_alert(title=f"info {n}")
    new_alert(level="critical", title="max daily loss", now=later(1))
    deliver_pending(now=later(2))
    # Priority order: the critical one goes first even though it is the newest.
    assert discord.titles()[0] == "🚨 max daily loss"
    for n in range(3):
        new_alert(title=f"more info {n}", now=later(3))
    new_alert(level="critical", title="crash", now=later(4))
    deliver_pending(now=later(5))  # the window is full of info alerts
    assert discord.titles()[-1] == "🚨 crash"
    assert states()["crash"] == AlertState.SENT
    assert states()["more info 0"] == AlertState.PENDING


@pytest.mark.django_db
def test_a_warning_held_behind_older_info_alerts_goes_out_first_and_the_info_ones_are_folded(
    channel: Channel, discord: DiscordServer
) -> None:
    for n in range(5):
        new_alert(title=f"startup {n}", now=later(n))
    deliver_pending(now=later(5))  # the window is full
    for n in range(3):
        new_alert(title=f"market open {n}", now=later(10 + n))
    new_alert(level="warning", title="daily loss", now=later(20))
    deliver_pending(now=later(21))
    assert len(discord.messages) == 5 and Alert.objects.filter(held=True).count() == 4
    deliver_pending(now=later(66))  # the next window
    assert discord.titles()[5:] == ["⚠️ daily loss", "🔔 3 alerts held back by the rate limit"]
    assert states()["daily loss"] == AlertState.SENT
    digest = Alert.objects.get(source="digest")
    assert set(digest.folded.values_list("title", flat=True)) == {f"market open {n}" for n in range(3)}


@pytest.mark.django_db
def test_each_digest_line_carries_its_alerts_message_within_discords_limits(
    channel: Channel, discord: DiscordServer
) -> None:
    for n in range(5):
        new_alert(title=f"filler {n}")
    deliver_pending(now=later(1))
    problems = [f"missing candles for SYM{n} 10:31-10:33 " + "x" * 300 for n in range(12)]
    for n, problem in enumerate(problems):
        raise_alert(
            source="test", level="warning", title=f"demo-bot: Data Quality {n}", message=problem, now=later(2)
        )
    deliver_pending(now=later(3))
    deliver_pending(now=later(63))
    embed = discord.embeds()[-1]
    lines = embed["description"].splitlines()
    assert len(lines) == 12
    for n, line in enumerate(lines):
        assert f"demo-bot: Data Quality {n}: missing candles for SYM{n} 10:31-10:33" in line
        assert len(line) <= 200 and line.endswith("…")


@pytest.mark.django_db
def test_a_digest_too_long_for_discord_keeps_whole_lines_and_says_how_many_more(
    channel: Channel, discord: DiscordServer
) -> None:
    for n in range(5):
        new_alert(title=f"filler {n}")
    deliver_pending(now=later(1))
    for n in range(50):  # emoji count twice in Discord's UTF-16 measure
        raise_alert(source="test", level="info", title=f"feed {n}", message="🚨" * 150, now=later(2))
    deliver_pending(now=later(3))
    deliver_pending(now=later(63))
    digest = Alert.objects.get(source="digest")
    assert digest.state == AlertState.SENT and digest.folded.count() == 50
    description = discord.embeds()[-1]["description"]
    assert description == digest.message  # fitted by the digest, not cut by the transport
    assert len(description.encode("utf-16-le")) // 2 <= 4096
    *lines, more = description.splitlines()
    assert all(line.startswith(f"{line[:8]} [info] feed ") for line in lines)
    assert more == f"… and {50 - len(lines)} more (see the alert history in the admin)"


@pytest.mark.django_db
def test_a_worker_holding_a_stale_list_never_sends_an_alert_that_is_no_longer_pending(
    channel: Channel, discord: DiscordServer
) -> None:
    from alerts.delivery import send_alert

    alert = new_alert(title="daily loss")
    stale = Alert.objects.get(pk=alert.pk)  # read while it was pending
    assert deliver_pending(now=T) == 1  # another worker sent it meanwhile
    for state in (AlertState.SENT, AlertState.SENDING, AlertState.FOLDED, AlertState.FAILED):
        Alert.objects.filter(pk=alert.pk).update(state=state)
        assert send_alert(stale, channel, lambda: later(1)) == "skipped"
    assert len(discord.messages) == 1


@pytest.mark.django_db
def test_the_rate_limit_is_editable_per_channel(channel: Channel, discord: DiscordServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=20)
    for n in range(12):
        new_alert(title=f"alert {n}")
    deliver_pending(now=later(1))
    assert len(discord.messages) == 12


@pytest.mark.django_db
def test_discords_own_429s_during_a_burst_are_waited_out(channel: Channel, discord: DiscordServer) -> None:
    discord.burst, discord.burst_window, discord.retry_after = 3, 1.0, 0.6
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=30)
    for n in range(6):
        new_alert(title=f"alert {n}")
    deliver_pending(now=later(1))
    assert 429 in discord.statuses
    assert sorted(discord.titles()) == sorted(f"🔔 alert {n}" for n in range(6))
    assert set(states().values()) == {AlertState.SENT}


@pytest.mark.django_db
def test_retries_back_off_and_give_up_after_the_attempt_limit(
    channel: Channel, discord: DiscordServer, settings: Any
) -> None:
    settings.ALERT_HTTP_ATTEMPTS = 1
    settings.ALERT_MAX_ATTEMPTS = 3
    discord.then("status", 503, times=3)
    alert = new_alert()
    deliver_pending(now=T)
    alert.refresh_from_db()
    assert alert.state == AlertState.PENDING and alert.next_attempt_at == later(30)
    deliver_pending(now=later(10))  # not due yet
    assert discord.statuses == [503]
    deliver_pending(now=later(30))
    alert.refresh_from_db()
    assert alert.next_attempt_at == later(90)  # 60 s after the second failure
    deliver_pending(now=later(90))
    alert.refresh_from_db()
    assert alert.state == AlertState.FAILED and alert.attempts == 3
    assert alert.last_error == f"{discord.host} answered HTTP 503: Server error"


@pytest.mark.django_db
def test_an_alert_left_sending_by_a_killed_worker_is_sent_once_after_its_lease(
    channel: Channel, discord: DiscordServer, settings: Any
) -> None:
    settings.ALERT_SEND_LEASE_SECONDS = 120
    abandoned = new_alert(title="abandoned")
    busy = new_alert(title="in flight")
    # A worker claimed both and was killed (abandoned) or is still sending (busy).
    Alert.objects.filter(pk=abandoned.pk).update(state=AlertState.SENDING, claimed_at=later(-300))
    Alert.objects.filter(pk=busy.pk).update(state=AlertState.SENDING, claimed_at=later(-10))
    deliver_pending(now=T)
    assert discord.titles() == ["🔔 abandoned"]
    assert states() == {"abandoned": AlertState.SENT, "in flight": AlertState.SENDING}
    deliver_pending(now=later(1))
    assert discord.titles() == ["🔔 abandoned"]


@pytest.mark.django_db
def test_a_channel_lease_left_by_a_killed_worker_expires(channel: Channel, discord: DiscordServer) -> None:
    Channel.objects.filter(pk=channel.pk).update(lease_until=later(60))
    new_alert()
    deliver_pending(now=T)
    assert discord.messages == []  # another worker holds the channel
    deliver_pending(now=later(61))
    assert len(discord.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_draining_at_once_send_each_alert_once(discord: DiscordServer, fast_http: Any) -> None:
    Channel.objects.create(
        name="discord-test", config={"webhook_url": discord.url}, rate_limit_per_minute=100
    )
    for n in range(20):
        new_alert(title=f"alert {n}")
    start = threading.Barrier(3)

    def worker() -> None:
        from django.db import connection

        start.wait()
        try:
            deliver_pending()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(discord.titles()) == sorted(f"🔔 alert {n}" for n in range(20))
    assert set(states().values()) == {AlertState.SENT}


@pytest.mark.django_db
def test_a_crashing_transport_or_database_never_raises_out_of_delivery(
    channel: Channel, discord: DiscordServer
) -> None:
    alert = new_alert()
    with mock.patch("alerts.transports.discord.DiscordTransport.send", side_effect=ValueError("bug")):
        deliver_pending(now=T)
    alert.refresh_from_db()
    assert alert.state == AlertState.PENDING and alert.last_error == "internal error (ValueError)"
    with mock.patch(
        "alerts.delivery.Alert.objects.filter", side_effect=OperationalError("database is locked")
    ):
        assert deliver_pending(now=later(60)) == 0


@pytest.mark.django_db
def test_health_is_degraded_while_alerts_wait_unsent(channel: Channel, discord: DiscordServer) -> None:
    discord.then("status", 404)
    old = new_alert(now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    assert outbox() == {"ok": False, "unsent": 1, "reason": "1 alert(s) unsent for over 5 min"}
    deliver_pending()
    state = outbox()
    assert state["ok"] is False and state["disabled_channels"] == ["discord"]
    now = dt.datetime.now(dt.UTC)  # the task cluster is alive: only the outbox is wrong
    Success.objects.create(id="0" * 32, name="beat", func=HEARTBEAT_TASK, started=now, stopped=now)
    response = APIClient().get("/api/v1/health/")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["components"]["alerts"]["unsent"] == 1
    Channel.objects.update(disabled_reason="")
    deliver_pending()
    old.refresh_from_db()
    assert old.state == AlertState.SENT and outbox()["ok"] is True


@pytest.mark.django_db
def test_a_delivery_run_stops_starting_sends_after_its_time_budget(
    channel: Channel, discord: DiscordServer, settings: Any
) -> None:
    settings.ALERT_DRAIN_SECONDS = 1.5
    settings.ALERT_HTTP_ATTEMPTS = 1
    discord.then("hang", 5, times=5)  # each send times out after 1 s
    for n in range(5):
        new_alert(level="critical", title=f"crash {n}")
    deliver_pending(now=T)
    # One or two sends fit in the budget (however slow the machine); the rest wait for the next run.
    assert sorted(states().values()) == [AlertState.PENDING] * 5
    assert 1 <= Alert.objects.filter(attempts=1).count() <= 2
    assert Alert.objects.filter(attempts=0).count() >= 3


# --- the rules at their boundaries ------------------------------------------------------------

# A database that refuses to mark an alert folded: the failure lands after the digest row is
# written and before the held alerts point at it, whatever the code around it looks like.
REFUSE_FOLDING = {
    "sqlite": [
        "CREATE TRIGGER refuse_folding BEFORE UPDATE ON alerts_alert WHEN NEW.state = 'folded' "
        "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_folding() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'disk I/O error'; END $$",
        "CREATE TRIGGER refuse_folding BEFORE UPDATE ON alerts_alert FOR EACH ROW "
        "WHEN (NEW.state = 'folded') EXECUTE FUNCTION refuse_folding()",
    ],
}
ALLOW_FOLDING = {
    "sqlite": ["DROP TRIGGER refuse_folding"],
    "postgresql": ["DROP TRIGGER refuse_folding ON alerts_alert", "DROP FUNCTION refuse_folding()"],
}


def run_sql(statements: dict[str, list[str]]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in statements[connection.vendor]:
            cursor.execute(statement)


@pytest.mark.django_db(transaction=True)
def test_a_fold_that_fails_half_way_leaves_no_digest_and_the_next_run_folds_them_all_once(
    discord: DiscordServer, fast_http: Any
) -> None:
    # Autocommit, as in the task cluster: only the fold's own transaction can take the digest back.
    Channel.objects.create(name="discord-test", config={"webhook_url": discord.url}, rate_limit_per_minute=2)
    for n in range(2):
        new_alert(title=f"filler {n}")
    held = [new_alert(title=f"held {n}", now=later(1)) for n in range(3)]
    deliver_pending(now=later(2))
    assert len(discord.messages) == 2 and Alert.objects.filter(held=True).count() == 3
    run_sql(REFUSE_FOLDING)
    try:
        deliver_pending(now=later(63))  # the window opens; the fold fails
    finally:
        run_sql(ALLOW_FOLDING)
    assert not Alert.objects.filter(source="digest").exists()
    assert (
        list(Alert.objects.filter(pk__in=[a.pk for a in held]).values_list("state", "held"))
        == [(AlertState.PENDING, True)] * 3
    )
    assert len(discord.messages) == 2

    deliver_pending(now=later(64))
    digest = Alert.objects.get(source="digest")
    assert digest.state == AlertState.SENT
    assert set(digest.folded.values_list("pk", flat=True)) == {a.pk for a in held}
    assert discord.titles()[2:] == ["🔔 3 alerts held back by the rate limit"]


@pytest.mark.django_db
def test_a_channel_sends_exactly_its_limit_in_a_minute_and_the_next_one_when_the_minute_is_over(
    channel: Channel, discord: DiscordServer
) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=3)
    for n in range(4):
        new_alert(title=f"alert {n}")
    deliver_pending(now=later(1))
    assert discord.titles() == ["🔔 alert 0", "🔔 alert 1", "🔔 alert 2"]
    assert states()["alert 3"] == AlertState.PENDING and Alert.objects.get(title="alert 3").held
    # The minute is a closed one: at exactly 60 s after the first three they still count.
    deliver_pending(now=later(61))
    assert len(discord.messages) == 3
    deliver_pending(now=later(61) + dt.timedelta(microseconds=1))
    assert discord.titles()[3:] == ["🔔 alert 3"]
    assert states()["alert 3"] == AlertState.SENT


@pytest.mark.django_db
def test_a_warning_arriving_with_info_alerts_takes_the_last_message_of_the_minute(
    channel: Channel, discord: DiscordServer
) -> None:
    for n in range(4):
        new_alert(title=f"filler {n}")
    deliver_pending(now=later(1))  # four of the five in this minute
    for n in range(3):
        new_alert(title=f"market open {n}", now=later(2))
    new_alert(level="warning", title="daily loss", now=later(3))
    deliver_pending(now=later(4))
    assert discord.titles()[4:] == ["⚠️ daily loss"]
    assert {states()[f"market open {n}"] for n in range(3)} == {AlertState.PENDING}
    assert Alert.objects.filter(held=True).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("warnings", "expected"),
    [
        # Room for the limit less one (kept for the digest): both warnings go alone.
        (2, ["⚠️ warning 0", "⚠️ warning 1", "🔔 2 alerts held back by the rate limit"]),
        # One warning more than that room: the newest of them is folded with the info ones.
        (3, ["⚠️ warning 0", "⚠️ warning 1", "⚠️ 3 alerts held back by the rate limit"]),
    ],
)
def test_held_warnings_go_out_alone_before_the_digest_within_the_next_minutes_limit(
    channel: Channel, discord: DiscordServer, warnings: int, expected: list[str]
) -> None:
    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_minute=3)
    for n in range(3):
        new_alert(title=f"filler {n}")
    deliver_pending(now=later(1))  # the minute is full
    for n in range(2):
        new_alert(title=f"info {n}", now=later(2 + n))
    for n in range(warnings):
        new_alert(level="warning", title=f"warning {n}", now=later(5 + n))
    deliver_pending(now=later(10))
    assert len(discord.messages) == 3
    deliver_pending(now=later(62))  # the next minute: exactly its limit of three messages
    assert discord.titles()[3:] == expected
    digest = Alert.objects.get(source="digest")
    folded = {f"info {n}" for n in range(2)} | {f"warning {n}" for n in range(2, warnings)}
    assert set(digest.folded.values_list("title", flat=True)) == folded
    assert not Alert.objects.filter(state=AlertState.PENDING).exists()


@pytest.mark.django_db
def test_two_held_alerts_are_already_folded_into_a_digest(channel: Channel, discord: DiscordServer) -> None:
    for n in range(7):  # the limit of five, and two held
        new_alert(title=f"alert {n}")
    deliver_pending(now=later(1))
    deliver_pending(now=later(62))
    assert discord.titles()[5:] == ["🔔 2 alerts held back by the rate limit"]
    assert set(Alert.objects.get(source="digest").folded.values_list("title", flat=True)) == {
        "alert 5",
        "alert 6",
    }
