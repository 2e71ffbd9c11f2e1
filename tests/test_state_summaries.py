"""The daily summary and the period figures with the bot's state, posted through the real API: the
day's closing day_pnl (realized + what the open positions added that day) and, per day on which
the bot reported it, its equity at the close. Without snapshots every new key is null or empty."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from alerts.summary import summary_alerts
from tests.conftest import stored_trade
from tests.state_fixtures import client_for, position, post_state
from tests.test_cockpit import utc
from trades import positions
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
WEDNESDAY, THURSDAY, FRIDAY = dt.date(2026, 1, 14), dt.date(2026, 1, 15), dt.date(2026, 1, 16)


@pytest.fixture
def bot_api(bot: Bot) -> APIClient:
    return client_for(bot)


@pytest.fixture
def two_days(bot: Bot, bot_api: APIClient) -> None:
    """Wednesday: AAPL 10 bought at 100 closes at 110 (open +100), equity 10,100 at the close.
    Thursday: -20 realized; AAPL at 105 at the close (it gave back 50 of its 100): day_pnl -70."""
    post_state(bot_api, utc(WEDNESDAY, 12), positions=[position("AAPL", 10, 100, 104)], equity=10040)
    # 23:59:59 in New York is Thursday in UTC: still Wednesday's close.
    post_state(bot_api, utc(WEDNESDAY, 23, 59, 59), positions=[position("AAPL", 10, 100, 110)], equity=10100)
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal("-20"), executed_at=utc(THURSDAY, 10))])
    post_state(bot_api, utc(THURSDAY, 0), positions=[position("AAPL", 10, 100, 109)], equity=10090, cash=50)
    post_state(
        bot_api, utc(THURSDAY, 15, 59), positions=[position("AAPL", 10, 100, 105)], equity=10030, cash=50
    )


def daily(api: APIClient, day: dt.date) -> dict[str, Any]:
    response = api.get(f"/api/v1/summary/daily/?date={day}")
    assert response.status_code == 200
    return response.json()


def test_the_daily_summary_gains_the_days_closing_day_pnl(bot_api: APIClient, two_days: None) -> None:
    thursday = daily(bot_api, THURSDAY)
    assert (thursday["total_pnl"], thursday["day_pnl"], thursday["open_pnl"]) == (-20, -70, -50)
    assert thursday["day_pnl_as_of"] == "2026-01-15T20:59:00Z"  # 15:59 in New York: the day's last
    wednesday = daily(bot_api, WEDNESDAY)
    assert (wednesday["total_pnl"], wednesday["day_pnl"], wednesday["open_pnl"]) == (0, 100, 100)
    assert wednesday["day_pnl_as_of"] == "2026-01-15T04:59:59Z"  # the market's midnight, not UTC's
    friday = daily(bot_api, FRIDAY)  # nothing reported on Friday: the realized figures alone
    assert friday["day_pnl"] is friday["open_pnl"] is friday["day_pnl_as_of"] is None


def test_the_daily_summary_agrees_with_the_positions_answer_at_the_close(
    bot: Bot, bot_api: APIClient, two_days: None
) -> None:
    with mock.patch("django.utils.timezone.now", return_value=utc(THURSDAY, 16)):
        answer = bot_api.get("/api/v1/positions/").json()
    assert (answer["day_pnl"], answer["open_pnl"]) == (daily(bot_api, THURSDAY)["day_pnl"], -50)


def test_the_summary_alert_and_the_command_say_the_day_pnl_with_its_open_part(
    bot: Bot, two_days: None
) -> None:
    (alert,) = summary_alerts(THURSDAY, bot)
    fields = dict(alert.fields)
    assert fields["Day P&L with open positions"] == "-70.00 (realized -20.00, open -50.00)"
    assert fields["Total P&L"] == "-20.00"
    out = StringIO()
    call_command("daily_summary", "--date", "2026-01-15", "--bot", "alpha", stdout=out)
    assert (
        "Day P&L with open positions: -70.00 (realized -20.00, open -50.00), as of 2026-01-15 15:59:00 EST"
        in out.getvalue()
    )


def test_without_positions_the_summary_says_nothing_of_them(bot: Bot) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal("5"), executed_at=utc(THURSDAY, 10))])
    post_state(client_for(bot), utc(THURSDAY, 11), equity=1000)  # equity alone: no positions
    (alert,) = summary_alerts(THURSDAY, bot)
    assert "Day P&L with open positions" not in dict(alert.fields)
    out = StringIO()
    call_command("daily_summary", "--date", "2026-01-15", "--bot", "alpha", stdout=out)
    assert "open positions" not in out.getvalue()


# --- the period figures -------------------------------------------------------------------------


def period(api: APIClient, start: dt.date, end: dt.date) -> dict[str, Any]:
    response = api.get(f"/api/v1/summary/period/?start={start}&end={end}")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_period_gains_each_days_close_the_equity_curve(
    bot: Bot, bot_api: APIClient, two_days: None
) -> None:
    body = period(bot_api, dt.date(2026, 1, 12), FRIDAY)
    assert body["closes"] == [
        {
            "date": "2026-01-14",
            "as_of": "2026-01-15T04:59:59Z",
            "equity": 10100,
            "cash": None,
            "day_pnl": 100,
            "open_pnl": 100,
        },
        {
            "date": "2026-01-15",
            "as_of": "2026-01-15T20:59:00Z",
            "equity": 10030,
            "cash": 50,
            "day_pnl": -70,
            "open_pnl": -50,
        },
    ]
    # Each day's close is the day_pnl the positions module works out for that day.
    for close in body["closes"]:
        marked = positions.day_pnl(bot, dt.date.fromisoformat(close["date"]))
        assert marked is not None and Decimal(str(close["day_pnl"])) == marked.total


def test_a_period_starting_after_a_carried_position_counts_only_its_days_move(
    bot_api: APIClient, two_days: None
) -> None:
    """Thursday alone: its morning is Wednesday's close (+100), outside the period, still subtracted."""
    (thursday,) = period(bot_api, THURSDAY, THURSDAY)["closes"]
    assert (thursday["day_pnl"], thursday["open_pnl"]) == (-70, -50)


