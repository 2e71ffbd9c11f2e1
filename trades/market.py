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
