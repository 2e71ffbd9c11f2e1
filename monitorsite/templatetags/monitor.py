"""How the admin pages show money, rates, durations and times: ``trades.formats``, as filters."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import template
from django.utils.safestring import SafeString

from monitorsite import cockpit
from trades.formats import format_duration, format_market_time, format_money, format_rate

register = template.Library()


@register.filter
def money(value: Decimal | None) -> str:
    return format_money(value)


@register.filter
def pnl(value: Decimal | None) -> SafeString:
    return cockpit.signed_money(value)


@register.filter
def rate(value: float | None) -> str:
    return format_rate(value)


@register.filter
def duration(value: dt.timedelta | float | None) -> str:
    return format_duration(value)


@register.filter
def market_time(value: dt.datetime | None) -> str:
    return format_market_time(value)
