"""The report page (``/admin/report/``): the period API's figures for any day or period and bot, its
CSV holding what the page shows, the API's own date rules at their boundaries, and staff only."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from tests import test_period_summary
from tests.conftest import stored_trade
from trades import market
from trades.formats import format_factor, format_money, format_rate
from trades.models import Bot, Trade
from trades.validation import MAX_PERIOD_DAYS

pytestmark = pytest.mark.django_db
fills = test_period_summary.fills  # the hand-computed trades of January 2026, as a fixture here too


class ReportPage(HTMLParser):
    """What the report page shows: its figures (label → text), its tables (caption → rows of
    cell texts) and the errors by field, read from the HTML as a browser would."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.errors: dict[str, list[str]] = {}
        self.inputs: dict[str, str] = {}
        self.csv_href = ""
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._text = ""
        self._caption = ""
        self._row: list[str] | None = None
        self._dt = ""
        self._field = ""
        self.feed(html)

    def _within(self, css_class: str) -> bool:
        return any(css_class in (a.get("class") or "").split() for _, a in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") and self._within("report-form"):
            self.inputs[a["name"]] = a.get("value", "")
        if tag == "a" and "report-csv" in a.get("class", ""):
            self.csv_href = a["href"]
        if tag in ("input", "br", "meta", "link", "img"):
            return
        if tag == "div" and "report-field" in a.get("class", "").split():
            self._field = next((c[6:] for c in a["class"].split() if c.startswith("field-")), "")
        self._stack.append((tag, a))
        self._text = ""
        if tag == "tr" and self._within("report-table") and not any(t == "thead" for t, _ in self._stack):
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        text = " ".join(self._text.split())
        while self._stack and self._stack[-1][0] != tag:
            self._stack.pop()
        if not self._stack:
            return
        self._stack.pop()
        if tag == "h2" and self._within("report-section"):
            self._caption = text
        elif tag == "dt" and self._within("report-figures"):
            self._dt = text
        elif tag == "dd" and self._within("report-figures"):
            self.figures[self._dt] = text
        elif tag in ("th", "td") and self._row is not None:
            self._row.append(text)
        elif tag == "tr" and self._row is not None:
            self.tables.setdefault(self._caption, []).append(self._row)
            self._row = None
        elif tag == "li" and self._within("errorlist"):
            self.errors.setdefault(self._field or "__all__", []).append(text)
        self._text = ""

    def handle_data(self, data: str) -> None:
        self._text += data


@pytest.fixture
def staff(db: Any) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", is_staff=True))
    return client


def report(client: Client, query: str) -> ReportPage:
    response = client.get(f"/admin/report/?{query}")
    assert response.status_code == 200, response.content[:2000]
    return ReportPage(response.content.decode())


def money(value: Any) -> str:
    return format_money(None if value is None else Decimal(str(value)))


# --- the figures are the API's ---------------------------------------------------------------


@pytest.mark.parametrize(("start", "end"), [("2026-01-05", "2026-01-13"), ("2026-01-09", "2026-01-09")])
def test_the_page_shows_the_period_apis_figures_for_the_same_bot_and_period(
    staff: Client, api: APIClient, bot: Bot, fills: None, start: str, end: str
) -> None:
    Bot.objects.create(name="beta")  # another bot's (absent) trades change nothing
    body = json.loads(api.get(f"/api/v1/summary/period/?start={start}&end={end}").content)
    page = report(staff, f"start={start}&end={end}&bot=alpha")

    assert page.figures["Realized P&L"] == money(body["total_pnl"])
    assert page.figures["Trades"] == f"{body['total_trades']} ({body['closed_trades']} closed)"
    assert page.figures["Win rate"].startswith(f"{format_rate(body['win_rate'])} ({body['wins']} won")
    assert page.figures["Expectancy per closed trade"] == money(body["expectancy"])
    for caption, key in (("By strategy", "by_strategy"), ("By symbol", "by_symbol")):
        assert {row[0]: tuple(row[1:]) for row in page.tables[caption]} == {
            name: (
                str(p["total_trades"]),
                money(p["total_pnl"]),
                format_rate(p["win_rate"]),
                format_factor(p["profit_factor"]),
                money(p["expectancy"]),
                # A fall reads as one, as in the figures above: -4.25, not 4.25.
                money(-Decimal(p["max_drawdown"]["amount"]) if p["max_drawdown"] else None),
            )
            for name, p in body[key].items()
        }
    drawdown = body["max_drawdown"]
    assert page.figures["Max drawdown"] == money(-Decimal(drawdown["amount"]) if drawdown else None)
    assert page.tables["By day (days with a closed trade)"] == [
        [d["date"], money(d["pnl"]), money(d["cumulative"])] for d in body["days"]
    ]


def test_the_hand_computed_period_reads_as_expected(staff: Client, bot: Bot, fills: None) -> None:
    """Independently of the API: January's hand-computed figures (tests/test_period_summary.py)."""
    page = report(staff, "start=2026-01-05&end=2026-01-13&bot=alpha")
    assert page.figures["Realized P&L"] == "70.00"
    assert page.figures["Profit factor"] == "1.30"
    assert [row[:3] for row in page.tables["By strategy"]] == [
        ["meanrev", "4", "-30.00"],
        ["momentum", "7", "100.00"],
    ]


def test_all_bots_add_up_every_bots_trades(staff: Client, bot: Bot, fills: None) -> None:
    beta = Bot.objects.create(name="beta")
    moment = dt.datetime(2026, 1, 9, 11, tzinfo=test_period_summary.NY)
    Trade.objects.record_batch(beta, [stored_trade(99, pnl=Decimal("25.5"), executed_at=moment)])
    assert report(staff, "start=2026-01-09&end=2026-01-09&bot=beta").figures["Realized P&L"] == "25.50"
    page = report(staff, "start=2026-01-09&end=2026-01-09&bot=")
    assert page.figures["Realized P&L"] == "175.50"  # alpha's 150 and beta's 25.50
    assert page.inputs == {"start": "2026-01-09", "end": "2026-01-09"}


def test_without_a_query_the_page_is_todays_for_every_bot(staff: Client, bot: Bot) -> None:
    today = market.today().isoformat()
    page = report(staff, "")
    assert page.inputs == {"start": today, "end": today}
    assert page.figures["Realized P&L"] == "0.00"
    assert f"start={today}&end={today}&bot=&format=csv" in page.csv_href.replace("&amp;", "&")


# --- the CSV holds the page ------------------------------------------------------------------


def test_the_csv_holds_the_pages_figures_and_tables(staff: Client, bot: Bot, fills: None) -> None:
    page = report(staff, "start=2026-01-05&end=2026-01-13&bot=alpha")
    response = staff.get(page.csv_href.replace("&amp;", "&"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="report_alpha_20260105_20260113.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["report", "alpha", "2026-01-05", "2026-01-13"]
    sections: list[list[list[str]]] = [[]]
    for row in rows[1:]:
        if row:
            sections[-1].append(row)
        elif sections[-1]:
            sections.append([])
    figures, *tables = sections
    assert figures[0] == ["figure", "value"]
    assert dict(figures[1:]) == page.figures
    assert len(tables) == 3
    assert {table[0][0]: table[2:] for table in tables if table[2:]} == page.tables


# --- bad input: the API's rules, a form error naming the field, never a 500 -------------------


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("start=2026-01-09&end=2026-01-08", "end", "The end (2026-01-08) is before the start (2026-01-09)."),
        ("start=2026-01-09&end=yesterday", "end", "Enter a valid date."),
        ("start=&end=2026-01-08", "start", "This field is required."),
        ("start=2199-12-31&end=2200-01-01", "end", "Must be a day in the years 2000 to 2199."),
        ("start=1999-12-31&end=2000-01-03", "start", "Must be a day in the years 2000 to 2199."),
        (
            f"start=2000-01-03&end={dt.date(2000, 1, 3) + dt.timedelta(days=MAX_PERIOD_DAYS + 1)}",
            "end",
            f"A period is at most {MAX_PERIOD_DAYS} days long.",
        ),
        ("start=2026-01-05&end=2026-01-09&bot=nobody", "bot", "Select a valid choice."),
    ],
    ids=["end-before-start", "malformed", "missing", "year-2200", "year-1999", "too-long", "unknown-bot"],
)
def test_bad_input_is_a_form_error_naming_the_field(
    staff: Client, bot: Bot, query: str, field: str, words: str
) -> None:
    for variant in (query, f"{query}&format=csv"):  # the CSV of a bad period is the page with its error
        response = staff.get(f"/admin/report/?{variant}")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
        page = ReportPage(response.content.decode())
        assert list(page.errors) == [field], page.errors
        assert page.errors[field][0].startswith(words)
        assert page.figures == {} and not page.csv_href


@pytest.mark.parametrize(
    "query",
    [
        "start=2026-01-09&end=2026-01-09",  # start == end: one day
        f"start=2000-01-03&end={dt.date(2000, 1, 3) + dt.timedelta(days=MAX_PERIOD_DAYS)}",  # the longest
        "start=2199-12-31&end=2199-12-31",  # the last day the API takes
    ],
    ids=["one-day", "longest", "last-day"],
)
def test_periods_the_api_takes_are_shown(staff: Client, bot: Bot, fills: None, query: str) -> None:
    page = report(staff, query)
    assert page.errors == {} and "Realized P&L" in page.figures


# --- who may see it, and where it is linked ------------------------------------------------


def test_the_report_is_for_staff_only(db: Any, bot: Bot) -> None:
    assert Client().get("/admin/report/").status_code == 302  # to the login page
    someone = Client()
    someone.force_login(get_user_model().objects.create_user("visitor"))
    response = someone.get("/admin/report/?format=csv")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_cockpit_links_the_report_per_bot_and_for_all(staff: Client, bot: Bot) -> None:
    page = staff.get("/admin/").content.decode()
    start, end = market.period()
    assert 'href="/admin/report/"' in page
    assert f'href="/admin/report/?bot=alpha&amp;start={start}&amp;end={end}"' in page
