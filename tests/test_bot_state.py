"""The bot's state on a heartbeat (positions, equity and cash, host figures), through the real API:
what is kept, what is refused (with nothing stored), what GET /api/v1/positions/ and /status/ answer,
and how old snapshots are thinned."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from monitor_client import wire
from tests.conftest import make_trade
from trades import state
from trades.models import Bot, BotSnapshot
from trades.positions import day_pnl, start_of_day
from trades.thinning import BUCKET_SECONDS, KEEP_ALL, KEEP_THINNED, thin_snapshots

HEARTBEAT = "/api/v1/heartbeat/"
HOST = {
    "pid": 4242,
    "started_at": "2026-01-15T13:00:00Z",
    "rss_bytes": 150_000_000,
    "cpu_percent": 3.5,
    "memory_available_bytes": 800_000_000,
    "memory_total_bytes": 2_000_000_000,
    "disk_free_bytes": 20_000_000_000,
    "disk_total_bytes": 50_000_000_000,
}
# 10:00 in New York on a trading day.
NOON = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


def beat(client: APIClient, body: Any, at: dt.datetime | None = None) -> Any:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if at is None:
        return client.post(HEARTBEAT, raw, content_type="application/json")
    with patch("django.utils.timezone.now", return_value=at):
        return client.post(HEARTBEAT, raw, content_type="application/json")


def position(symbol: str, quantity: Any, avg: Any, market: Any) -> dict[str, Any]:
    return {"symbol": symbol, "quantity": quantity, "avg_price": avg, "market_price": market}


# --- what is kept -----------------------------------------------------------------


def test_a_long_gains_and_a_short_loses_as_the_price_rises(bot: Bot, api: APIClient) -> None:
    positions = [position("aapl", 10, 100, 103.5), position("TSLA", -5, 200, 210.25)]
    response = beat(api, {"status": "running", "positions": positions, "equity": 10_000.5, "cash": 2500})
    assert response.status_code == 200, response.json()
    answer = api.get("/api/v1/positions/").json()
    by_symbol = {p["symbol"]: p for p in answer["positions"]}
    assert by_symbol["AAPL"]["unrealized_pnl"] == 35.0  # 10 x (103.5 - 100)
    assert by_symbol["TSLA"]["unrealized_pnl"] == -51.25  # -5 x (210.25 - 200)
    assert by_symbol["TSLA"]["quantity"] == -5.0
    assert answer["unrealized_pnl"] == -16.25
    assert answer["equity"] == 10_000.5 and answer["cash"] == 2500.0
    assert answer["as_of"] == answer["account_as_of"] is not None
    snapshot = BotSnapshot.objects.get(bot=bot)
    assert snapshot.position_count == 2 and snapshot.unrealized_pnl == Decimal("-16.25")


def test_a_heartbeat_without_state_stores_no_snapshot_and_an_empty_list_is_flat(
    bot: Bot, api: APIClient
) -> None:
    assert beat(api, {"status": "running"}).status_code == 200
    assert not BotSnapshot.objects.exists()
    answer = api.get("/api/v1/positions/").json()
    assert answer["positions"] is None and answer["as_of"] is None and answer["day_pnl"] is None
    assert beat(api, {"positions": []}).status_code == 200
    answer = api.get("/api/v1/positions/").json()
    assert answer["positions"] == [] and answer["unrealized_pnl"] == 0.0 and answer["day_pnl"] == 0.0


def test_status_gives_the_last_host_figures(bot: Bot, api: APIClient, read_key: str) -> None:
    assert api.get("/api/v1/status/").json()["host"] is None
    assert beat(api, {"host": HOST}).status_code == 200
    assert beat(api, {"equity": 5}).status_code == 200  # a later snapshot without host figures
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key}")
    host = reader.get("/api/v1/status/").json()["host"]
    assert {name: host[name] for name in HOST} == HOST
    assert reader.get("/api/v1/positions/").status_code == 200  # a read-only key reads positions
    assert reader.post(HEARTBEAT, {"host": HOST}, format="json").status_code == 403


def test_a_whole_number_written_with_a_point_is_a_whole_number(bot: Bot, api: APIClient) -> None:
    """JSON Schema's ``integer`` (what the document says) takes 5.0; 5.5 is refused."""
    assert beat(api, {"host": {"pid": 7.0, "rss_bytes": 1024.0}}).status_code == 200
    assert api.get("/api/v1/status/").json()["host"]["rss_bytes"] == 1024
    assert beat(api, {"host": {"rss_bytes": 1024.5}}).status_code == 400


def test_a_host_figure_the_bot_cannot_give_is_left_out_and_one_the_site_does_not_know_is_ignored(
    bot: Bot, api: APIClient
) -> None:
    assert beat(api, {"host": {"pid": 7, "load_average": [0.5, 0.4, 0.3]}}).status_code == 200
    host = api.get("/api/v1/status/").json()["host"]
    assert host["pid"] == 7 and host["disk_free_bytes"] is None


