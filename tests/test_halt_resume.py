"""After "Resume trading" the operator is told until when the halting rule stays quiet: in the
success message and on the cockpit, until the market's midnight that ends the halt."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from alerts.models import TradingHalt
from monitorsite import cockpit
from trades.models import Bot

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
SECOND = dt.timedelta(seconds=1)
THURSDAY, FRIDAY, TUESDAY = dt.date(2026, 1, 15), dt.date(2026, 1, 16), dt.date(2026, 1, 20)


def utc(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(dt.UTC)


@contextmanager
def clock(moment: dt.datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def halted(bot: Bot, day: dt.date, ends_on: dt.date) -> TradingHalt:
    return TradingHalt.objects.create(
        bot=bot,
        trading_day=day,
        ends_on=ends_on,
        reason=f"max daily loss: realized P&L -1200 on {day}",
        created_at=utc(day, 11),
    )


def resume(admin_client: Client, halt: TradingHalt, at: dt.datetime) -> list[str]:
    action = {"action": "resume_trading", "_selected_action": [str(halt.pk)], "confirmed": "yes"}
    with clock(at):
        response = admin_client.post("/admin/alerts/tradinghalt/", action, follow=True)
    return [str(message) for message in response.context["messages"]]


def resumed_words(at: dt.datetime) -> list[str]:
    return [halt.quiet_until for halt in cockpit.build(now=at).resumed]


@pytest.mark.parametrize(
    ("day", "ends_on", "until"),
    [
        (THURSDAY, FRIDAY, "Fri 2026-01-16"),
        (FRIDAY, TUESDAY, "Tue 2026-01-20"),  # over the weekend and Martin Luther King Jr. Day
    ],
)
def test_the_resume_message_says_until_when_the_rule_stays_quiet(
    admin_client: Client, bot: Bot, day: dt.date, ends_on: dt.date, until: str
) -> None:
    halt = halted(bot, day, ends_on)
    words = f"max daily loss will not halt alpha again until {until} (the next trading day)"
    assert resume(admin_client, halt, utc(day, 11, 5)) == ["Trading resumed for 1 halt(s).", f"{words}."]
    # And it is so: the rule's halt for that day is the resumed one, no new halt is in force.
    again = TradingHalt.objects.halt(bot, day, "max daily loss: worse", utc(day, 15))
    assert again.pk == halt.pk and TradingHalt.objects.in_force(bot, day) is None


def test_the_cockpit_says_it_until_the_markets_midnight_that_ends_the_halt(
    admin_client: Client, bot: Bot
) -> None:
    halt = halted(bot, THURSDAY, FRIDAY)
    assert resumed_words(utc(THURSDAY, 11, 5)) == []  # in force: the halt banner, not this
    resume(admin_client, halt, utc(THURSDAY, 11, 5))
    words = "max daily loss will not halt alpha again until Fri 2026-01-16 (the next trading day)"
    assert resumed_words(utc(THURSDAY, 11, 5)) == [words]
    # 23:59:59 New York is already Friday in UTC: still Thursday's halt, still quiet.
    assert resumed_words(utc(FRIDAY, 0) - SECOND) == [words]
    assert resumed_words(utc(FRIDAY, 0)) == []  # the market's midnight: the rule judges afresh
    with clock(utc(THURSDAY, 20, 30)):
        page = admin_client.get("/admin/").content.decode()
    assert "Trading resumed: alpha</strong> by admin at 2026-01-15 11:05:00 EST" in page
    assert f'<span class="quiet-until">{words}.</span>' in page
    assert 'class="cockpit-halt"' not in page
