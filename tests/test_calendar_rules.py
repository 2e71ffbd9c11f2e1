"""The day rules, the halt's expiry and bot-stopped on a bot's own calendar: a London (XLON) bot and
a 24/7 bot (in Tokyo's zone) beside the site's New York one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import Client

from alerts import status
from alerts.evaluation import evaluate_schedule, evaluate_state, evaluate_trades
from alerts.models import Alert, AlertRule, TradingHalt
from tests.calendar_fixtures import *  # noqa: F403  (the bots fixture: three bots on three calendars)
from tests.conftest import stored_trade
from tests.state_fixtures import client_for, position, post_state
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
TOKYO = ZoneInfo("Asia/Tokyo")
SECOND = dt.timedelta(seconds=1)


def only(*names: str) -> None:
    AlertRule.objects.exclude(name__in=names).update(enabled=False)
    AlertRule.objects.filter(name__in=names).update(enabled=True)


def lose(bot: Bot, amount: str, when: dt.datetime, n: int = 1) -> None:
    with mock.patch("django.utils.timezone.now", return_value=when + SECOND):  # not in the future
        trade = stored_trade(n, side="SELL", pnl=Decimal(amount), executed_at=when)
    evaluate_trades(bot.pk, Trade.objects.record_batch(bot, [trade]).ids, now=when + SECOND)


def allowed(bot: Bot, now: dt.datetime) -> dict[str, Any]:
    with mock.patch("django.utils.timezone.now", return_value=now):
        response = client_for(bot).get("/api/v1/status/")
    assert response.status_code == 200
    return response.json()


# --- the day rules and the halt ------------------------------------------------------------------


def test_a_london_day_loss_is_londons_day_and_its_halt_ends_at_londons_midnight(bots: dict[str, Bot]) -> None:
    only("daily-loss-warning", "max-daily-loss")
    london = bots["london"]
    # 23:30 UTC on Wednesday 2 December is 23:30 in London (GMT): London's 2nd, and New York's.
    lose(london, "-1500", dt.datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    subjects = {alert.subject for alert in Alert.objects.filter(bot=london)}
    assert subjects == {f"bot-{london.pk}:2026-12-02"}
    (halt,) = TradingHalt.objects.filter(bot=london)
    assert (halt.trading_day, halt.ends_on) == (dt.date(2026, 12, 2), dt.date(2026, 12, 3))
    midnight = dt.datetime(2026, 12, 3, tzinfo=LONDON)  # 00:00 UTC; 19:00 the evening before in New York
    body = allowed(london, midnight - SECOND)
    assert body["trading_allowed"] is False and body["halted_until"] == "2026-12-03"
    assert allowed(london, midnight)["trading_allowed"] is True
    assert status.halts_in_force(midnight - SECOND) == [halt]
    assert status.halts_in_force(midnight) == []


def test_a_london_halt_on_christmas_eve_lasts_through_its_holidays(bots: dict[str, Bot]) -> None:
    only("max-daily-loss")
    lose(bots["london"], "-1500", dt.datetime(2026, 12, 24, 11, tzinfo=UTC))
    lose(bots["new_york"], "-1500", dt.datetime(2026, 12, 24, 15, tzinfo=UTC), n=2)
    ends = {halt.bot.name: halt.ends_on for halt in TradingHalt.objects.all()}
    # London is shut on the 25th and on Monday the 28th (Boxing Day); New York only on the 25th.
    assert ends == {"london": dt.date(2026, 12, 29), "new_york": dt.date(2026, 12, 28)}
    assert (
        allowed(bots["london"], dt.datetime(2026, 12, 28, 23, 59, 59, tzinfo=UTC))["trading_allowed"] is False
    )
    assert allowed(bots["london"], dt.datetime(2026, 12, 29, tzinfo=UTC))["trading_allowed"] is True


def test_a_24_7_bots_saturday_loss_halts_it_until_sunday_in_its_zone(bots: dict[str, Bot]) -> None:
    only("max-daily-loss")
    crypto = bots["crypto"]
    saturday_noon = dt.datetime(2026, 12, 5, 12, tzinfo=TOKYO)
    lose(crypto, "-1500", saturday_noon)
    (halt,) = TradingHalt.objects.all()
    assert (halt.trading_day, halt.ends_on) == (dt.date(2026, 12, 5), dt.date(2026, 12, 6))
    sunday = dt.datetime(2026, 12, 6, tzinfo=TOKYO)  # 15:00 UTC on Saturday
    assert allowed(crypto, sunday - SECOND)["trading_allowed"] is False
    assert allowed(crypto, sunday)["trading_allowed"] is True


def test_the_schedule_judges_each_bot_on_its_own_today(bots: dict[str, Bot]) -> None:
    only("daily-loss-warning")
    # Losses at 00:30 Tokyo time on Sunday 6 December (15:30 UTC on Saturday): Tokyo's Sunday.
    moment = dt.datetime(2026, 12, 5, 15, 30, tzinfo=UTC)
    with mock.patch("django.utils.timezone.now", return_value=moment):
        trade = stored_trade(1, side="SELL", pnl=Decimal("-600"), executed_at=moment)
    Trade.objects.record_batch(bots["crypto"], [trade])
    evaluate_schedule(now=moment + dt.timedelta(minutes=5))
    (alert,) = Alert.objects.all()
    assert alert.subject == f"bot-{bots['crypto'].pk}:2026-12-06"


def test_state_days_are_the_bots_days(bots: dict[str, Bot]) -> None:
    only("daily-loss-warning")
    london = bots["london"]
    # A heartbeat at 00:30 London time in summer (23:30 UTC): London's 16 July.
    moment = dt.datetime(2026, 7, 15, 23, 30, tzinfo=UTC)
    post_state(client_for(london), moment, positions=[position("VOD", 1000, 2, 1.3)])
    evaluate_state(london.pk, moment, now=moment + SECOND)
    (alert,) = Alert.objects.all()
    assert alert.subject == f"bot-{london.pk}:2026-07-16"


def test_the_cockpit_lists_each_bots_halt_on_its_own_day(admin_client: Client, bots: dict[str, Bot]) -> None:
    # Halts of Wednesday 2 December for London and New York; at 02:00 UTC on the 3rd London's is over.
    for bot in (bots["london"], bots["new_york"]):
        TradingHalt.objects.create(
            bot=bot,
            trading_day=dt.date(2026, 12, 2),
            ends_on=dt.date(2026, 12, 3),
            reason="r",
            created_at=dt.datetime(2026, 12, 2, 12, tzinfo=UTC),
        )
    later = dt.datetime(2026, 12, 3, 2, tzinfo=UTC)
    assert [halt.bot.name for halt in status.halts_in_force(later)] == ["new_york"]
    TradingHalt.objects.update(resumed_at=later, resumed_by="ops")
    assert [halt.bot.name for halt in status.resumed_halts(later)] == ["new_york"]


# --- bot stopped ------------------------------------------------------------------------------


def heartbeat(bot: Bot, moment: dt.datetime) -> None:
    Bot.objects.filter(pk=bot.pk).update(last_heartbeat_at=moment)


def stopped(now: dt.datetime) -> set[str]:
    evaluate_schedule(now=now)
    return {alert.bot.name for alert in Alert.objects.filter(source="bot_stopped")}


def test_a_london_bot_is_judged_while_london_trades(bots: dict[str, Bot]) -> None:
    only("bot-stopped")  # 10 minutes
    # 08:00 to 16:30 in London (GMT) on Thursday 3 December: New York is closed until 14:30 UTC.
    for bot in bots.values():
        heartbeat(bot, dt.datetime(2026, 12, 3, 9, tzinfo=UTC))
    assert stopped(dt.datetime(2026, 12, 3, 9, 10, tzinfo=UTC)) == set()  # exactly the grace
    # New York closed: its bot is silent, not stopped; London's and the 24/7 bot's are stopped.
    assert stopped(dt.datetime(2026, 12, 3, 9, 10, 1, tzinfo=UTC)) == {"london", "crypto"}


def test_a_london_bot_is_not_judged_after_londons_close(bots: dict[str, Bot]) -> None:
    only("bot-stopped")
    london = bots["london"]
    heartbeat(london, dt.datetime(2026, 12, 3, 16, 0, tzinfo=UTC))
    assert stopped(dt.datetime(2026, 12, 3, 16, 30, tzinfo=UTC)) == {"london"}  # the bell, still in hours
    Alert.objects.all().delete()
    heartbeat(london, dt.datetime(2026, 12, 3, 16, 0, tzinfo=UTC))
    assert stopped(dt.datetime(2026, 12, 3, 16, 30, 1, tzinfo=UTC)) == set()  # closed
    # The next morning's open bell is not a breach: counted from 08:00.
    assert stopped(dt.datetime(2026, 12, 4, 8, 10, tzinfo=UTC)) == set()
    assert stopped(dt.datetime(2026, 12, 4, 8, 10, 1, tzinfo=UTC)) == {"london"}


def test_a_24_7_bot_is_judged_at_any_hour_across_its_midnight(bots: dict[str, Bot]) -> None:
    only("bot-stopped")
    crypto = bots["crypto"]
    # 23:55 on Saturday in Tokyo, the weekend: New York and London are shut.
    heartbeat(crypto, dt.datetime(2026, 12, 5, 23, 55, tzinfo=TOKYO))
    assert stopped(dt.datetime(2026, 12, 6, 0, 5, tzinfo=TOKYO)) == set()
    # Its midnight does not restart the count: 10 minutes and a second after its last heartbeat.
    assert stopped(dt.datetime(2026, 12, 6, 0, 5, 1, tzinfo=TOKYO)) == {"crypto"}
