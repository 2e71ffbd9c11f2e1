"""Per-bot calendars: an exchange in its own zone, 24/7 and 24/5 in the bot's; trading days at each
calendar's edges, the bot's calendar set by create_bot and in the admin, the trades' stored trading
day, and recompute_trading_days after a change."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

from tests.conftest import stored_trade
from trades import market, sessions
from trades.apps import market_calendar_check
from trades.management.commands import recompute_trading_days
from trades.market import Calendar, calendar_for, calendar_of
from trades.models import Bot, Trade

UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
TOKYO = ZoneInfo("Asia/Tokyo")


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- one instant, four calendars ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "days"),
    [
        # 23:30 UTC on a winter Thursday: 18:30 in New York, 23:30 in London, 08:30 Friday in Tokyo.
        (dt.datetime(2026, 1, 15, 23, 30, tzinfo=UTC), {"XNYS": 15, "XLON": 15, "XTKS": 16, "24/7": 15}),
        # 00:30 UTC: London's midnight is UTC's in winter; New York is still on the evening before.
        (dt.datetime(2026, 1, 16, 0, 30, tzinfo=UTC), {"XNYS": 15, "XLON": 16, "XTKS": 16, "24/7": 16}),
        # 23:30 UTC in summer is 00:30 the next day in London (BST): London's midnight, not UTC's.
        (dt.datetime(2026, 7, 15, 23, 30, tzinfo=UTC), {"XNYS": 15, "XLON": 16, "XTKS": 16, "24/7": 15}),
        (dt.datetime(2026, 7, 15, 22, 59, tzinfo=UTC), {"XNYS": 15, "XLON": 15, "XTKS": 16, "24/7": 15}),
        (dt.datetime(2026, 7, 15, 23, 0, tzinfo=UTC), {"XNYS": 15, "XLON": 16, "XTKS": 16, "24/7": 15}),
        # 15:00 UTC is Tokyo's midnight.
        (dt.datetime(2026, 1, 15, 14, 59, tzinfo=UTC), {"XNYS": 15, "XLON": 15, "XTKS": 15, "24/7": 15}),
        (dt.datetime(2026, 1, 15, 15, 0, tzinfo=UTC), {"XNYS": 15, "XLON": 15, "XTKS": 16, "24/7": 15}),
    ],
)
def test_the_same_instant_in_new_york_london_tokyo_and_utc(moment: dt.datetime, days: dict[str, int]) -> None:
    for code, day in days.items():
        calendar = calendar_of(code, "UTC")
        assert calendar.trading_day_of(moment) == moment.date().replace(day=day), code
        assert calendar.today(moment) == moment.date().replace(day=day), code


def test_an_exchange_keeps_its_own_zone_and_24_7_takes_the_bots() -> None:
    assert calendar_of("XLON", "Asia/Tokyo") == Calendar("XLON", LONDON)
    assert calendar_of("XTKS").zone == TOKYO
    assert calendar_of("24/7", "Asia/Tokyo") == Calendar("24/7", TOKYO)
    assert calendar_of("24/5") == Calendar("24/5", ZoneInfo("UTC"))


def test_the_site_calendar_is_market_calendar_in_market_timezone(settings: Any) -> None:
    assert market.site_calendar() == Calendar("XNYS", ZoneInfo("America/New_York"))
    settings.MARKET_CALENDAR, settings.MARKET_TIMEZONE = "XLON", "Europe/Paris"
    assert market.site_calendar() == Calendar("XLON", ZoneInfo("Europe/Paris"))
    assert calendar_of("XLON") == market.site_calendar()  # the site's code: the site's calendar
    assert market.is_trading_day(dt.date(2026, 8, 31)) is False  # the summer bank holiday in London
    assert calendar_of("XNYS").is_trading_day(dt.date(2026, 8, 31)) is True


@pytest.mark.parametrize("code", sorted(market.KNOWN_ZONES))
def test_known_zones_are_the_librarys(code: str) -> None:
    assert market.KNOWN_ZONES[code] == sessions.zone(code)


def test_the_library_gives_the_zone_of_other_codes() -> None:
    assert calendar_of("CMES").zone == ZoneInfo("America/Chicago")
    assert calendar_of("XNAS").zone == ZoneInfo("America/New_York")  # an alias of XNYS


# --- 24/7 and 24/5 --------------------------------------------------------------------------------


def test_a_24_7_weekend_is_trading_days_open_at_every_hour() -> None:
    calendar = calendar_of("24/7", "Europe/London")
    saturday, sunday = dt.date(2026, 12, 5), dt.date(2026, 12, 6)
    assert calendar.is_trading_day(saturday) and calendar.is_trading_day(sunday)
    assert calendar.market_hours(saturday) == (
        dt.datetime(2026, 12, 5, tzinfo=LONDON),
        dt.datetime(2026, 12, 6, tzinfo=LONDON),
    )
    for hour in (0, 3, 23):
        assert calendar.is_open(dt.datetime(2026, 12, 6, hour, 59, tzinfo=LONDON))
    clock = calendar.clock(dt.datetime(2026, 12, 6, 3, tzinfo=LONDON))
    assert clock.is_open and clock.words == "market open 24/7"
    assert calendar.last_trading_days(3, sunday) == (dt.date(2026, 12, 4), sunday)
    assert calendar.next_trading_day(dt.date(2026, 12, 4)) == saturday
    assert not calendar.is_last_trading_day_of_week(saturday)
    assert calendar.is_last_trading_day_of_week(sunday)
    assert calendar.end_of_trading_day(dt.datetime(2026, 12, 6, 23, 59, tzinfo=LONDON)) == dt.datetime(
        2026, 12, 7, tzinfo=LONDON
    )


def test_24_5_closes_at_the_weekend_in_the_bots_zone() -> None:
    calendar = calendar_of("24/5", "Asia/Tokyo")
    friday, saturday, monday = dt.date(2026, 12, 4), dt.date(2026, 12, 5), dt.date(2026, 12, 7)
    assert calendar.is_trading_day(friday) and not calendar.is_trading_day(saturday)
    assert calendar.is_open(dt.datetime(2026, 12, 4, 23, 59, 59, tzinfo=TOKYO))
    assert not calendar.is_open(dt.datetime(2026, 12, 5, 0, 0, tzinfo=TOKYO))
    closed = calendar.clock(dt.datetime(2026, 12, 5, 12, tzinfo=TOKYO))
    assert not closed.is_open and closed.next_change == dt.datetime(2026, 12, 7, tzinfo=TOKYO)
    # Monday's open lasts, day after day, until Friday's midnight.
    open_ = calendar.clock(dt.datetime(2026, 12, 7, 9, tzinfo=TOKYO))
    assert open_.is_open and open_.next_change == dt.datetime(2026, 12, 12, tzinfo=TOKYO)
    assert calendar.is_last_trading_day_of_week(friday)
    assert calendar.next_trading_day(friday) == monday


# --- sessions crossing UTC midnight ---------------------------------------------------------------


def test_a_tokyo_session_opens_at_utc_midnight() -> None:
    calendar = calendar_of("XTKS")
    day = dt.date(2026, 1, 15)
    assert calendar.market_hours(day) == (
        dt.datetime(2026, 1, 15, 9, tzinfo=TOKYO),
        dt.datetime(2026, 1, 15, 15, 30, tzinfo=TOKYO),
    )
    assert not calendar.is_open(dt.datetime(2026, 1, 14, 23, 59, 59, tzinfo=UTC))
    assert calendar.is_open(dt.datetime(2026, 1, 15, 0, 0, tzinfo=UTC))
    assert calendar.trading_day_of(dt.datetime(2026, 1, 15, 0, 0, tzinfo=UTC)) == day


def test_a_sydney_session_starts_the_utc_evening_before() -> None:
    calendar = calendar_of("XASX")
    opening = dt.datetime(2026, 1, 14, 23, 0, tzinfo=UTC)  # 10:00 on the 15th in Sydney (AEDT)
    assert not calendar.is_open(opening - dt.timedelta(seconds=1))
    assert calendar.is_open(opening)
    assert calendar.trading_day_of(opening) == dt.date(2026, 1, 15)
    clock = calendar.clock(opening - dt.timedelta(minutes=1))
    assert not clock.is_open and clock.next_change == opening


# --- holidays and early closes from the library ---------------------------------------------------


def test_london_holidays_and_christmas_eve_early_close() -> None:
    calendar = calendar_of("XLON")
    assert calendar.market_hours(dt.date(2026, 12, 24)) == (
        dt.datetime(2026, 12, 24, 8, tzinfo=LONDON),
        dt.datetime(2026, 12, 24, 12, 30, tzinfo=LONDON),
    )
    assert calendar.is_open(dt.datetime(2026, 12, 24, 12, 29, tzinfo=LONDON))
    assert not calendar.is_open(dt.datetime(2026, 12, 24, 12, 30, tzinfo=LONDON))
    assert not calendar.is_trading_day(dt.date(2026, 12, 25))
    assert not calendar.is_trading_day(dt.date(2026, 12, 28))  # Boxing Day, on the Monday
    assert calendar.next_trading_day(dt.date(2026, 12, 24)) == dt.date(2026, 12, 29)
    clock = calendar.clock(dt.datetime(2026, 12, 24, 13, tzinfo=LONDON))
    assert clock.words == "market closed, opens Tue 2026-12-29 08:00 GMT"
    assert calendar.last_trading_days(2, dt.date(2026, 12, 28)) == (
        dt.date(2026, 12, 23),
        dt.date(2026, 12, 24),
    )


def test_tokyo_new_year_and_hong_kong_christmas_eve() -> None:
    tokyo = calendar_of("XTKS")
    assert not tokyo.is_trading_day(dt.date(2026, 1, 2))
    assert tokyo.next_open(dt.datetime(2026, 1, 1, tzinfo=TOKYO)) == dt.datetime(2026, 1, 5, 9, tzinfo=TOKYO)
    hong_kong = calendar_of("XHKG")
    hours = hong_kong.market_hours(dt.date(2026, 12, 24))
    assert hours is not None and hours[1] == dt.datetime(2026, 12, 24, 12, tzinfo=ZoneInfo("Asia/Hong_Kong"))


# --- what an operator types -----------------------------------------------------------------------


@pytest.mark.parametrize("code", ["XNYS", "XLON", "XTKS", "XHKG", "CMES", "24/7", "24/5"])
def test_known_calendars_are_taken(code: str) -> None:
    market.validate_calendar_code(code)


@pytest.mark.parametrize("code", ["XXXX", "xlon", "24/6", ""])
def test_an_unknown_calendar_is_refused_naming_codes(code: str) -> None:
    with pytest.raises(ValidationError) as raised:
        market.validate_calendar_code(code)
    assert f"Unknown calendar {code!r}" in raised.value.messages[0]
    assert "24/7, 24/5, XNYS, XLON" in raised.value.messages[0]


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "EST5"])
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="Unknown time zone"):
        market.validate_timezone_name(name)
    market.validate_timezone_name("Asia/Tokyo")


def test_market_calendar_is_checked(settings: Any) -> None:
    assert market_calendar_check() == []
    settings.MARKET_CALENDAR = "NOPE"
    [error] = market_calendar_check()
    assert error.msg.startswith("MARKET_CALENDAR: Unknown calendar 'NOPE'")


def test_create_bot_with_a_calendar(db: Any, settings: Any) -> None:
    run("create_bot", "london", "--calendar", "xlon")
    run("create_bot", "crypto", "--calendar", "24/7", "--timezone", "Asia/Tokyo")
    settings.MARKET_CALENDAR = "XHKG"
    run("create_bot", "plain")
    bots = {bot.name: (bot.calendar, bot.timezone) for bot in Bot.objects.all()}
    assert bots == {"london": ("XLON", "UTC"), "crypto": ("24/7", "Asia/Tokyo"), "plain": ("XHKG", "UTC")}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--calendar", "NOPE"], "--calendar: Unknown calendar 'NOPE'"),
        (
            ["--calendar", "24/7", "--timezone", "Mars/Olympus"],
            "--timezone: Unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_create_bot_refuses_a_bad_calendar_or_zone(db: Any, options: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_bot", "beta", *options)
    assert not Bot.objects.exists()


def bot_form(admin_client: Client, url: str) -> dict[str, str]:
    html = admin_client.get(url).content.decode()
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    data.update({"name": "gamma", "is_active": "on", "_save": "Save"})
    return data


def test_the_admin_refuses_a_bad_calendar_where_it_is_typed(admin_client: Client, db: Any) -> None:
    data = bot_form(admin_client, "/admin/trades/bot/add/") | {"calendar": "XLNO", "timezone": "UTC"}
    response = admin_client.post("/admin/trades/bot/add/", data)
    assert response.status_code == 200
    html = response.content.decode()
    error = html[html.index('class="errorlist') : html.index("</ul>", html.index('class="errorlist'))]
    assert "Unknown calendar &#x27;XLNO&#x27;" in error and "XLON" in error
    assert not Bot.objects.exists()
    data |= {"calendar": "24/7", "timezone": "Mars/Olympus"}
    assert "Unknown time zone" in admin_client.post("/admin/trades/bot/add/", data).content.decode()
    data |= {"calendar": "xlon ", "timezone": ""}  # as create_bot takes it: upper case, trimmed
    assert admin_client.post("/admin/trades/bot/add/", data).status_code == 302
    assert (Bot.objects.get().calendar, Bot.objects.get().timezone) == ("XLON", "UTC")


def test_the_admin_says_to_recompute_after_a_calendar_change(admin_client: Client, bot: Bot) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1)])
    url = f"/admin/trades/bot/{bot.pk}/change/"
    data = bot_form(admin_client, url) | {"name": "alpha", "calendar": "XTKS", "timezone": "UTC"}
    page = admin_client.post(url, data, follow=True).content.decode()
    assert "manage.py recompute_trading_days alpha" in page
    data = bot_form(admin_client, url) | {"name": "alpha", "description": "unchanged calendar"}
    page = admin_client.post(url, data, follow=True).content.decode()
    assert "was changed successfully" in page and "recompute_trading_days" not in page, page


# --- the trades' trading day ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calendar", "zone", "day"),
    [
        ("XNYS", "UTC", dt.date(2026, 1, 15)),  # 21:30 in New York
        ("XTKS", "UTC", dt.date(2026, 1, 16)),  # 11:30 in Tokyo
        ("24/7", "UTC", dt.date(2026, 1, 16)),
        ("24/7", "America/Los_Angeles", dt.date(2026, 1, 15)),
    ],
)
def test_a_trade_takes_its_bots_trading_day(db: Any, calendar: str, zone: str, day: dt.date) -> None:
    bot = Bot.objects.create(name="b", calendar=calendar, timezone=zone)
    at = dt.datetime(2026, 1, 16, 2, 30, tzinfo=UTC)
    Trade.objects.record_batch(bot, [stored_trade(1, executed_at=at)])
    trade = Trade.objects.get()
    assert trade.trading_day == day
    trade.trading_day = dt.date(2000, 1, 1)
    trade.save()  # the admin's save keeps it in step, on the bot's calendar
    trade.refresh_from_db()
    assert trade.trading_day == day


def test_recompute_trading_days_moves_a_bots_trades_onto_its_new_calendar(db: Any) -> None:
    bot = Bot.objects.create(name="b", calendar="XNYS")
    other = Bot.objects.create(name="o", calendar="XNYS")
    start = dt.datetime(2026, 1, 15, 12, tzinfo=UTC)
    moments = [start + dt.timedelta(hours=3 * n) for n in range(9)]  # 12:00 to 12:00 the next day
    Trade.objects.record_batch(bot, [stored_trade(n, executed_at=at) for n, at in enumerate(moments)])
    Trade.objects.record_batch(other, [stored_trade(n, executed_at=at) for n, at in enumerate(moments)])
    before = list(other.trades.order_by("pk").values_list("trading_day", flat=True))
    Bot.objects.filter(pk=bot.pk).update(calendar="XTKS")
    bot.refresh_from_db()
    assert recompute_trading_days.mismatches(bot) == 5  # 15:00 to 03:00 UTC: New York's 15th, Tokyo's 16th
    assert recompute_trading_days.recompute(bot, batch=2) == (9, 5)  # batches' edges included
    assert recompute_trading_days.mismatches(bot) == 0
    assert [t.trading_day for t in bot.trades.order_by("pk")] == [
        calendar_for(bot).trading_day_of(at) for at in moments
    ]
    assert list(other.trades.order_by("pk").values_list("trading_day", flat=True)) == before
    Bot.objects.filter(pk=bot.pk).update(calendar="24/7", timezone="America/Los_Angeles")
    line = run("recompute_trading_days", "b")
    assert line == (
        "b: trading days recomputed on 24/7 (America/Los_Angeles): 6 of 9 trades changed,"
        " every trade verified.\n"
    )
    with pytest.raises(CommandError, match="No bot named 'nobody'"):
        run("recompute_trading_days", "nobody")