# --- the day with open positions --------------------------------------------------


def test_day_pnl_marks_carried_opened_and_closed_positions_to_market(bot: Bot, api: APIClient) -> None:
    """Yesterday evening: 10 AAPL bought at 100, marked at 110 (+100 open). Today: AAPL now at 105
    (carried over: -50 today), MSFT opened today at 50 now 48 (x20: -40), and NVDA, held
    yesterday at +30 open, closed today with a realized 45 since entry (45 - 30 = +15 today)."""
    evening = start_of_day(dt.date(2026, 1, 15)) - dt.timedelta(minutes=1)
    yesterday = [position("AAPL", 10, 100, 110), position("NVDA", 3, 90, 100)]
    assert beat(api, {"positions": yesterday}, at=evening).status_code == 200
    today = [position("AAPL", 10, 100, 105), position("MSFT", 20, 50, 48)]
    assert beat(api, {"positions": today}, at=NOON).status_code == 200
    api.post(
        "/api/v1/trades/",
        [make_trade(1, symbol="NVDA", side="SELL", pnl=45, executed_at="2026-01-15T14:59:00Z")],
        format="json",
    )
    figures = day_pnl(bot, dt.date(2026, 1, 15))
    assert figures is not None
    assert figures.unrealized_before == Decimal(130)  # 100 + 30 this morning
    assert figures.unrealized == Decimal(10)  # 50 - 40 now
    assert figures.realized == Decimal(45)
    assert figures.open_part == Decimal(-120)
    assert figures.total == Decimal(-75)  # -50 (AAPL) - 40 (MSFT) + 15 (NVDA)
    with patch("django.utils.timezone.now", return_value=NOON + dt.timedelta(minutes=5)):
        answer = api.get("/api/v1/positions/").json()
    assert answer["day_pnl"] == -75.0 and answer["realized_pnl"] == 45.0 and answer["open_pnl"] == -120.0


def test_the_morning_is_the_last_snapshot_before_the_markets_midnight_not_utcs(bot: Bot) -> None:
    """The trading day begins at the market's midnight (05:00 UTC in a New York winter): a snapshot
    at that instant is the day's, one a second earlier the evening before's."""
    midnight = start_of_day(dt.date(2026, 1, 15))
    assert midnight == dt.datetime(2026, 1, 15, 5, 0, tzinfo=dt.UTC)
    bot.record_heartbeat(positions=state.parse_positions([position("A", 1, 10, 12)]))
    BotSnapshot.objects.update(taken_at=midnight - dt.timedelta(seconds=1))
    bot.record_heartbeat(positions=state.parse_positions([position("A", 1, 10, 15)]))
    BotSnapshot.objects.filter(unrealized_pnl=5).update(taken_at=midnight)
    figures = day_pnl(bot, dt.date(2026, 1, 15))
    assert figures is not None and figures.unrealized_before == 2 and figures.total == 3
    # The snapshot at midnight is the 15th's, not the 14th's last.
    figures = day_pnl(bot, dt.date(2026, 1, 14))
    assert figures is not None and figures.unrealized == 2


def test_no_positions_reported_today_means_no_day_pnl(bot: Bot) -> None:
    bot.record_heartbeat(positions=state.parse_positions([position("A", 1, 10, 12)]))
    BotSnapshot.objects.update(taken_at=start_of_day(dt.date(2026, 1, 15)) - dt.timedelta(hours=3))
    bot.record_heartbeat(equity=Decimal(5))  # today, but no positions
    BotSnapshot.objects.filter(equity=5).update(taken_at=NOON)
    assert day_pnl(bot, dt.date(2026, 1, 15)) is None


# --- what is refused, with nothing stored ------------------------------------------

