"""Plain-text tables for the management commands."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandError


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; ``right`` lists columns aligned right (numbers)."""
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def format_number(value: Decimal | float | None) -> str:
    """A decimal without trailing zeros; ``-`` for a missing value."""
    if value is None:
        return "-"
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_price(value: Decimal | float) -> str:
    """Two decimals, and more only when the price has them (a penny stock at 0.0042 keeps its digits)."""
    text = format_number(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def parse_day(value: str, option: str = "date") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--{option} must be YYYY-MM-DD, got {value!r}") from None


def format_market_time(moment: dt.datetime | None) -> str:
    """A moment in the market's time zone, to the second, with the zone's name (2026-01-15 10:31:05 EST)."""
    if moment is None:
        return "-"
    from trades.market import market_zone

    return moment.astimezone(market_zone()).strftime("%Y-%m-%d %H:%M:%S %Z")