def test_a_day_with_equity_but_no_positions_has_a_close_without_day_pnl(bot: Bot, bot_api: APIClient) -> None:
    post_state(bot_api, utc(THURSDAY, 12), equity=5000, cash=5000)
    (close,) = period(bot_api, THURSDAY, FRIDAY)["closes"]
    assert close["equity"] == 5000 and close["day_pnl"] is None and close["open_pnl"] is None


def test_without_snapshots_the_period_has_no_closes(bot: Bot, bot_api: APIClient) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal("5"), executed_at=utc(THURSDAY, 10))])
    post_state(bot_api, utc(THURSDAY, 11))  # a bare heartbeat
    body = period(bot_api, WEDNESDAY, FRIDAY)
    assert body["closes"] == [] and body["total_pnl"] == 5


def test_a_periods_closes_cost_four_queries_however_many_days_and_heartbeats(
    bot: Bot, bot_api: APIClient
) -> None:
    def queries() -> tuple[int, list[Decimal | None]]:
        with CaptureQueriesContext(connection) as captured:
            closes = positions.day_closes(bot, dt.date(2026, 1, 5), FRIDAY, {})
        return len(captured), [close.equity for close in closes]

    post_state(bot_api, utc(dt.date(2026, 1, 5), 10), positions=[], equity=1)
    assert queries() == (4, [Decimal(1)])  # the span, the morning before it, the days' closes, their rows
    for minute in range(0, 60 * 6, 3):  # 120 heartbeats over Thursday's session, 10 days later
        post_state(bot_api, utc(THURSDAY, 10) + dt.timedelta(minutes=minute), positions=[], equity=minute)
    assert queries() == (4, [Decimal(1), Decimal(357)])


# --- the report page ----------------------------------------------------------------------------


@pytest.fixture
def staff(admin_client: Client) -> Client:
    return admin_client


def test_the_report_for_one_bot_shows_each_days_close(staff: Client, two_days: None) -> None:
    page = staff.get("/admin/report/?bot=alpha&start=2026-01-12&end=2026-01-16").content.decode()
    assert "Each day&#x27;s close (equity, and the day&#x27;s P&amp;L with open positions)" in page
    for cell in ("10,100.00", "10,030.00", "-70.00", "-50.00"):
        assert f">{cell}</td>" in page, cell
    csv = staff.get("/admin/report/?bot=alpha&start=2026-01-12&end=2026-01-16&format=csv")
    assert csv["Content-Type"].startswith("text/csv")
    assert '2026-01-15,"10,030.00",50.00,-70.00,-50.00' in csv.content.decode()


def test_the_report_for_every_bot_has_no_closes(staff: Client, two_days: None) -> None:
    page = staff.get("/admin/report/?start=2026-01-12&end=2026-01-16").content.decode()
    assert "close (equity" not in page


def test_the_openapi_document_describes_the_new_keys_as_nullable() -> None:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemas = schema["components"]["schemas"]

    def answer(path: str) -> dict[str, Any]:
        ref = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ]
        return schemas[ref.rsplit("/", 1)[-1]]

    daily = answer("/api/v1/summary/daily/")["properties"]
    for key in ("day_pnl", "open_pnl", "day_pnl_as_of"):
        assert "null" in daily[key]["type"] and daily[key]["description"], key  # OpenAPI 3.1
    closes = answer("/api/v1/summary/period/")["properties"]["closes"]
    assert closes["type"] == "array" and "equity curve" in closes["description"]
    close = schemas[closes["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(close["properties"]) == {"date", "as_of", "equity", "cash", "day_pnl", "open_pnl"}
    assert {key for key, value in close["properties"].items() if "null" in value["type"]} == {
        "equity",
        "cash",
        "day_pnl",
        "open_pnl",
    }


def test_the_period_command_prints_each_days_close(bot: Bot, two_days: None) -> None:
    out = StringIO()
    call_command(
        "period_summary", "--start", "2026-01-12", "--end", "2026-01-16", "--bot", "alpha", stdout=out
    )
    lines = out.getvalue().splitlines()
    table = lines[lines.index("Each day's close (equity, and the day's P&L with open positions)") + 1 :]
    assert table[0].split() == ["day", "equity", "cash", "day", "P&L", "of", "it", "open"]
    assert [row.split() for row in table[2:4]] == [
        ["2026-01-14", "10,100.00", "-", "100.00", "100.00"],
        ["2026-01-15", "10,030.00", "50.00", "-70.00", "-50.00"],
    ]
