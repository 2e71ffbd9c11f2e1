"""Exchange sessions (open and close, holidays and early closes included) by calendar code.

The one place that asks the calendar library (``exchange_calendars``, with pandas under it):
``trades.market`` reads sessions only through ``hours``, ``calendar_names`` and ``zone``, so how they are
obtained (the library in this process, or tables computed once and stored) is decided here alone.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=16)
def _calendar(code: str, year: int) -> Any:
    # One calendar per code and year, with a month's margin (its first and last day must be
    # sessions): exchange_calendars builds its sessions eagerly, and its default range (a year
    # either side of today) misses old replays and holidays more than a year ahead. Imported here:
    # pandas costs ~0.5 s to import, paid only when a calendar question is first asked.
    import exchange_calendars

    return exchange_calendars.get_calendar(code, start=f"{year - 1}-12-01", end=f"{year + 1}-01-31")


def hours(code: str, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """The session of exchange ``code`` (``XNYS``, ``XLON`` …) on ``day``: its open and close as
    aware UTC datetimes, or None when the exchange holds no session that day."""
    calendar = _calendar(code, day.year)
    if not calendar.is_session(day.isoformat()):
        return None
    opens, closes = calendar.session_open_close(day.isoformat())
    return opens.to_pydatetime().astimezone(dt.UTC), closes.to_pydatetime().astimezone(dt.UTC)


@lru_cache(maxsize=1)
def calendar_names() -> tuple[str, ...]:
    """Every exchange code the library knows, sorted."""
    import exchange_calendars

    return tuple(sorted(exchange_calendars.get_calendar_names(include_aliases=True)))


@lru_cache(maxsize=64)
def zone(code: str) -> str:
    """The IANA time zone of exchange ``code`` (``XLON`` → ``Europe/London``), aliases resolved.
    Raises KeyError for a code the library does not know."""
    from exchange_calendars import calendar_utils

    if code not in calendar_names():
        raise KeyError(code)
    dispatcher = calendar_utils.global_calendar_dispatcher
    factory = dispatcher._calendar_factories[dispatcher.resolve_alias(code)]
    return str(factory.tz)
