"""Markets' calendars as far as this site needs them.

A ``Calendar`` is an exchange (``XNYS``, ``XLON``, ``XTKS`` … any code the calendar library knows)
in its own time zone, or a market that never closes (``24/7``) or closes at weekends (``24/5``) in a
zone of the bot's choosing. Which trading day a moment belongs to (its date in the calendar's
zone), whether the market trades on a day, and its hours (early closes included). Sessions,
holidays and early closes come from ``trades.sessions`` (the library), never from a list kept here.

Every bot has its calendar (``calendar_for(bot)``); the site has one too (``site_calendar()``:
``MARKET_CALENDAR`` in ``MARKET_TIMEZONE``), which the module-level functions below answer for.
A bot on the site's calendar code uses the site's calendar, ``MARKET_TIMEZONE`` included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from trades import sessions

if TYPE_CHECKING:
    from trades.models import Bot

EXCHANGE = "XNYS"
ALL_WEEK = "24/7"
WEEKDAYS = "24/5"
AROUND_THE_CLOCK = (ALL_WEEK, WEEKDAYS)
# Exchanges' zones as the library gives them (tests/test_market.py checks each against it), so a
# web process answers for the usual codes without importing the library; others ask it once.
KNOWN_ZONES = {
    "XNYS": "America/New_York",
    "XLON": "Europe/London",
    "XTKS": "Asia/Tokyo",
    "XHKG": "Asia/Hong_Kong",
    "XASX": "Australia/Sydney",
    "XTSE": "America/Toronto",
    "XETR": "Europe/Berlin",
    "XFRA": "Europe/Berlin",
    "XPAR": "Europe/Paris",
    "XAMS": "Europe/Amsterdam",
    "XSWX": "Europe/Zurich",
    "XKRX": "Asia/Seoul",
    "XSHG": "Asia/Shanghai",
    "XBOM": "Asia/Kolkata",
}
# More than any closure on record (the NYSE's longest since 1933 was four weekdays).
_SEARCH_DAYS = 15


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def market_zone() -> ZoneInfo:
    """The site's own time zone (``MARKET_TIMEZONE``)."""
    return _zone(settings.MARKET_TIMEZONE)


# --- what an operator types -----------------------------------------------------------------


def validate_calendar_code(code: str) -> None:
    """Refuses a calendar code that is neither 24/7, 24/5 nor an exchange the library knows, naming
    some that it knows. The one check of a bot's calendar (the admin, ``create_bot``, the model)."""
    if code in AROUND_THE_CLOCK or code in KNOWN_ZONES or code in sessions.calendar_names():
        return
    examples = ", ".join((*AROUND_THE_CLOCK, *list(KNOWN_ZONES)[:6]))
    raise ValidationError(
        f"Unknown calendar {code!r}: use {examples} or another exchange code"
        f" ({len(sessions.calendar_names())} known, e.g. {', '.join(sessions.calendar_names()[:8])}).",
        code="calendar",
    )


def validate_timezone_name(name: str) -> None:
    """Refuses a time zone that is not an IANA name such as ``UTC`` or ``Europe/London``."""
    if name in _zone_names():
        try:
            _zone(name)
            return
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise ValidationError(
        f"Unknown time zone {name!r}: use an IANA name such as UTC, Europe/London or Asia/Tokyo.",
        code="timezone",
    )


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


def default_calendar_code() -> str:
    """A new bot's calendar: ``MARKET_CALENDAR`` (default XNYS)."""
    return str(getattr(settings, "MARKET_CALENDAR", EXCHANGE))


# --- the market clock -----------------------------------------------------------------------


@dataclass(frozen=True)
class MarketClock:
    """Whether the market is open at a moment, and when that next changes (its close while open,
    else its next open), in the market's time zone. A 24/7 market never changes: ``next_change``
    is then the end of the day."""

    is_open: bool
    next_change: dt.datetime
    always: bool = False

    @property
    def words(self) -> str:
        """In words: "market open, closes 16:00 EST", "market closed, opens Mon 2026-12-07 09:30 EST"."""
        if self.always:
            return "market open 24/7"
        if self.is_open:
            return f"market open, closes {self.next_change:%H:%M %Z}"
        return f"market closed, opens {self.next_change:%a %Y-%m-%d %H:%M %Z}"


