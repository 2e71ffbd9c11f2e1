"""How a person reads a number, wherever it is shown: the admin, the cockpit, the commands, the
alert messages and the reports. One module, so every place agrees; the API answers numbers, not
these texts (see ``docs/api.md``, *Numbers in answers*).

- Money: two decimals and thousands separators, a tie rounded away from zero: ``-1,234.50``.
  A value that rounds to nothing is ``0.00``, never ``-0.00``.
- A quantity (or a count, a limit): what was stored, without trailing zeros: ``65``, ``0.5``,
  ``0.00000001``, ``1,500``.
- A price: two decimals, more only where the price has them: ``123.47``, ``0.0042``.
- A percentage: one decimal: ``56.3%``.
- A ratio (the profit factor): two decimals: ``1.30``.
- A duration: milliseconds below 0.01 s, seconds with two decimals below a second, one below a
  minute, then whole units, two of them at most: ``4.2 ms``, ``0.07 s``, ``59.9 s``, ``2 min 5 s``,
  ``1 h 3 min``, ``2 d 4 h``.
- A size: bytes below 1 KB, then one decimal of the 1024-fold unit: ``1023 B``, ``1.0 KB``,
  ``12.3 MB``.

Each rounds first and chooses its unit after, so 59.95 s is ``1 min``, not ``60.0 s``, and
1,048,575 bytes ``1.0 MB``, not ``1024.0 KB``. A moment is shown in the market's time zone, to
the second, with the zone's name. A missing value is ``-``.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from trades.market import market_zone

MISSING = "-"

CENT_PLACES = 2
CENT = Decimal(10) ** -CENT_PLACES
TENTH = Decimal("0.1")
ONE = Decimal(1)


def _decimal(value: Decimal | float | int) -> Decimal:
    # A float through its shortest text: 999.995 is 999.995 here, not 999.99499999999...
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _round(value: Decimal, step: Decimal) -> Decimal:
    """``value`` to a multiple of ``step``, a tie away from zero, and never a negative zero."""
    rounded = value.quantize(step, rounding=ROUND_HALF_UP)
    return abs(rounded) if rounded == 0 else rounded


def to_cent(value: Decimal) -> Decimal:
    """Money to the cent, as it is shown: a tie away from zero (-0.005 is -0.01), no negative zero.
    The API's averages and expectancy are rounded by this too."""
    return _round(value, CENT)


def format_money(value: Decimal | float | int | None) -> str:
    """Money: ``-1,234.50``; ``-`` when absent."""
    if value is None:
        return MISSING
    return f"{to_cent(_decimal(value)):,.2f}"


def format_quantity(value: Decimal | float | int | None) -> str:
    """A quantity, count or limit as stored, without trailing zeros: ``65``, ``0.5``, ``1,500``."""
    if value is None:
        return MISSING
    number = _decimal(value)
    if number == 0:
        return "0"
    # "f" writes every digit (1E-8 as 0.00000001); normalize() drops the trailing zeros.
    return f"{number.normalize():,f}"


def format_price(value: Decimal | float | int | None) -> str:
    """A price: two decimals, more only where it has them (a penny stock at ``0.0042`` keeps its digits)."""
    if value is None:
        return MISSING
    text = format_quantity(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def format_rate(value: Decimal | float | None) -> str:
    """A percentage with one decimal: ``56.3%``; ``-`` when absent (a win rate with nothing closed)."""
    if value is None:
        return MISSING
    return f"{_round(_decimal(value), TENTH):,.1f}%"


def format_factor(value: Decimal | float | None) -> str:
    """A ratio such as the profit factor, with two decimals: ``1.30``."""
    if value is None:
        return MISSING
    return f"{_round(_decimal(value), CENT):,.2f}"


MINUTE, HOUR, DAY = 60, 3600, 86400


def format_duration(value: dt.timedelta | Decimal | float | int | None) -> str:
    """A duration in seconds (or a timedelta): ``4.2 ms``, ``0.07 s``, ``2 min 5 s``, ``1 h 3 min``."""
    if value is None:
        return MISSING
    seconds = _decimal(value.total_seconds() if isinstance(value, dt.timedelta) else value)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds == 0:
        return "0 s"
    if (rounded := _round(seconds, CENT)) < CENT:
        return f"{sign}{_round(seconds * 1000, TENTH):.1f} ms"
    if rounded < 1:
        return f"{sign}{rounded:.2f} s"
    if (rounded := _round(seconds, TENTH)) < MINUTE:
        return f"{sign}{rounded:.1f} s"
    # Whole units from here: the larger one, and the next when it is not zero.
    for unit, name, smaller, small_name, limit in (
        (MINUTE, "min", 1, "s", HOUR),
        (HOUR, "h", MINUTE, "min", DAY),
        (DAY, "d", HOUR, "h", None),
    ):
        counted = int(_round(seconds / smaller, ONE))  # in the smaller unit
        if limit is None or counted * smaller < limit:
            large, small = divmod(counted, unit // smaller)
            return f"{sign}{large:,} {name}" + (f" {small} {small_name}" if small else "")
    raise AssertionError("unreachable")


SIZE_UNITS = ("KB", "MB", "GB", "TB")


def format_size(value: int | float | None) -> str:
    """A size in bytes: ``1023 B``, ``1.0 KB``, ``12.3 MB`` (units of 1024)."""
    if value is None:
        return MISSING
    size = _decimal(value)
    if size < 1024:
        return f"{size:.0f} B"
    for power, unit in enumerate(SIZE_UNITS, start=1):
        shown = _round(size / 1024**power, TENTH)
        if shown < 1024 or unit == SIZE_UNITS[-1]:
            return f"{shown:,.1f} {unit}"
    raise AssertionError("unreachable")


def format_market_time(moment: dt.datetime | None) -> str:
    """A moment in the market's time zone, to the second, with the zone's name (2026-01-15 10:31:05 EST)."""
    if moment is None:
        return MISSING
    return moment.astimezone(market_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")