MALFORMED = [
    ({"positions": {"AAPL": 1}}, ["positions"]),
    ({"positions": [position("A", 1, 1, 1)] * 2}, ["positions", "1.symbol"]),
    ({"positions": [position("A", 1, 1, 1), position("a", 1, 1, 1)]}, ["positions", "1.symbol"]),
    ({"positions": [position("A", "1", 1, 1)]}, ["positions", "0.quantity"]),
    ({"positions": [position("A", True, 1, 1)]}, ["positions", "0.quantity"]),
    ({"positions": [position("A", 1, 0, 1)]}, ["positions", "0.avg_price"]),
    ({"positions": [position("A", 1, 1, -2)]}, ["positions", "0.market_price"]),
    ({"positions": [position("A", 1, 1, 10_000_000.01)]}, ["positions", "0.market_price"]),
    ({"positions": [position("A", 1.123456789, 1, 1)]}, ["positions", "0.quantity"]),
    ({"positions": [position("A", 1234567.123456789, 1, 1)]}, ["positions", "0.quantity"]),
    ({"positions": [position("A", 10_000_001, 10_000, 1)]}, ["positions", "0.quantity"]),
    ({"positions": [position("a b", 1, 1, 1)]}, ["positions", "0.symbol"]),
    ({"positions": [position("A" * 33, 1, 1, 1)]}, ["positions", "0.symbol"]),
    ({"positions": [position("A", 1, 1, 1) | {"side": "BUY"}]}, ["positions", "0.side"]),
    ({"positions": [{"symbol": "A", "quantity": 1, "avg_price": 1}]}, ["positions", "0.market_price"]),
    ({"positions": ["AAPL"]}, ["positions", "0"]),
    ({"equity": "1000"}, ["equity"]),
    ({"cash": 100_000_000_000.01}, ["cash"]),
    ({"host": {"pid": 0}}, ["host", "pid"]),
    ({"host": {"pid": True}}, ["host", "pid"]),
    ({"host": {"pid": wire.MAX_PID + 1}}, ["host", "pid"]),
    ({"host": {"pid": 1.5}}, ["host", "pid"]),
    ({"host": {"started_at": "2026-01-15T13:00:00"}}, ["host", "started_at"]),
    ({"host": {"started_at": "2026-02-30T13:00:00Z"}}, ["host", "started_at"]),
    ({"host": {"rss_bytes": -1}}, ["host", "rss_bytes"]),
    ({"host": {"rss_bytes": wire.MAX_HOST_BYTES + 1}}, ["host", "rss_bytes"]),
    ({"host": {"cpu_percent": -0.1}}, ["host", "cpu_percent"]),
    ({"host": {"cpu_percent": "5"}}, ["host", "cpu_percent"]),
    ({"host": {"memory_available_bytes": 11, "memory_total_bytes": 10}}, ["host", "memory_available_bytes"]),
    ({"host": {"disk_free_bytes": 11, "disk_total_bytes": 10}}, ["host", "disk_free_bytes"]),
    ({"host": [1, 2]}, ["host"]),
]


def errors_at(answer: dict[str, Any], path: list[str]) -> Any:
    found: Any = answer["errors"]
    for step in path:
        assert isinstance(found, dict) and step in found, (path, answer)
        found = found[step]
    return found


@pytest.mark.parametrize(("body", "path"), MALFORMED, ids=lambda value: json.dumps(value)[:60])
def test_malformed_state_is_refused_naming_the_field_and_nothing_is_stored(
    bot: Bot, api: APIClient, body: dict[str, Any], path: list[str]
) -> None:
    response = beat(api, {"status": "running", "host": {"pid": 1}, **body})
    assert response.status_code == 400, response.json()
    assert errors_at(response.json(), path)
    bot.refresh_from_db()
    assert bot.last_heartbeat_at is None and not BotSnapshot.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"positions": [{"symbol": "A", "quantity": NaN, "avg_price": 1, "market_price": 1}]}',
        b'{"positions": [{"symbol": "A", "quantity": 1e400, "avg_price": 1, "market_price": 1}]}',
        b'{"equity": Infinity}',
        b'{"positions": [{"symbol": "\\ud800", "quantity": 1, "avg_price": 1, "market_price": 1}]}',
        b'{"positions": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["nan", "1e400", "infinity", "lone-surrogate", "deep"],
)
def test_hostile_state_is_a_400(bot: Bot, api: APIClient, raw: bytes) -> None:
    response = beat(api, raw)
    assert response.status_code == 400, response.content[:300]
    assert not BotSnapshot.objects.exists()


def test_exactly_the_limits_are_taken(bot: Bot, api: APIClient) -> None:
    positions = [position(f"S{n}", 1, 1, 1) for n in range(wire.MAX_POSITIONS)]
    positions[0] = position("BIG", -10_000_000, 10_000, 10_000)  # quantity x price exactly 1e11
    host = {
        "pid": wire.MAX_PID,
        "rss_bytes": wire.MAX_HOST_BYTES,
        "cpu_percent": wire.MAX_CPU_PERCENT,
        "memory_available_bytes": 10,
        "memory_total_bytes": 10,
        "disk_free_bytes": 0,
        "disk_total_bytes": 0,
    }
    body = {"positions": positions, "equity": -100_000_000_000, "cash": 100_000_000_000, "host": host}
    assert beat(api, body).status_code == 200
    over = [*positions, position("ONE-MORE", 1, 1, 1)]
    response = beat(api, {"positions": over})
    assert response.status_code == 400
    assert f"At most {wire.MAX_POSITIONS} positions" in response.json()["errors"]["positions"][0]
    assert BotSnapshot.objects.count() == 1
    assert BotSnapshot.objects.get().position_count == wire.MAX_POSITIONS


