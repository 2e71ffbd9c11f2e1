"""How numbers read wherever a person reads them (``trades.formats``), at each format's boundaries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from trades.formats import (
    format_duration,
    format_factor,
    format_market_time,
    format_money,
    format_price,
    format_quantity,
    format_rate,
    format_size,
    to_cent,
)

D = Decimal


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (0, "0.00"),
        (D("0E-8"), "0.00"),
        # A tie rounds away from zero, and what rounds to nothing has no sign.
        (D("-0.005"), "-0.01"),
        (D("0.005"), "0.01"),
        (D("-0.00499999"), "0.00"),
        (D("0.004"), "0.00"),
        (D("999.995"), "1,000.00"),
        (D("999.99499999"), "999.99"),
        (999.995, "1,000.00"),  # a float read as its shortest text, not 999.99499999999989...
        (D("-1234.5"), "-1,234.50"),
        (D("-92.1"), "-92.10"),
        (D("1234567.891"), "1,234,567.89"),
        (-30, "-30.00"),
    ],
)
def test_money_has_two_decimals_and_thousands_separators(value: object, shown: str) -> None:
    assert format_money(value) == shown  # type: ignore[arg-type]


def test_money_to_the_cent_is_the_one_rounding_of_shown_and_answered_money() -> None:
    assert to_cent(D("33.47333333")) == D("33.47")
    assert to_cent(D("-0.005")) == D("-0.01") and str(to_cent(D("-0.001"))) == "0.00"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        (D("65.00000000"), "65"),
        (D("0.50000000"), "0.5"),
        (D("0.00000001"), "0.00000001"),  # not 1E-8
        (1e-8, "0.00000001"),
        (D("0E-8"), "0"),
        (D("1500"), "1,500"),  # not 1.5E+3
        (D("12345.6789"), "12,345.6789"),
        (D("-30.50"), "-30.5"),
        (7, "7"),
    ],
)
def test_quantities_have_no_trailing_zeros(value: object, shown: str) -> None:
    assert format_quantity(value) == shown  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (D("123.47000000"), "123.47"),
        (D("123.4"), "123.40"),
        (D("100"), "100.00"),
        (D("0.0042"), "0.0042"),  # a penny stock keeps its digits
        (D("1234.5"), "1,234.50"),
        (None, "-"),
    ],
)
def test_prices_have_two_decimals_or_more_where_they_have_them(value: object, shown: str) -> None:
    assert format_price(value) == shown  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "-"), (0, "0.0%"), (56.25, "56.3%"), (56.24, "56.2%"), (99.95, "100.0%"), (100.0, "100.0%")],
)
def test_percentages_have_one_decimal(value: object, shown: str) -> None:
    assert format_rate(value) == shown  # type: ignore[arg-type]


def test_ratios_have_two_decimals() -> None:
    assert (format_factor(1.3043), format_factor(0.755), format_factor(None)) == ("1.30", "0.76", "-")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0, "0 s"),
        (0.0042, "4.2 ms"),
        (0.00499, "5.0 ms"),
        (0.005, "0.01 s"),  # rounds to a hundredth of a second: seconds from here
        (0.07045428899982653, "0.07 s"),  # the backup duration
        (0.994, "0.99 s"),
        (0.995, "1.0 s"),
        (2.5, "2.5 s"),
        (59.94, "59.9 s"),
        (59.95, "1 min"),  # would be "60.0 s": rounded first, the unit chosen after
        (60, "1 min"),
        (125, "2 min 5 s"),
        (3599.4, "59 min 59 s"),
        (3599.5, "1 h"),
        (3600, "1 h"),
        (3780, "1 h 3 min"),
        (86369, "23 h 59 min"),
        (86370, "1 d"),
        (200000, "2 d 8 h"),
        (-5, "-5.0 s"),
        (dt.timedelta(minutes=12, seconds=30), "12 min 30 s"),
        (D(10) * 60, "10 min"),
    ],
)
def test_durations_read_in_human_units(seconds: object, shown: str) -> None:
    assert format_duration(seconds) == shown  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "-"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (1075, "1.0 KB"),
        (1076, "1.1 KB"),
        (1024 * 1024 - 1, "1.0 MB"),  # not "1024.0 KB"
        (int(12.3 * 1024 * 1024), "12.3 MB"),
        (3 * 1024**3, "3.0 GB"),
        (2 * 1024**5, "2,048.0 TB"),
    ],
)
def test_sizes_read_in_human_units(size: object, shown: str) -> None:
    assert format_size(size) == shown  # type: ignore[arg-type]


def test_a_moment_reads_in_the_markets_zone() -> None:
    moment = dt.datetime(2026, 1, 15, 15, 31, 5, tzinfo=dt.UTC)
    assert format_market_time(moment) == "2026-01-15 10:31:05 EST"
    assert format_market_time(None) == "-"
