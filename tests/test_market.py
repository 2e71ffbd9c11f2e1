"""The trading calendar: trading days, hours with early closes, and the market's today."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest

from trades import market

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (dt.date(2026, 11, 26), False),  # Thanksgiving
        (dt.date(2026, 11, 27), True),  # the day after: early close
        (dt.date(2026, 4, 3), False),  # Good Friday
        (dt.date(2026, 11, 28), False),  # Saturday
        (dt.date(2026, 11, 29), False),  # Sunday
        (dt.date(2026, 11, 25), True),  # an ordinary Wednesday
        (dt.date(2027, 1, 1), False),  # New Year's Day, a year ahead
        (dt.date(2027, 11, 25), False),  # Thanksgiving a year ahead
        (dt.date(2001, 9, 11), False),  # closed after the attacks: not a weekday rule
    ],
)
def test_is_trading_day(day: dt.date, trading: bool) -> None:
    assert market.is_trading_day(day) is trading


def test_market_hours_of_an_ordinary_day_in_market_time() -> None:
    assert market.market_hours(dt.date(2026, 11, 25)) == (
        dt.datetime(2026, 11, 25, 9, 30, tzinfo=NEW_YORK),
        dt.datetime(2026, 11, 25, 16, 0, tzinfo=NEW_YORK),
    )


def test_the_day_after_thanksgiving_closes_early() -> None:
    opens, closes = market.market_hours(dt.date(2026, 11, 27))  # type: ignore[misc]
    assert (opens.hour, opens.minute, closes.hour, closes.minute) == (9, 30, 13, 0)


def test_no_hours_on_a_holiday_or_weekend() -> None:
    assert market.market_hours(dt.date(2026, 11, 26)) is None
    assert market.market_hours(dt.date(2026, 4, 4)) is None


def test_market_hours_follow_summer_time() -> None:
    opens, _ = market.market_hours(dt.date(2026, 7, 15))  # type: ignore[misc]
    assert opens.astimezone(dt.UTC).hour == 13  # 09:30 EDT


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # 21:30 New York on 2026-01-15 (EST) is 02:30 UTC on the 16th.
        (dt.datetime(2026, 1, 16, 2, 30, tzinfo=dt.UTC), dt.date(2026, 1, 15)),
        # 23:59 New York is still the 15th.
        (dt.datetime(2026, 1, 16, 4, 59, tzinfo=dt.UTC), dt.date(2026, 1, 15)),
        # Midnight New York is the 16th.
        (dt.datetime(2026, 1, 16, 5, 0, tzinfo=dt.UTC), dt.date(2026, 1, 16)),
        # In summer the boundary is 04:00 UTC.
        (dt.datetime(2026, 7, 16, 3, 59, tzinfo=dt.UTC), dt.date(2026, 7, 15)),
    ],
)
def test_today_late_in_the_new_york_evening(utc: dt.datetime, expected: dt.date) -> None:
    with mock.patch("django.utils.timezone.now", return_value=utc):
        assert market.today() == expected
    assert market.today(now=utc) == expected


def test_today_follows_the_market_timezone_setting(settings: Any) -> None:
    settings.MARKET_TIMEZONE = "Asia/Tokyo"
    moment = dt.datetime(2026, 1, 15, 16, 0, tzinfo=dt.UTC)  # 01:00 on the 16th in Tokyo
    assert market.today(now=moment) == dt.date(2026, 1, 16)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (dt.datetime(2026, 11, 25, 9, 29, tzinfo=NEW_YORK), False),
        (dt.datetime(2026, 11, 25, 9, 30, tzinfo=NEW_YORK), True),
        (dt.datetime(2026, 11, 25, 15, 59, tzinfo=NEW_YORK), True),
        (dt.datetime(2026, 11, 25, 16, 0, tzinfo=NEW_YORK), False),
        (dt.datetime(2026, 11, 27, 13, 30, tzinfo=NEW_YORK), False),  # after the early close
        (dt.datetime(2026, 11, 26, 12, 0, tzinfo=NEW_YORK), False),  # Thanksgiving
    ],
)
def test_is_market_open(moment: dt.datetime, open_: bool) -> None:
    assert market.is_market_open(moment) is open_


def ny(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NEW_YORK)


WEDNESDAY, FRIDAY, MONDAY = dt.date(2026, 11, 25), dt.date(2026, 11, 27), dt.date(2026, 11, 30)
SECOND = dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("moment", "is_open", "next_change"),
    [
        (ny(WEDNESDAY, 9, 30) - SECOND, False, ny(WEDNESDAY, 9, 30)),
        (ny(WEDNESDAY, 9, 30), True, ny(WEDNESDAY, 16)),  # the opening bell is open
        (ny(WEDNESDAY, 16) - SECOND, True, ny(WEDNESDAY, 16)),
        # The closing bell is closed; Thanksgiving is skipped, Friday opens at 09:30 (closes at 13:00).
        (ny(WEDNESDAY, 16), False, ny(FRIDAY, 9, 30)),
        (ny(dt.date(2026, 11, 26), 12), False, ny(FRIDAY, 9, 30)),  # Thanksgiving
        (ny(FRIDAY, 12, 59, 59), True, ny(FRIDAY, 13)),  # the early close
        (ny(FRIDAY, 13), False, ny(MONDAY, 9, 30)),  # over the weekend
        (ny(dt.date(2026, 11, 29), 23, 59, 59), False, ny(MONDAY, 9, 30)),  # Sunday night
    ],
)
def test_the_market_clock_at_the_bells_over_a_holiday_and_a_weekend(
    moment: dt.datetime, is_open: bool, next_change: dt.datetime
) -> None:
    clock = market.market_clock(moment.astimezone(dt.UTC))  # given as the site's clock gives it
    assert (clock.is_open, clock.next_change) == (is_open, next_change)
    assert clock.is_open is market.is_market_open(moment)


def test_the_market_clock_counts_the_markets_midnight_not_utcs() -> None:
    # 20:30 New York on Friday is already Saturday in UTC; the next open is still Monday's.
    clock = market.market_clock(ny(FRIDAY, 20, 30).astimezone(dt.UTC))
    assert (clock.is_open, clock.next_change) == (False, ny(MONDAY, 9, 30))
    assert clock.words == "market closed, opens Mon 2026-11-30 09:30 EST"
    # Before the open the next change is that same day's open, not the next trading day's.
    assert market.market_clock(ny(MONDAY, 0, 0).astimezone(dt.UTC)).next_change == ny(MONDAY, 9, 30)
    assert market.market_clock(ny(MONDAY, 10).astimezone(dt.UTC)).words == "market open, closes 16:00 EST"
