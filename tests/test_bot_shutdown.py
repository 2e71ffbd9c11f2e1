"""A bot's state is what it did: a bot that said it shut down is "stopped at <time>" (not stale,
and no bot-stopped alert) until a heartbeat, a new trade or a startup says it runs again; a
halted bot's card says halted; each card says whether the market is open and when that changes.

Every moment goes through the API with the site's clock set to it, as a bot's requests would.
The shutdown's own info alert is the ``event-shutdown`` rule's (``test_alert_rules``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from alerts.evaluation import evaluate_schedule
from alerts.models import AlertRule, TradingHalt
from monitorsite import cockpit
from trades.models import Bot

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
THURSDAY = dt.date(2026, 1, 15)
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)


def utc(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """``hour:minute`` New York time on ``day``, as the UTC moment the site's clock reads."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY).astimezone(dt.UTC)


@contextmanager
def clock(moment: dt.datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def beat(api: APIClient, at: dt.datetime) -> None:
    with clock(at):
        assert api.post("/api/v1/heartbeat/", {"status": "trading"}, format="json").status_code == 200


def event(api: APIClient, kind: str, occurred: dt.datetime, received: dt.datetime | None = None) -> None:
    body = {"kind": kind, "level": "info", "message": f"bot {kind}", "occurred_at": occurred.isoformat()}
    with clock(received or occurred):
        assert api.post("/api/v1/events/", body, format="json").status_code == 201


def trade(api: APIClient, n: int, executed: dt.datetime, received: dt.datetime) -> int:
    body = {
        "external_id": f"t-{n}",
        "symbol": "NVDA",
        "side": "BUY",
        "quantity": 1,
        "price": 100,
        "executed_at": executed.isoformat(),
    }
    with clock(received):
        response = api.post("/api/v1/trades/", body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.status_code


def card_of(bot: Bot, now: dt.datetime) -> cockpit.BotCard:
    (card,) = [card for card in cockpit.build(now=now).bots if card.bot.pk == bot.pk]
    return card


def state_of(bot: Bot, now: dt.datetime) -> str:
    return card_of(bot, now).state.label


def bot_stopped_alerted(bot: Bot, now: dt.datetime) -> bool:
    with transaction.atomic():
        alerted = any(
            alert.source == "bot_stopped" and alert.bot_id == bot.pk for alert in evaluate_schedule(now=now)
        )
        transaction.set_rollback(True)
    return alerted


# --- stopped after a shutdown, running after a heartbeat ------------------------------------------


def test_a_shutdown_is_stopped_at_its_time_not_stale_until_the_next_heartbeat(
    api: APIClient, bot: Bot, admin_client: Client
) -> None:
    AlertRule.objects.exclude(kind="bot_stopped").update(enabled=False)
    beat(api, utc(THURSDAY, 11))
    event(api, "shutdown", utc(THURSDAY, 11, 1))
    later = utc(THURSDAY, 11, 40)  # market hours, far past the 10-minute grace
    assert state_of(bot, later) == "stopped at 2026-01-15 11:01:00 EST"
    assert not bot_stopped_alerted(bot, later)  # stopped on purpose: no critical page
    with clock(later):
        page = admin_client.get("/admin/").content.decode()
        bots = admin_client.get("/admin/trades/bot/").content.decode()
    assert '<span class="bot-state">stopped at 2026-01-15 11:01:00 EST</span>' in page
    assert "state-shut-down" in page
    assert "stopped at 2026-01-15 11:01:00 EST" in bots  # the bot admin's list says it too
    # After the close and the next day it is still stopped, not stale.
    assert state_of(bot, utc(THURSDAY, 18)) == "stopped at 2026-01-15 11:01:00 EST"
    assert state_of(bot, utc(dt.date(2026, 1, 16), 12)) == "stopped at 2026-01-15 11:01:00 EST"

    beat(api, later)
    assert state_of(bot, later) == "running"
    # Running again, the bot-stopped rule judges its silence as before.
    assert state_of(bot, later + dt.timedelta(minutes=10) + SECOND) == "stopped"
    assert bot_stopped_alerted(bot, later + dt.timedelta(minutes=10) + SECOND)


def test_the_same_silence_without_a_shutdown_is_a_bot_stopped_alert(api: APIClient, bot: Bot) -> None:
    """The control of the test above: only the shutdown makes the difference."""
    AlertRule.objects.exclude(kind="bot_stopped").update(enabled=False)
    beat(api, utc(THURSDAY, 11))
    event(api, "market_open", utc(THURSDAY, 11, 1))
    assert state_of(bot, utc(THURSDAY, 11, 40)) == "stopped"
    assert bot_stopped_alerted(bot, utc(THURSDAY, 11, 40))


def test_a_new_trade_after_the_shutdown_says_the_bot_runs_again_and_an_older_one_does_not(
    api: APIClient, bot: Bot
) -> None:
    beat(api, utc(THURSDAY, 11))
    shut = utc(THURSDAY, 11, 1)
    event(api, "shutdown", shut)
    now = utc(THURSDAY, 11, 5)
    trade(api, 1, shut - MINUTE, now)  # shipped late: it happened before the shutdown
    trade(api, 2, shut, now)  # at the very instant of the shutdown: not after it
    assert state_of(bot, now) == "stopped at 2026-01-15 11:01:00 EST"
    assert trade(api, 2, shut, now) == 200  # a repeat stores nothing and says nothing
    assert state_of(bot, now) == "stopped at 2026-01-15 11:01:00 EST"
    trade(api, 3, shut + SECOND, now)
    assert state_of(bot, now) == "running"


def test_a_startup_after_the_shutdown_says_the_bot_runs_again(api: APIClient, bot: Bot) -> None:
    beat(api, utc(THURSDAY, 11))
    event(api, "shutdown", utc(THURSDAY, 11, 1))
    event(api, "startup", utc(THURSDAY, 11, 1))  # the same instant: not after the shutdown
    assert state_of(bot, utc(THURSDAY, 11, 2)) == "stopped at 2026-01-15 11:01:00 EST"
    event(api, "startup", utc(THURSDAY, 11, 1, 1))
    assert state_of(bot, utc(THURSDAY, 11, 2)) == "running"


@pytest.mark.parametrize(
    ("occurred", "stopped"),
    [
        # A heartbeat already on its way when the bot shut down arrives up to 30 s after it.
        (utc(THURSDAY, 10, 59, 30), True),
        # A heartbeat later than that: the bot started again, this is an old shutdown, replayed.
        (utc(THURSDAY, 10, 59, 30) - SECOND, False),
    ],
)
def test_a_shutdown_replayed_after_the_bot_started_again_does_not_stop_it(
    api: APIClient, bot: Bot, occurred: dt.datetime, stopped: bool
) -> None:
    """A restarted bot's spool ships yesterday's shutdown after its first heartbeat."""
    beat(api, utc(THURSDAY, 11))
    event(api, "shutdown", occurred, received=utc(THURSDAY, 11, 0, 5))
    bot.refresh_from_db()
    assert (bot.stopped_at is not None) is stopped
    expected = "stopped at 2026-01-15 10:59:30 EST" if stopped else "running"
    assert state_of(bot, utc(THURSDAY, 11, 1)) == expected


def test_a_shutdown_from_a_clock_running_ahead_is_stopped_at_the_sites_time(api: APIClient, bot: Bot) -> None:
    event(api, "shutdown", utc(THURSDAY, 11, 30), received=utc(THURSDAY, 11, 29))
    bot.refresh_from_db()
    assert bot.stopped_at == utc(THURSDAY, 11, 29)
    assert state_of(bot, utc(THURSDAY, 11, 29)) == "stopped at 2026-01-15 11:29:00 EST"


# --- a halted bot's card ----------------------------------------------------------------------


def halt(bot: Bot, **fields: Any) -> TradingHalt:
    return TradingHalt.objects.create(
        bot=bot,
        trading_day=THURSDAY,
        ends_on=dt.date(2026, 1, 16),
        reason="max daily loss: -1,200.00",
        created_at=utc(THURSDAY, 11),
        **fields,
    )


def test_a_halted_bots_card_says_halted_with_its_heartbeat_state_beside(
    api: APIClient, bot: Bot, admin_client: Client
) -> None:
    beat(api, utc(THURSDAY, 11))
    other = Bot.objects.create(name="beta")
    other.record_heartbeat("trading")  # the real clock: beta has no halt
    halted = halt(bot)
    now = utc(THURSDAY, 11, 5)
    state = card_of(bot, now).state
    assert (state.badge, state.css, state.label, state.halted_until) == (
        "halted",
        "halted",
        "running",
        dt.date(2026, 1, 16),
    )
    with clock(now):
        page = admin_client.get("/admin/").content.decode()
    card = page[page.index('data-bot="alpha"') :]
    card = card[: card.index("bot-chart")]
    assert '<span class="bot-state">halted</span>' in card and '<span class="bot-state">running' not in card
    assert '<span class="heartbeat-state">running</span>' in card
    assert "trading halted until Fri 2026-01-16 or until resumed" in card
    assert 'class="bot-card state-halted"' in page
    # The halt ends at the market's midnight: the next trading day's card is no longer halted.
    assert card_of(bot, utc(dt.date(2026, 1, 16), 0) - SECOND).state.badge == "halted"
    assert card_of(bot, utc(dt.date(2026, 1, 16), 0)).state.halted_until is None
    TradingHalt.objects.filter(pk=halted.pk).update(resumed_at=now, resumed_by="admin")
    assert card_of(bot, now).state.badge == "running"


# --- the market on each card ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "words"),
    [
        (utc(THURSDAY, 9, 30) - SECOND, "market closed, opens Thu 2026-01-15 09:30 EST"),
        (utc(THURSDAY, 9, 30), "market open, closes 16:00 EST"),
        (utc(THURSDAY, 16) - SECOND, "market open, closes 16:00 EST"),
        (utc(THURSDAY, 16), "market closed, opens Fri 2026-01-16 09:30 EST"),
        # Friday evening (Saturday in UTC) before Martin Luther King Jr. Day: Tuesday opens.
        (utc(dt.date(2026, 1, 16), 20), "market closed, opens Tue 2026-01-20 09:30 EST"),
    ],
)
def test_each_card_says_whether_the_market_is_open_and_when_that_changes(
    bot: Bot, admin_client: Client, now: dt.datetime, words: str
) -> None:
    Bot.objects.create(name="beta")
    assert [card.market.words for card in cockpit.build(now=now).bots] == [words, words]
    with clock(now):
        page = admin_client.get("/admin/").content.decode()
    assert page.count(words) == 2
