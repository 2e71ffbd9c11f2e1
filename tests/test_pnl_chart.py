"""The P&L chart (``monitorsite.chart``) at known data: the dates and money on its axes, the sign
of each bar about the zero line, a tooltip on every bar and point, and the edge periods (one day,
all break-even, no trade, across a new year)."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import xml.etree.ElementTree as ET
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from monitorsite.chart import DATE_LABELS, pnl_chart
from tests.conftest import stored_trade
from trades.models import Bot, Trade
from trades.summary import DayPnl, Performance, PeriodSummary

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
SVG = "{http://www.w3.org/2000/svg}"


def record(bot: Bot, *fills: tuple[dt.date, str]) -> None:
    """One closed trade per (day, P&L), at 10:00 New York time."""
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(
                n, pnl=Decimal(pnl), executed_at=dt.datetime(d.year, d.month, d.day, 10, n, tzinfo=NY)
            )
            for n, (d, pnl) in enumerate(fills)
        ],
    )


def chart_of(bot: Bot, start: dt.date, end: dt.date) -> ET.Element:
    return ET.fromstring(str(pnl_chart(Trade.objects.for_bot(bot).period_summary(start, end))))


def texts(svg: ET.Element, css_class: str) -> list[str]:
    return [e.text or "" for e in svg.iter(f"{SVG}text") if e.get("class") == css_class]


def bars(svg: ET.Element) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}rect") if "bar" in (e.get("class") or "").split()]


def tooltip(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None
    return title.text or ""


def zero_line_y(svg: ET.Element) -> float:
    (label,) = [e for e in svg.iter(f"{SVG}text") if e.get("class") == "y-label" and e.text == "0.00"]
    return float(label.get("y", "nan"))


def test_known_days_have_their_dates_and_money_on_the_axes_and_bars_signed_about_zero(bot: Bot) -> None:
    # By hand: Mon 5th +100 (cumulative 100), Tue 6th -200 - 50.50 = -250.50 (-150.50),
    # Wed 7th +1,200 (1,049.50). Lowest value -250.50 (a day), highest 1,200 (a day).
    jan = dt.date(2026, 1, 5)
    record(
        bot,
        (jan, "100"),
        (jan + dt.timedelta(days=1), "-200"),
        (jan + dt.timedelta(days=1), "-50.50"),
        (jan + dt.timedelta(days=2), "1200"),
    )
    svg = chart_of(bot, jan, dt.date(2026, 1, 9))

    assert svg.get("role") == "img"
    assert svg.get("aria-label") == (
        "Realized P&L per day (bars) and cumulative (line), 2026-01-05 to 2026-01-09: 3 days with closed"
        " trades; best day 2026-01-07 1,200.00, worst day 2026-01-06 -250.50; cumulative 1,049.50 at the end."
    )
    assert texts(svg, "x-label") == ["Jan 5", "Jan 6", "Jan 7"]
    assert texts(svg, "y-label") == ["-250.50", "0.00", "1,200.00"]

    shown = bars(svg)
    assert [b.get("class") for b in shown] == ["bar bar-pos", "bar bar-neg", "bar bar-pos"]
    assert [tooltip(b) for b in shown] == [
        "Mon 2026-01-05: 100.00 that day",
        "Tue 2026-01-06: -250.50 that day",
        "Wed 2026-01-07: 1,200.00 that day",
    ]
    zero = zero_line_y(svg)
    gain, loss, big_gain = ((float(b.get("y", "nan")), float(b.get("height", "nan"))) for b in shown)
    # A gain stands on the zero line, a loss hangs from it (0.1 of rounding).
    assert gain[0] + gain[1] == pytest.approx(zero, abs=0.1) and gain[0] < zero
    assert loss[0] == pytest.approx(zero, abs=0.1) and loss[1] > 0
    # Heights in proportion to the money: 1,200 is 12 times 100 and 4.79 times 250.50.
    assert big_gain[1] / gain[1] == pytest.approx(12, rel=0.02)
    assert big_gain[1] / loss[1] == pytest.approx(1200 / 250.5, rel=0.02)

    points = [e for e in svg.iter(f"{SVG}circle") if e.get("class") == "point"]
    assert [tooltip(p) for p in points] == [
        "Mon 2026-01-05: 100.00 cumulative",
        "Tue 2026-01-06: -150.50 cumulative",
        "Wed 2026-01-07: 1,049.50 cumulative",
    ]
    # The cumulative -150.50 lies below zero, 1,049.50 above.
    assert float(points[1].get("cy", "nan")) > zero > float(points[2].get("cy", "nan"))
    (line,) = [e for e in svg.iter(f"{SVG}polyline") if e.get("class") == "cumulative"]
    assert len((line.get("points") or "").split()) == 3


def test_a_one_day_period_has_one_bar_one_date_and_its_point(bot: Bot) -> None:
    day = dt.date(2026, 1, 8)
    record(bot, (day, "-40"))
    svg = chart_of(bot, day, day)
    assert texts(svg, "x-label") == ["Jan 8"]
    assert texts(svg, "y-label") == ["-40.00", "0.00"]  # the highest value is zero
    assert [b.get("class") for b in bars(svg)] == ["bar bar-neg"]
    assert [tooltip(p) for p in svg.iter(f"{SVG}circle")] == ["Thu 2026-01-08: -40.00 cumulative"]


def test_an_all_break_even_period_draws_zero_alone_without_dividing_by_nothing(bot: Bot) -> None:
    record(bot, (dt.date(2026, 1, 5), "0"), (dt.date(2026, 1, 6), "0"))
    svg = chart_of(bot, dt.date(2026, 1, 5), dt.date(2026, 1, 6))
    assert texts(svg, "y-label") == ["0.00"]
    assert [b.get("class") for b in bars(svg)] == ["bar bar-zero"] * 2
    for element in svg.iter():
        for name in ("x", "y", "width", "height", "cx", "cy", "y1", "y2"):
            if element.get(name) is not None:
                assert math.isfinite(float(element.get(name, ""))), ET.tostring(element)


def test_no_closed_trade_says_so_instead_of_an_empty_chart(bot: Bot) -> None:
    record(bot, (dt.date(2026, 1, 5), "10"))
    html = str(
        pnl_chart(Trade.objects.for_bot(bot).period_summary(dt.date(2026, 1, 12), dt.date(2026, 1, 16)))
    )
    assert html == '<p class="cockpit-empty">No closed trades from 2026-01-12 to 2026-01-16.</p>'


def period_of(days: list[dt.date]) -> PeriodSummary:
    series = tuple(DayPnl(d, Decimal(1), Decimal(i + 1)) for i, d in enumerate(days))
    return PeriodSummary(days[0], days[-1], Performance.from_days([], None), series, {}, {})


@pytest.mark.parametrize("count", [DATE_LABELS, DATE_LABELS + 1, 30])
def test_the_first_and_last_day_are_named_and_at_most_four_in_all(count: int) -> None:
    days = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(count)]
    labels = texts(ET.fromstring(str(pnl_chart(period_of(days)))), "x-label")
    assert labels[0] == "Mar 2" and labels[-1] == f"{days[-1]:%b} {days[-1].day}"
    assert len(labels) == DATE_LABELS  # four days: each named; more: four of them
    assert len(set(labels)) == len(labels)


def test_a_period_across_new_year_names_whole_dates_and_fewer_of_them_where_four_would_touch() -> None:
    days = [dt.date(2025, 12, 29), dt.date(2025, 12, 30), dt.date(2025, 12, 31), dt.date(2026, 1, 2)]
    assert texts(ET.fromstring(str(pnl_chart(period_of(days)))), "x-label") == [
        "2025-12-29",
        "2025-12-30",
        "2025-12-31",
        "2026-01-02",
    ]
    days.append(dt.date(2026, 1, 5))  # five days: four whole dates side by side would touch
    assert texts(ET.fromstring(str(pnl_chart(period_of(days)))), "x-label") == [
        "2025-12-29",
        "2025-12-31",
        "2026-01-05",
    ]


@pytest.mark.parametrize("first", [dt.date(2026, 3, 2), dt.date(2025, 12, 1)], ids=["one-year", "two-years"])
def test_date_labels_never_touch_at_any_number_of_days(first: dt.date) -> None:
    for count in range(1, 61):
        days = [first + dt.timedelta(days=i) for i in range(count)]
        svg = ET.fromstring(str(pnl_chart(period_of(days))))
        shown = [
            (float(e.get("x", "nan")), len(e.text or ""))
            for e in svg.iter(f"{SVG}text")
            if e.get("class") == "x-label"
        ]
        assert shown, count
        for (x1, n1), (x2, n2) in itertools.pairwise(shown):
            assert x2 - x1 >= 6.2 * (n1 + n2) / 2, (count, shown)


def test_every_label_stays_inside_the_chart_with_large_money() -> None:
    days = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(30)]
    series = tuple(
        DayPnl(d, Decimal("-1234567.89"), Decimal("-1234567.89") * (i + 1)) for i, d in enumerate(days)
    )
    svg = ET.fromstring(
        str(pnl_chart(PeriodSummary(days[0], days[-1], Performance.from_days([], None), series, {}, {})))
    )
    width = float((svg.get("viewBox") or "").split()[2])
    for label in svg.iter(f"{SVG}text"):
        half = 6.2 * len(label.text or "") / 2
        x = float(label.get("x", "nan"))
        left, right = (x - 2 * half, x) if label.get("text-anchor") == "end" else (x - half, x + half)
        assert 0 <= left and right <= width, (label.text, left, right)


@pytest.mark.parametrize(
    "pnls",
    [["-5", "1205"], ["5", "-1205"], ["-3", "7"]],
    ids=["lowest-just-below-zero", "highest-just-above-zero", "both-close"],
)
def test_labels_of_values_close_to_zero_stay_clear_of_the_zero_label_and_inside(pnls: list[str]) -> None:
    days = [dt.date(2026, 3, 2) + dt.timedelta(days=i) for i in range(len(pnls))]
    cumulative = [sum(Decimal(p) for p in pnls[: i + 1]) for i in range(len(pnls))]
    series = tuple(DayPnl(d, Decimal(p), c) for d, p, c in zip(days, pnls, cumulative, strict=True))
    svg = ET.fromstring(
        str(pnl_chart(PeriodSummary(days[0], days[-1], Performance.from_days([], None), series, {}, {})))
    )
    ys = sorted(float(e.get("y", "nan")) for e in svg.iter(f"{SVG}text") if e.get("class") == "y-label")
    assert len(ys) == 3
    assert all(b - a >= 10 for a, b in itertools.pairwise(ys)), ys  # a 10-unit font: lines apart
    assert all(5 <= y <= 195 for y in ys), ys  # half the font inside the 200-unit chart
