"""Strategies side by side: each strategy's daily series in the period summary (from the same
GROUP BY rows), the API's ``by_strategy_days``, the strategies chart (``monitorsite.chart``: a
line and a legend entry per strategy, distinct colours, the cap on lines), and the cockpit card's
and the report page's table and chart, whose figures are the API's."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from rest_framework.test import APIClient

from monitorsite import cockpit
from monitorsite.chart import SHOWN_STRATEGIES, STRATEGY_COLOURS, strategies_chart
from tests import test_period_summary
from tests.conftest import stored_trade
from tests.test_period_summary import NY, day
from tests.test_report import ReportPage, money, staff
from trades.formats import format_factor, format_rate
from trades.models import Bot, Trade
from trades.summary import DayPnl, Performance, PeriodSummary

pytestmark = pytest.mark.django_db
fills = test_period_summary.fills  # momentum and meanrev over 5 to 13 January 2026
SVG = "{http://www.w3.org/2000/svg}"
__all__ = ["staff"]  # the report page's logged-in staff client, a fixture here too


# --- the period summary's series per strategy ---------------------------------------------------


def test_each_strategys_days_are_its_own_trades_days_with_its_own_cumulative(bot: Bot, fills: None) -> None:
    summary = Trade.objects.for_bot(bot).period_summary(day(5), day(13))
    assert list(summary.strategy_days) == ["meanrev", "momentum"]
    for name, days in summary.strategy_days.items():
        alone = Trade.objects.for_bot(bot).filter(strategy=name).period_summary(day(5), day(13))
        assert days == alone.days
    # momentum: +70 (5th), +50 (6th), -20 (7th; its opening fill counts no P&L), +60 (9th), -60 (12th)
    assert [(d.date.day, d.pnl, d.cumulative) for d in summary.strategy_days["momentum"]] == [
        (5, 70, 70),
        (6, 50, 120),
        (7, -20, 100),
        (9, 60, 160),
        (12, -60, 100),
    ]
    # meanrev's break-even trade of the 13th closes a day at +0.
    assert summary.strategy_days["meanrev"][-1] == DayPnl(day(13), Decimal(0), Decimal(-30))


def test_the_strategy_breakdown_alone_has_the_full_breakdowns_strategies(bot: Bot, fills: None) -> None:
    full = Trade.objects.for_bot(bot).period_summary(day(5), day(13))
    strategies = Trade.objects.for_bot(bot).period_summary(day(5), day(13), breakdown="strategy")
    assert (strategies.overall, strategies.days) == (full.overall, full.days)
    assert strategies.by_strategy == full.by_strategy and strategies.strategy_days == full.strategy_days
    assert strategies.by_symbol == {}
    none = Trade.objects.for_bot(bot).period_summary(day(5), day(13), breakdown=False)
    assert none.strategy_days == {} and none.by_strategy == {}


def test_the_series_per_strategy_costs_no_query_more(
    bot: Bot, fills: None, django_assert_num_queries: Any
) -> None:
    # The counting GROUP BY, the ordered read for the drawdowns, the few trades marking them.
    for breakdown in (True, "strategy", False):
        with django_assert_num_queries(3):
            Trade.objects.for_bot(bot).period_summary(day(5), day(13), breakdown=breakdown)


def test_a_strategy_with_opening_fills_alone_has_no_days(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(1, strategy="opening", pnl=None, executed_at=dt.datetime(2026, 1, 5, 10, tzinfo=NY)),
            stored_trade(2, strategy="", pnl=Decimal(5), executed_at=dt.datetime(2026, 1, 5, 11, tzinfo=NY)),
        ],
    )
    summary = Trade.objects.for_bot(bot).period_summary(day(5), day(5))
    assert summary.strategy_days == {"": (DayPnl(day(5), Decimal(5), Decimal(5)),), "opening": ()}


# --- the API ---------------------------------------------------------------------------------------


def test_the_api_answers_each_strategys_days(api: APIClient, bot: Bot, fills: None) -> None:
    body = json.loads(api.get("/api/v1/summary/period/?start=2026-01-05&end=2026-01-13").content)
    assert set(body["by_strategy_days"]) == set(body["by_strategy"]) == {"meanrev", "momentum"}
    assert body["by_strategy_days"]["meanrev"] == [
        {"date": "2026-01-07", "pnl": -80, "cumulative": -80},
        {"date": "2026-01-08", "pnl": -40, "cumulative": -120},
        {"date": "2026-01-09", "pnl": 90, "cumulative": -30},
        {"date": "2026-01-13", "pnl": 0, "cumulative": -30},
    ]
    # Every field it answered before is still there, unchanged in name.
    assert {"days", "by_strategy", "by_symbol", "closes", "total_pnl", "max_drawdown"} <= set(body)


def test_the_openapi_schema_documents_the_strategies_days(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    field = document["components"]["schemas"]["PeriodSummary"]["properties"]["by_strategy_days"]
    assert field["type"] == "object" and field["additionalProperties"]["type"] == "array"
    assert field["additionalProperties"]["items"]["$ref"].endswith("/DayPnl")
    assert "by_strategy_days" in document["components"]["schemas"]["PeriodSummary"]["required"]


# --- the chart -------------------------------------------------------------------------------------


def period_of(series: dict[str, list[tuple[int, str]]]) -> PeriodSummary:
    """A period of January 2026 with each strategy's (day, P&L) closing days, as the summary gives them."""
    strategy_days = {}
    for name, days in series.items():
        running, rows = Decimal(0), []
        for d, pnl in days:
            running += Decimal(pnl)
            rows.append(DayPnl(day(d), Decimal(pnl), running))
        strategy_days[name] = tuple(rows)
    empty = Performance.from_days([], None)
    every = sorted({d for rows in strategy_days.values() for d in rows}, key=lambda d: d.date)
    return PeriodSummary(
        day(5), day(16), empty, tuple(every), dict.fromkeys(series, empty), {}, strategy_days=strategy_days
    )


