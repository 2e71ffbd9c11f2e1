"""The market's calendar as far as this site needs it.

Which trading day a moment belongs to (the date in ``MARKET_TIMEZONE``), whether
the exchange trades on a day, and its hours (early closes included). Sessions,
holidays and early closes come from ``exchange_calendars`` (the NYSE calendar,
XNYS), a maintained package, rather than a holiday list kept here by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from trades import sessions

EXCHANGE = "XNYS"


@lru_cache(maxsize=4)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def market_zone() -> ZoneInfo:
    return _zone(settings.MARKET_TIMEZONE)


def trading_day_of(moment: dt.datetime, zone: ZoneInfo | None = None) -> dt.date:
    """The date, in the market's time zone, on which ``moment`` falls.

    A fill at 21:30 in New York on a winter evening is 02:30 UTC the next day;
    it still belongs to the New York day it happened on. A caller converting
    a whole batch passes ``market_zone()`` once as ``zone``.
    """
    return moment.astimezone(zone or market_zone()).date()


def today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in the market's time zone (``now`` defaults to the current time)."""
    return trading_day_of(now or timezone.now())


def is_trading_day(day: dt.date) -> bool:
    """Whether the exchange holds a session on ``day`` (no weekends, no exchange holidays)."""
    if day.weekday() >= 5:
        return False
    return sessions.hours(EXCHANGE, day) is not None


def market_hours(day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """The session's open and close in the market's time zone, or None when closed.

    An early close (the day after Thanksgiving, Christmas Eve) ends at 13:00 New York time.
    """
    if day.weekday() >= 5:
        return None
    session = sessions.hours(EXCHANGE, day)
    if session is None:
        return None
    zone = market_zone()
    return session[0].astimezone(zone), session[1].astimezone(zone)


def is_market_open(now: dt.datetime | None = None) -> bool:
    """Whether ``now`` (default: the current time) falls inside a trading session."""
    moment = now or timezone.now()
    hours = market_hours(trading_day_of(moment))
    return hours is not None and hours[0] <= moment < hours[1]


@dataclass(frozen=True)
class MarketClock:
    """Whether the market is open at a moment, and when that next changes (its close while open,
    else its next open), in the market's time zone."""

    is_open: bool
    next_change: dt.datetime

    @property
    def words(self) -> str:
        """In words: "market open, closes 16:00 EST", "market closed, opens Mon 2026-12-07 09:30 EST"."""
        if self.is_open:
            return f"market open, closes {self.next_change:%H:%M %Z}"
        return f"market closed, opens {self.next_change:%a %Y-%m-%d %H:%M %Z}"


def market_clock(now: dt.datetime | None = None) -> MarketClock:
    """The market at ``now`` (default: the current time): open from the opening bell on, closed from
    the closing bell on (as ``is_market_open``), over weekends, holidays and early closes."""
    moment = now or timezone.now()
    day = trading_day_of(moment)
    hours = market_hours(day)
    if hours is not None and moment < hours[1]:
        return MarketClock(True, hours[1]) if hours[0] <= moment else MarketClock(False, hours[0])
    following = market_hours(next_trading_day(day))
    assert following is not None  # next_trading_day finds a session within 15 days
    return MarketClock(False, following[0])


def next_open(now: dt.datetime | None = None) -> dt.datetime:
    """The next opening bell after ``now`` (a session open at ``now`` has already opened)."""
    moment = now or timezone.now()
    clock = market_clock(moment)
    if not clock.is_open:
        return clock.next_change
    following = market_hours(next_trading_day(trading_day_of(moment)))
    assert following is not None
    return following[0]


def end_of_trading_day(now: dt.datetime | None = None) -> dt.datetime:
    """The market's next midnight: when the trading day of ``now`` ends (the daily rules and halts
    start afresh then), in the market's time zone."""
    day = trading_day_of(now or timezone.now()) + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=market_zone())


def last_trading_days(count: int, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The first and last of the ``count`` trading days ending on ``end`` (default today).

    When ``end`` is not a trading day, the period ends on the trading day before it.
    """
    day = end or today()
    while not is_trading_day(day):
        day -= dt.timedelta(days=1)
    last, seen = day, 1
    while seen < count:
        day -= dt.timedelta(days=1)
        if is_trading_day(day):
            seen += 1
    return day, last


def next_trading_day(day: dt.date) -> dt.date:
    """The first trading day after ``day``."""
    following = day + dt.timedelta(days=1)
    for _ in range(15):  # the longest NYSE closure on record is far shorter
        if is_trading_day(following):
            return following
        following += dt.timedelta(days=1)
    return following


def is_last_trading_day_of_week(day: dt.date) -> bool:
    """Whether ``day`` is a trading day and no trading day follows it in the same week (Friday, or
    Thursday before a Good Friday)."""
    if not is_trading_day(day):
        return False
    following = day + dt.timedelta(days=1)
    while following.weekday() < 5:
        if is_trading_day(following):
            return False
        following += dt.timedelta(days=1)
    return True


DEFAULT_PERIOD_TRADING_DAYS = 30


def period(start: dt.date | None = None, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """A performance period's bounds: given ones kept, a missing start 30 trading days before the end."""
    end = end or today()
    if start is None:
        start = last_trading_days(DEFAULT_PERIOD_TRADING_DAYS, end)[0]
        start = min(start, end)
    return start, end