# --- a calendar -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """A market's calendar: ``code`` (an exchange code, ``24/7`` or ``24/5``) in ``zone`` (the
    exchange's, or the bot's for 24/7 and 24/5). A trading day is a date in ``zone``."""

    code: str
    zone: ZoneInfo

    @property
    def around_the_clock(self) -> bool:
        return self.code in AROUND_THE_CLOCK

    def trading_day_of(self, moment: dt.datetime) -> dt.date:
        """The date, in the calendar's zone, on which ``moment`` falls.

        A fill at 21:30 in New York on a winter evening is 02:30 UTC the next day; it still
        belongs to the New York day it happened on. A Tokyo session (09:00 to 15:30 JST) starts
        at 00:00 UTC: its fills all belong to the Tokyo date."""
        return moment.astimezone(self.zone).date()

    def today(self, now: dt.datetime | None = None) -> dt.date:
        return self.trading_day_of(now or timezone.now())

    def start_of_day(self, day: dt.date) -> dt.datetime:
        """Midnight at the start of ``day`` in the calendar's zone."""
        return dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)

    def is_trading_day(self, day: dt.date) -> bool:
        """Whether the market trades on ``day``: every day (24/7), Monday to Friday (24/5), or
        when the exchange holds a session (no weekends, no holidays)."""
        if self.code == ALL_WEEK:
            return True
        if self.code == WEEKDAYS:
            return day.weekday() < 5
        return sessions.hours(self.code, day) is not None

    def market_hours(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The session's open and close in the calendar's zone, or None when closed. Around the
        clock, midnight to the next midnight; an early close (the NYSE's day after Thanksgiving)
        ends when the library says."""
        if self.around_the_clock:
            if not self.is_trading_day(day):
                return None
            return self.start_of_day(day), self.start_of_day(day + dt.timedelta(days=1))
        session = sessions.hours(self.code, day)
        if session is None:
            return None
        return session[0].astimezone(self.zone), session[1].astimezone(self.zone)

    def is_open(self, now: dt.datetime | None = None) -> bool:
        """Whether ``now`` (default: the current time) falls inside a session."""
        moment = now or timezone.now()
        if self.code == ALL_WEEK:
            return True
        hours = self.market_hours(self.trading_day_of(moment))
        return hours is not None and hours[0] <= moment < hours[1]

    def clock(self, now: dt.datetime | None = None) -> MarketClock:
        """The market at ``now``: open from the opening bell on, closed from the closing bell on,
        over weekends, holidays and early closes. Sessions that meet (24/5 from Monday to Friday)
        are one: the clock then says when the last of them closes."""
        moment = now or timezone.now()
        day = self.trading_day_of(moment)
        if self.code == ALL_WEEK:
            return MarketClock(True, self.start_of_day(day + dt.timedelta(days=1)), always=True)
        hours = self.market_hours(day)
        if hours is not None and moment < hours[1]:
            if moment < hours[0]:
                return MarketClock(False, hours[0])
            close = hours[1]
            for _ in range(_SEARCH_DAYS):
                day += dt.timedelta(days=1)
                following = self.market_hours(day)
                if following is None or following[0] != close:
                    break
                close = following[1]
            return MarketClock(True, close)
        following = self.market_hours(self.next_trading_day(day))
        assert following is not None  # next_trading_day finds a session within _SEARCH_DAYS
        return MarketClock(False, following[0])

    def next_open(self, now: dt.datetime | None = None) -> dt.datetime:
        """The next opening bell after ``now`` (a session open at ``now`` has already opened)."""
        moment = now or timezone.now()
        clock = self.clock(moment)
        if not clock.is_open:
            return clock.next_change
        following = self.market_hours(self.next_trading_day(self.trading_day_of(moment)))
        assert following is not None
        return following[0]

    def end_of_trading_day(self, now: dt.datetime | None = None) -> dt.datetime:
        """The calendar's next midnight: when the trading day of ``now`` ends (the daily rules and
        halts start afresh then), in the calendar's zone."""
        return self.start_of_day(self.today(now) + dt.timedelta(days=1))

    def next_trading_day(self, day: dt.date) -> dt.date:
        """The first trading day after ``day``."""
        following = day + dt.timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            if self.is_trading_day(following):
                return following
            following += dt.timedelta(days=1)
        return following

    def last_trading_days(self, count: int, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
        """The first and last of the ``count`` trading days ending on ``end`` (default today).

        When ``end`` is not a trading day, the period ends on the trading day before it."""
        day = end or self.today()
        for _ in range(_SEARCH_DAYS):
            if self.is_trading_day(day):
                break
            day -= dt.timedelta(days=1)
        last, seen = day, 1
        while seen < count:
            day -= dt.timedelta(days=1)
            if self.is_trading_day(day):
                seen += 1
        return day, last

    def period(self, start: dt.date | None = None, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
        """A performance period's bounds: given ones kept, a missing start 30 trading days before
        the end, a missing end today."""
        end = end or self.today()
        if start is None:
            start = min(self.last_trading_days(DEFAULT_PERIOD_TRADING_DAYS, end)[0], end)
        return start, end

    def is_last_trading_day_of_week(self, day: dt.date) -> bool:
        """Whether ``day`` is a trading day and no trading day follows it before Monday (Friday, or
        Thursday before a Good Friday; Sunday for 24/7)."""
        if not self.is_trading_day(day):
            return False
        following = day + dt.timedelta(days=1)
        while following.weekday() != 0:
            if self.is_trading_day(following):
                return False
            following += dt.timedelta(days=1)
        return True


DEFAULT_PERIOD_TRADING_DAYS = 30


@lru_cache(maxsize=256)
def _calendar(code: str, zone_name: str) -> Calendar:
    return Calendar(code, _zone(zone_name))


def exchange_zone(code: str) -> str:
    """The IANA zone of exchange ``code``: known ones from ``KNOWN_ZONES``, others from the library."""
    return KNOWN_ZONES.get(code) or sessions.zone(code)


def calendar_of(code: str, zone_name: str = "UTC") -> Calendar:
    """The calendar ``code``: an exchange in its own zone, or 24/7 and 24/5 in ``zone_name``. The
    site's calendar code is the site's calendar (in ``MARKET_TIMEZONE``)."""
    if code in AROUND_THE_CLOCK:
        return _calendar(code, zone_name or "UTC")
    if code == default_calendar_code():
        return site_calendar()
    return _calendar(code, exchange_zone(code))


def site_calendar() -> Calendar:
    """The site's own calendar: ``MARKET_CALENDAR`` (default XNYS) in ``MARKET_TIMEZONE``."""
    return _calendar(default_calendar_code(), settings.MARKET_TIMEZONE)


def calendar_for(bot: Bot) -> Calendar:
    """The calendar ``bot`` trades on (its ``calendar`` and, for 24/7 and 24/5, its ``timezone``)."""
    return calendar_of(bot.calendar, bot.timezone)


# --- the site's calendar, as module functions -------------------------------------------------


def trading_day_of(moment: dt.datetime, zone: ZoneInfo | None = None) -> dt.date:
    """The date, in ``zone`` (default: the site's calendar's), on which ``moment`` falls."""
    return moment.astimezone(zone or site_calendar().zone).date()


def today(now: dt.datetime | None = None) -> dt.date:
    """Today's date in the site's time zone (``now`` defaults to the current time)."""
    return site_calendar().today(now)


def is_trading_day(day: dt.date) -> bool:
    return site_calendar().is_trading_day(day)


def market_hours(day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    return site_calendar().market_hours(day)


def is_market_open(now: dt.datetime | None = None) -> bool:
    return site_calendar().is_open(now)


def market_clock(now: dt.datetime | None = None) -> MarketClock:
    return site_calendar().clock(now)


def next_open(now: dt.datetime | None = None) -> dt.datetime:
    return site_calendar().next_open(now)


def end_of_trading_day(now: dt.datetime | None = None) -> dt.datetime:
    return site_calendar().end_of_trading_day(now)


def last_trading_days(count: int, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
    return site_calendar().last_trading_days(count, end)


def next_trading_day(day: dt.date) -> dt.date:
    return site_calendar().next_trading_day(day)


def is_last_trading_day_of_week(day: dt.date) -> bool:
    return site_calendar().is_last_trading_day_of_week(day)


def period(start: dt.date | None = None, end: dt.date | None = None) -> tuple[dt.date, dt.date]:
    return site_calendar().period(start, end)