def svg_of(period: PeriodSummary) -> ET.Element:
    return ET.fromstring(str(strategies_chart(period)))


def lines(svg: ET.Element) -> list[ET.Element]:
    return [e for e in svg.iter(f"{SVG}polyline") if e.get("class") == "strategy-line"]


def points(line: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in line.get("points", "").split())]


def legend(svg: ET.Element) -> list[str]:
    return [e.text or "" for e in svg.iter(f"{SVG}text") if e.get("class") in ("legend-name", "legend-more")]


def y_of_label(svg: ET.Element, text: str) -> float:
    (label,) = [e for e in svg.iter(f"{SVG}text") if e.get("class") == "y-label" and e.text == text]
    return float(label.get("y", "nan"))


def tooltip(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None
    return title.text or ""


def test_a_line_and_a_legend_entry_per_strategy_in_distinct_colours() -> None:
    svg = svg_of(period_of({"momentum": [(5, "70"), (6, "50")], "meanrev": [(6, "-80")], "": [(5, "10")]}))
    drawn = lines(svg)
    # The largest |P&L| first: momentum 120, meanrev -80, (none) 10.
    assert [line.get("data-strategy") for line in drawn] == ["momentum", "meanrev", ""]
    assert legend(svg) == ["momentum 120.00", "meanrev -80.00", "(none) 10.00"]
    assert [tooltip(line) for line in drawn] == [
        "momentum: 120.00 cumulative at the end",
        "meanrev: -80.00 cumulative at the end",
        "(none): 10.00 cumulative at the end",
    ]
    colours = [line.get("stroke") for line in drawn]
    assert len(set(colours)) == 3 and colours == list(STRATEGY_COLOURS[:3])
    swatches = [e.get("stroke") for e in svg.iter(f"{SVG}line") if e.get("stroke-width") == "3"]
    assert swatches == colours  # each legend entry in its line's colour
    assert "momentum 120.00; meanrev -80.00; (none) 10.00" in svg.get("aria-label", "")


def test_the_palette_is_distinct_and_has_a_colour_for_every_line_shown() -> None:
    assert len(set(STRATEGY_COLOURS)) == len(STRATEGY_COLOURS) == SHOWN_STRATEGIES


@pytest.mark.parametrize("count", [SHOWN_STRATEGIES, SHOWN_STRATEGIES + 1, SHOWN_STRATEGIES + 3])
def test_lines_are_capped_and_the_rest_named_in_the_legend(count: int) -> None:
    # Strategy s<k> made k+1: the smallest |P&L| are the ones left out.
    svg = svg_of(period_of({f"s{k}": [(5, str(k + 1))] for k in range(count)}))
    drawn = [line.get("data-strategy") for line in lines(svg)]
    assert drawn == [f"s{k}" for k in range(count - 1, count - 1 - min(count, SHOWN_STRATEGIES), -1)]
    more = [e for e in svg.iter(f"{SVG}text") if e.get("class") == "legend-more"]
    if count <= SHOWN_STRATEGIES:
        assert more == [] and len(legend(svg)) == count
    else:
        (entry,) = more
        assert (entry.text or "").strip() == f"{count - SHOWN_STRATEGIES} more"
        left_out = range(count - SHOWN_STRATEGIES - 1, -1, -1)  # the smallest, largest first
        assert tooltip(entry).endswith(", ".join(f"s{k}" for k in left_out))


def test_a_tie_in_pnl_is_settled_by_name() -> None:
    # Given last name first: the order of the summary's names does not decide it.
    names = reversed(range(SHOWN_STRATEGIES + 1))
    svg = svg_of(period_of({f"s{k}": [(5, "-10" if k % 2 else "10")] for k in names}))
    assert [line.get("data-strategy") for line in lines(svg)] == [f"s{k}" for k in range(SHOWN_STRATEGIES)]


def test_a_single_day_draws_each_line_from_zero_to_its_day() -> None:
    svg = svg_of(period_of({"a": [(5, "40")], "b": [(5, "-10")]}))
    zero = y_of_label(svg, "0.00")
    for line in lines(svg):
        start, end = points(line)
        assert start[1] == zero and end[0] > start[0] and end[1] != zero
    ends = [e for e in svg.iter(f"{SVG}circle") if e.get("class") == "strategy-end"]
    assert [tooltip(e) for e in ends] == ["a: 40.00 on Mon 2026-01-05", "b: -10.00 on Mon 2026-01-05"]


def test_a_break_even_strategy_runs_along_zero() -> None:
    svg = svg_of(period_of({"flat": [(5, "0"), (6, "0")], "up": [(5, "30"), (6, "20")]}))
    flat = next(line for line in lines(svg) if line.get("data-strategy") == "flat")
    assert {y for _, y in points(flat)} == {y_of_label(svg, "0.00")}


def test_negative_only_lines_stay_below_zero_at_the_top() -> None:
    svg = svg_of(period_of({"a": [(5, "-40"), (6, "-10")], "b": [(6, "-25")]}))
    zero, low = y_of_label(svg, "0.00"), y_of_label(svg, "-50.00")
    assert [e.text for e in svg.iter(f"{SVG}text") if e.get("class") == "y-label"] == ["-50.00", "0.00"]
    for line in lines(svg):
        ys = [y for _, y in points(line)]
        assert all(zero <= y <= low for y in ys) and max(ys) > zero


def test_a_day_without_a_strategys_trade_keeps_its_total() -> None:
    svg = svg_of(period_of({"a": [(5, "40"), (7, "10")], "b": [(6, "-10")]}))
    a, b = lines(svg)
    # Days 5, 6, 7 on x, after the start at zero: a holds 40 on the 6th, b is 0 until the 6th.
    assert [y for _, y in points(a)][2] == [y for _, y in points(a)][1]
    assert [y for _, y in points(b)][1] == y_of_label(svg, "0.00")
    assert len(points(a)) == len(points(b)) == 4


def test_a_long_name_is_cut_in_the_legend_and_whole_in_its_title() -> None:
    name = "a-very-long-strategy-name-that-would-not-fit"
    svg = svg_of(period_of({name: [(5, "12345.67")], "b": [(5, "1")]}))
    (entry, _) = [e for e in svg.iter(f"{SVG}g") if e.get("class") == "legend-entry"]
    text = next(e.text for e in entry.iter(f"{SVG}text"))
    assert text is not None and text.endswith("… 12,345.67") and name.startswith(text[: text.index("…")])
    assert tooltip(entry) == f"{name}: 12,345.67"


def test_no_closed_trade_no_chart() -> None:
    html = str(strategies_chart(period_of({"a": [], "b": []})))
    assert "<svg" not in html and "No closed trades" in html


# --- the cockpit card and the report page: the API's figures -----------------------------------------


def api_rows(body: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The API's strategies as the pages' rows read, each number through ``trades.formats``."""
    return {
        name or "(none)": (
            str(p["total_trades"]),
            money(p["total_pnl"]),
            format_rate(p["win_rate"]),
            format_factor(p["profit_factor"]),
            money(p["expectancy"]),
            money(-Decimal(str(p["max_drawdown"]["amount"])) if p["max_drawdown"] else None),
        )
        for name, p in body["by_strategy"].items()
    }


class StrategiesSection(HTMLParser):
    """One bot card's strategies section on the cockpit: whether it is there, its rows of cell texts."""

    def __init__(self, html: str, bot: str) -> None:
        super().__init__()
        self.bot = bot
        self.found = False
        self.rows: list[list[str]] = []
        self._inside = False
        self._row: list[str] | None = None
        self._cell = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "details" and "bot-strategies" in a.get("class", "").split():
            self._inside = a.get("data-remember") == f"{self.bot}:strategies"
            self.found = self.found or self._inside
        elif self._inside and tag == "tr":
            self._row = []
        elif self._inside and tag in ("th", "td"):
            self._cell = ""

    def handle_endtag(self, tag: str) -> None:
        if not self._inside:
            return
        if tag in ("th", "td") and self._row is not None:
            self._row.append(" ".join(self._cell.split()))
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "details":
            self._inside = False

    def handle_data(self, data: str) -> None:
        self._cell += data


def cockpit_page(client: Client, now: dt.datetime) -> str:
    with mock.patch("django.utils.timezone.now", return_value=now):
        response = client.get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


EVENING = dt.datetime(2026, 1, 13, 17, tzinfo=NY)


def test_the_cockpit_card_sets_the_strategies_side_by_side_with_the_apis_figures(
    staff: Client, api: APIClient, bot: Bot, fills: None
) -> None:
    (card,) = cockpit.build(now=EVENING).bots
    query = f"start={card.period.start}&end={card.period.end}"
    body = json.loads(api.get(f"/api/v1/summary/period/?{query}").content)
    section = StrategiesSection(cockpit_page(staff, EVENING), "alpha")
    assert section.found
    header, *rows = section.rows
    assert header == ["strategy", "trades", "P&L", "win rate", "profit factor", "expectancy", "max drawdown"]
    assert {row[0]: tuple(row[1:]) for row in rows} == api_rows(body)
    assert card.strategies is not None
    chart = ET.fromstring(str(card.strategies.chart))
    drawn = sorted(line.get("data-strategy") or "" for line in lines(chart))
    assert drawn == sorted(body["by_strategy_days"])
    # The chart in the page is the card's.
    assert 'data-strategy="momentum"' in cockpit_page(staff, EVENING)


def test_the_cockpit_sets_two_strategies_side_by_side_and_not_one(
    staff: Client, bot: Bot, fills: None
) -> None:
    assert StrategiesSection(cockpit_page(staff, EVENING), "alpha").found
    Trade.objects.filter(strategy="meanrev").delete()
    (card,) = cockpit.build(now=EVENING).bots
    assert card.strategies is None  # one strategy: its figures are the bot's own, above
    assert not StrategiesSection(cockpit_page(staff, EVENING), "alpha").found


def test_the_report_page_shows_the_strategies_table_and_chart(
    staff: Client, api: APIClient, bot: Bot, fills: None
) -> None:
    query = "start=2026-01-05&end=2026-01-13"
    body = json.loads(api.get(f"/api/v1/summary/period/?{query}").content)
    html = staff.get(f"/admin/report/?{query}&bot=alpha").content.decode()
    page = ReportPage(html)
    assert {row[0]: tuple(row[1:]) for row in page.tables["By strategy"]} == api_rows(body)
    assert html.count('class="strategy-line"') == 2 and 'class="legend-name"' in html
    # One strategy: the table alone (its line would be the overall chart's).
    Trade.objects.filter(strategy="meanrev").delete()
    html = staff.get(f"/admin/report/?{query}&bot=alpha").content.decode()
    assert "strategy-line" not in html and list(ReportPage(html).tables["By strategy"][0][:1]) == ["momentum"]
