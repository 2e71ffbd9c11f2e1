"""Each daily feature on a bot's own calendar: a London (XLON) bot and a 24/7 bot beside a New York
one (the site's calendar). The figures' days, their defaults and "the last 30 trading days"."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from monitorsite import cockpit
from monitorsite.telegram import commands as telegram
from tests.conftest import stored_trade
from tests.state_fixtures import client_for, position, post_state
from trades import positions
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
UTC = dt.UTC
# 23:30 UTC on Wednesday 2026-07-15: 19:30 in New York, 00:30 on Thursday the 16th in London (BST).
LATE = dt.datetime(2026, 7, 15, 23, 30, tzinfo=UTC)


@pytest.fixture
def bots() -> dict[str, Bot]:
    return {
        "new_york": Bot.objects.create(name="new_york", calendar="XNYS"),
        "london": Bot.objects.create(name="london", calendar="XLON"),
        "crypto": Bot.objects.create(name="crypto", calendar="24/7", timezone="UTC"),
    }


def get(bot: Bot, path: str, now: dt.datetime) -> Any:
    with mock.patch("django.utils.timezone.now", return_value=now):
        response = client_for(bot).get(path)
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def test_the_daily_figures_default_to_the_bots_today(bots: dict[str, Bot]) -> None:
    for bot in bots.values():
        # 23:45 in London on the 15th, and 00:15 on the 16th.
        moments = (dt.datetime(2026, 7, 15, 22, 45, tzinfo=UTC), dt.datetime(2026, 7, 15, 23, 15, tzinfo=UTC))
        Trade.objects.record_batch(
            bot, [stored_trade(n, executed_at=at, pnl=Decimal("10")) for n, at in enumerate(moments)]
        )
    expected = {"new_york": ("2026-07-15", 2), "london": ("2026-07-16", 1), "crypto": ("2026-07-15", 2)}
    for name, bot in bots.items():
        body = get(bot, "/api/v1/summary/daily/", LATE)
        assert (body["date"], body["total_trades"]) == expected[name], name


def test_the_period_defaults_to_the_bots_last_30_trading_days(bots: dict[str, Bot]) -> None:
    sunday = dt.datetime(2026, 12, 6, 12, tzinfo=UTC)
    expected = {
        "new_york": "2026-10-23",  # Thanksgiving (26 Nov) is no trading day in New York
        "london": "2026-10-26",  # 30 weekdays back from Friday 4 December
        "crypto": "2026-11-07",  # 30 days, weekends included
    }
    for name, bot in bots.items():
        body = get(bot, "/api/v1/summary/period/", sunday)
        assert (body["start"], body["end"]) == (expected[name], "2026-12-06"), name


def test_the_days_pnl_with_positions_starts_at_the_bots_midnight(bots: dict[str, Bot]) -> None:
    for bot in bots.values():
        # 23:30 UTC: a snapshot of the 15th in New York and UTC, of the 16th in London.
        post_state(client_for(bot), LATE, positions=[position("AAPL", 10, 100, 110)])
    assert positions.day_snapshot(bots["london"], dt.date(2026, 7, 16)) is not None
    assert positions.day_snapshot(bots["london"], dt.date(2026, 7, 15)) is None
    for name in ("new_york", "crypto"):
        assert positions.day_snapshot(bots[name], dt.date(2026, 7, 15)) is not None, name
        assert positions.day_snapshot(bots[name], dt.date(2026, 7, 16)) is None, name
    body = get(bots["london"], "/api/v1/positions/", LATE)
    assert body["day_pnl"] == 100  # opened on London's 16th: all of its unrealized P&L is that day's


def test_the_report_page_defaults_to_the_chosen_bots_today(
    admin_client: Client, bots: dict[str, Bot]
) -> None:
    with mock.patch("django.utils.timezone.now", return_value=LATE):
        london = admin_client.get("/admin/report/?bot=london").content.decode()
        crypto = admin_client.get("/admin/report/?bot=crypto").content.decode()
        every = admin_client.get("/admin/report/").content.decode()
    assert "Report: london, Thu 2026-07-16" in london
    assert "Report: crypto, Wed 2026-07-15" in crypto
    assert "Report: all bots, Wed 2026-07-15" in every  # the site's calendar (New York)


def test_the_cockpit_shows_each_bots_market_and_day(admin_client: Client, bots: dict[str, Bot]) -> None:
    # 09:00 UTC on Thursday 3 December: London open since 08:00 GMT, New York opens at 09:30 EST.
    morning = dt.datetime(2026, 12, 3, 9, tzinfo=UTC)
    cards = {card.bot.name: card for card in cockpit.build(now=morning).bots}
    assert cards["london"].market.words == "market open, closes 16:30 GMT"
    assert cards["new_york"].market.words == "market closed, opens Thu 2026-12-03 09:30 EST"
    assert cards["crypto"].market.words == "market open 24/7"
    assert cards["new_york"].calendar == ""  # the site's calendar: as before
    assert cards["london"].calendar == "XLON, Thu 2026-12-03"
    with mock.patch("django.utils.timezone.now", return_value=morning):
        page = admin_client.get("/admin/").content.decode()
    assert '<span class="bot-calendar">XLON, Thu 2026-12-03:</span> market open, closes 16:30 GMT' in page
    # Late on the 15th of July in New York is the 16th in London: each card counts its own day.
    for bot in bots.values():
        with mock.patch("django.utils.timezone.now", return_value=LATE):
            trade = stored_trade(1, executed_at=LATE - dt.timedelta(minutes=1), pnl=Decimal("5"))
        Trade.objects.record_batch(bot, [trade])
    cards = {card.bot.name: card for card in cockpit.build(now=LATE).bots}
    assert {name: (card.today.date, card.today.total_trades) for name, card in cards.items()} == {
        "new_york": (dt.date(2026, 7, 15), 1),
        "london": (dt.date(2026, 7, 16), 1),
        "crypto": (dt.date(2026, 7, 15), 1),
    }
    assert cards["london"].period.end == dt.date(2026, 7, 16)


def test_telegram_replies_count_each_bots_day(bots: dict[str, Bot]) -> None:
    for bot in bots.values():
        with mock.patch("django.utils.timezone.now", return_value=LATE):
            trade = stored_trade(1, executed_at=LATE - dt.timedelta(minutes=1), pnl=Decimal("5"))
        Trade.objects.record_batch(bot, [trade])
    sender = telegram.Sender(111, "ann")
    today = telegram.today_command(sender, "", LATE).text
    assert "Today, Wed 2026-07-15" in today
    london = today[today.index("london") :].split("\n\n")[0]
    assert london.startswith("london (XLON, Thu 2026-07-16)\nTrades: 1")
    assert "new_york\nTrades: 1" in today and "crypto (24/7, Wed 2026-07-15)\nTrades: 1" in today
    week = telegram.week_command(sender, "", LATE).text
    assert "london (XLON, Fri 2026-07-10 to Thu 2026-07-16)" in week
    assert "crypto (24/7, Sat 2026-07-11 to Wed 2026-07-15)" in week  # 5 trading days: 5 days
    halt = telegram.halt_command(sender, "london", LATE).text
    assert "until Fri 2026-07-17 (the next trading day)" in halt
