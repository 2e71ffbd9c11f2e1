"""The market's calendar as far as this site needs it: which day a moment belongs to."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone


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


def today() -> dt.date:
    """Today's date in the market's time zone."""
    return trading_day_of(timezone.now())


# --- trading calendar (stand-in until main's version lands; same names and meaning) ---


@lru_cache(maxsize=1)
def _calendar() -> object:
    import exchange_calendars

    return exchange_calendars.get_calendar("XNYS")


def is_trading_day(day: dt.date) -> bool:
    """True on NYSE sessions: not a weekend, not an exchange holiday."""
    calendar = _calendar()
    try:
        return bool(calendar.is_session(day.isoformat()))  # type: ignore[attr-defined]
    except Exception:  # outside the calendar's range: weekdays count
        return day.weekday() < 5


def market_hours(day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """The session's open and close as aware datetimes (early closes included), None when closed."""
    if not is_trading_day(day):
        return None
    try:
        opens, closes = _calendar().session_open_close(day.isoformat())  # type: ignore[attr-defined]
    except Exception:
        return None
    return opens.to_pydatetime(), closes.to_pydatetime()