def test_a_position_worth_more_than_any_account_is_refused_by_its_value(bot: Bot, api: APIClient) -> None:
    just_over = position("A", 10_000_001, 10_000, 10_000)
    response = beat(api, {"positions": [just_over]})
    assert response.json()["errors"]["positions"]["0.quantity"] == [state.VALUE_TOO_LARGE]


# --- thinning ------------------------------------------------------------------------


def snapshot_at(bot: Bot, moment: dt.datetime, *, positions: bool = False) -> int:
    fields: dict[str, Any] = {"equity": Decimal(1)}
    if positions:
        fields.update(positions=[], position_count=0, unrealized_pnl=Decimal(0))
    return BotSnapshot.objects.create(bot=bot, taken_at=moment, **fields).pk


@pytest.mark.django_db
def test_thinning_keeps_two_days_whole_then_the_last_of_each_quarter_hour_for_90_days() -> None:
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    alpha, beta = Bot.objects.create(name="alpha"), Bot.objects.create(name="beta")
    # Exactly two days old: kept whole; a second older: thinned with its quarter hour.
    recent = [snapshot_at(alpha, now - KEEP_ALL + dt.timedelta(seconds=s)) for s in (0, 60)]
    bucket = now - KEEP_ALL - dt.timedelta(seconds=BUCKET_SECONDS)  # a quarter hour's start
    assert int(bucket.timestamp()) % BUCKET_SECONDS == 0
    reported = snapshot_at(alpha, bucket + dt.timedelta(minutes=1), positions=True)
    first = snapshot_at(alpha, bucket)
    last = snapshot_at(alpha, bucket + dt.timedelta(minutes=14, seconds=59))
    next_bucket = snapshot_at(alpha, bucket + dt.timedelta(minutes=15))
    other_bot = snapshot_at(beta, bucket + dt.timedelta(minutes=2))
    # Exactly 90 days old is kept; a second more is deleted.
    edge = snapshot_at(alpha, now - KEEP_THINNED)
    expired = snapshot_at(alpha, now - KEEP_THINNED - dt.timedelta(seconds=1))
    result = thin_snapshots(now)
    left = set(BotSnapshot.objects.values_list("pk", flat=True))
    assert left == {*recent, reported, last, next_bucket, other_bot, edge}
    assert first not in left and expired not in left
    assert (result.thinned, result.expired) == (1, 1)
    # Run again (or by two workers at once): nothing more goes.
    assert (thin_snapshots(now).thinned, len(left)) == (0, BotSnapshot.objects.count())


@pytest.mark.django_db
def test_thinning_keeps_the_days_last_positions_so_old_day_pnl_stays_right() -> None:
    now = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    bot = Bot.objects.create(name="alpha")
    day = dt.date(2026, 5, 20)
    end = start_of_day(day + dt.timedelta(days=1))
    for minutes in range(1, 30):
        bot.record_heartbeat(positions=state.parse_positions([position("A", 1, 10, 10 + minutes)]))
        BotSnapshot.objects.filter(taken_at__gt=now - dt.timedelta(days=1)).update(
            taken_at=end - dt.timedelta(minutes=minutes)
        )
    closing = day_pnl(bot, day, realized=Decimal(0))
    assert closing is not None and closing.unrealized == 1  # the last, a minute before midnight
    thin_snapshots(now)
    assert BotSnapshot.objects.count() == 2  # the last of each of the two quarter hours
    assert day_pnl(bot, day, realized=Decimal(0)) == closing
    # And it is still the next day's morning.
    assert BotSnapshot.objects.latest_with_positions(bot, before=end).pk == closing.snapshot.pk


def test_the_thinning_is_scheduled() -> None:
    from monitorsite.registry import declared_schedules

    spec = next(spec for spec in declared_schedules() if spec.name == "snapshots-thin")
    assert spec.func == "trades.tasks.thin_snapshots" and spec.interval_minutes() == 60


@pytest.mark.django_db
def test_the_latest_account_and_host_are_found_on_their_own_indexes() -> None:
    """A bot that never reports equity (or host figures) is not scanned snapshot by snapshot:
    each lookup is one seek on a partial index of the snapshots that have them."""
    from django.db import connection

    from trades.positions import latest_account, latest_host

    bot = Bot.objects.create(name="alpha")
    assert latest_account(bot) is None and latest_host(bot) is None
    for lookup, index in (
        (latest_account, "snapshot_bot_account_time"),
        (latest_host, "snapshot_bot_host_time"),
    ):
        with CaptureQueriesContext(connection) as queries:
            lookup(bot)
        sql = queries.captured_queries[-1]["sql"]
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + sql)
                plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
            else:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("EXPLAIN " + sql)
                plan = " | ".join(row[0] for row in cursor.fetchall())
        assert index in plan, plan
