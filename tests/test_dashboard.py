"""The provisioned Grafana dashboards: each SQL query run over trades posted through the API.

Two variants mirror each other: ``grafana/provisioning`` (SQLite, the frser-sqlite-datasource
plugin) and ``grafana/provisioning-postgres`` (PostgreSQL, Grafana's built-in data source, as
the read-only role ``grafana_reader``). A run of the suite on SQLite runs the SQLite
dashboard's queries with sqlite3, as the plugin opens the file; a run on PostgreSQL
(``DATABASE_URL=postgres://...``, scripts/test.sh's second run) runs the PostgreSQL
dashboard's queries with psycopg, signed in as the role its init script makes. Both are
checked against the same figures. The files of both variants are checked in every run.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
import yaml
from django.db import connection
from rest_framework.test import APIClient

from monitor_client import setup_logging
from monitor_client.loki import LokiEmitter
from monitorsite.grafana import create_market_views
from tests.conftest import make_trade
from tests.harness import ROOT, manage, site_env
from tests.state_fixtures import GB, MB, client_for, host, position, post_state
from trades.models import Bot, Trade

# The backend of this run of the suite: its queries are run on it.
POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
PROVISIONING = {
    "sqlite": ROOT / "grafana" / "provisioning",
    "postgres": ROOT / "grafana" / "provisioning-postgres",
}
SQL_SOURCES = {"sqlite": "frser-sqlite-datasource", "postgres": "grafana-postgresql-datasource"}
BACKEND = "postgres" if POSTGRES else "sqlite"
DASHBOARD = PROVISIONING[BACKEND] / "dashboards" / "trading-bot.json"
READER_SCRIPT = ROOT / "grafana" / "postgres" / "grafana_reader.sh"
READER_PASSWORD = "reader-test-password"
NOW = dt.datetime(2026, 1, 15, 20, 0, tzinfo=dt.UTC)  # 15:00 in New York
TO_MS = int(NOW.timestamp() * 1000)
FROM_MS = TO_MS - 24 * 3600 * 1000  # the dashboard's default range: the last 24 hours
ALL_SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA"]
# The only placeholders the queries may use: Grafana's global $__from / $__to
# (epoch milliseconds, what the SQLite plugin's own examples use), the variable, and
# on PostgreSQL the built-in data source's $__timeFilter(column).
PLACEHOLDERS = re.compile(r"\$__from|\$__to|\$\{symbol:sqlstring\}|\$__timeFilter\([\w.]+\)")
TIME_FILTER = re.compile(r"\$__timeFilter\(([\w.]+)\)")
# The panels of the bots' reported state (trades_botsnapshot), a series per bot each.
STATE_PANELS = ("Equity", "Open P&L", "Host: disk and memory free", "Bot memory (RSS)")
# The panels of a series per name (the "metric" column): the state panels' per bot, and per strategy.
SERIES_PANELS = (*STATE_PANELS, "Cumulative P&L by strategy")


def dashboard(backend: str = BACKEND) -> dict[str, Any]:
    return json.loads((PROVISIONING[backend] / "dashboards" / "trading-bot.json").read_text())


def query_text(target: dict[str, Any]) -> str:
    return (
        target["rawSql"]
        if target["datasource"]["type"] == SQL_SOURCES["postgres"]
        else target["rawQueryText"]
    )


def sql_queries(backend: str = BACKEND) -> dict[str, str]:
    queries = {
        panel["title"]: query_text(target)
        for panel in dashboard(backend)["panels"]
        for target in panel["targets"]
        if target["datasource"]["type"] == SQL_SOURCES[backend]
    }
    for variable in dashboard(backend)["templating"]["list"]:
        queries[f"variable {variable['name']}"] = variable["query"]
    return queries


def _rfc3339(milliseconds: int) -> str:
    moment = dt.datetime.fromtimestamp(milliseconds / 1000, dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def render(sql: str, *, symbols: list[str], start: int = FROM_MS, end: int = TO_MS) -> str:
    """The query as Grafana sends it: its macros and variables replaced the way Grafana does."""
    quoted = ",".join("'" + symbol.replace("'", "''") + "'" for symbol in symbols)
    # The PostgreSQL data source's macro: the column between the range's ends (RFC 3339, UTC).
    rendered = TIME_FILTER.sub(
        lambda m: f"{m.group(1)} BETWEEN '{_rfc3339(start)}' AND '{_rfc3339(end)}'", sql
    )
    rendered = (
        rendered.replace("${symbol:sqlstring}", quoted)
        .replace("$__from", str(start))
        .replace("$__to", str(end))
    )
    assert "$" not in rendered, f"an unknown placeholder is left: {rendered}"
    return rendered


def plain(value: Any) -> Any:
    """A PostgreSQL value as the SQLite plugin's query gives it (the figures' common form)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def reader_connection() -> Any:
    """A connection to the test database as Grafana's read-only role."""
    import psycopg

    params = connection.settings_dict
    return psycopg.connect(
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        dbname=params["NAME"],
        user="grafana_reader",
        password=READER_PASSWORD,
        autocommit=True,
    )


def execute(database: Path | None, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of ``sql`` as Grafana's data source runs it: read-only."""
    if POSTGRES:
        with reader_connection() as reader, reader.cursor() as cursor:
            cursor.execute(sql.encode())
            columns = [column.name for column in cursor.description or ()]
            return columns, cursor.fetchall()
    # As the SQLite data source opens it: read-only (see the data source YAML).
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as reader:
        cursor = reader.execute(sql)
        return [column[0] for column in cursor.description], cursor.fetchall()


def run(database: Path | None, sql: str, **kwargs: Any) -> list[tuple[Any, ...]]:
    _, rows = execute(database, render(sql, **kwargs))
    return [tuple(plain(value) for value in row) for row in rows] if POSTGRES else rows


def make_reader_role() -> None:
    """What grafana/postgres/grafana_reader.sh does when the postgres service first starts,
    on the test database (its SQL, with psql's variables filled in)."""
    script = READER_SCRIPT.read_text()
    sql = script.split("<<'SQL'\n", 1)[1].split("\nSQL\n", 1)[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, current_database()")
        owner, database = cursor.fetchone()
    sql = (
        sql.replace(":'reader_password'", "'" + READER_PASSWORD + "'")
        .replace(':"owner"', '"' + owner + '"')
        .replace(':"DBNAME"', '"' + database + '"')
    )
    assert ":" not in re.sub(r"::\w+", "", sql), f"a psql variable is left: {sql}"
    with connection.cursor() as cursor:
        # A role is the server's, not one database's: an earlier run's may be there (the
        # script itself runs once, on a new server). Then it is given this password instead.
        exists = _role_exists(cursor)
        for statement in filter(str.strip, sql.split(";")):
            if exists and statement.strip().startswith("CREATE ROLE grafana_reader "):
                statement = statement.replace("CREATE ROLE", "ALTER ROLE", 1)
            cursor.execute(statement)
    # What the site's next migrate (at its next start) does once the role is there.
    create_market_views()


def _role_exists(cursor: Any) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader'")
    return cursor.fetchone() is not None


def heartbeat(bot: Bot, at: dt.datetime) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bot.issue_key()[1]}")
    with patch("django.utils.timezone.now", return_value=at):
        assert client.post("/api/v1/heartbeat/", {"status": "trading"}, format="json").status_code in (
            200,
            201,
        )


@pytest.fixture
def database(transactional_db: Any) -> Iterator[Path | None]:
    """Trades and heartbeats posted through the API, committed, in the test database file."""
    alpha = Bot.objects.create(name="alpha")
    fills = [  # external id, symbol, side, quantity, price, P&L, executed at
        ("y1", "AAPL", "SELL", 10, 187.25, 25, "2026-01-14T14:00:00-05:00"),
        # 22:00 in New York on the 14th is already the 15th in UTC: yesterday's trading day.
        ("e1", "NVDA", "SELL", 10, 187.25, 5, "2026-01-14T22:00:00-05:00"),
        ("t1", "TSLA", "SELL", 10, 187.25, 60, "2026-01-15T00:30:00-05:00"),
        ("t2", "AAPL", "BUY", 10, 100, None, "2026-01-15T10:00:00-05:00"),
        ("t3", "AAPL", "SELL", 10, 110, 100, "2026-01-15T11:00:00-05:00"),
        ("t4", "MSFT", "SELL", 5, 400, -40, "2026-01-15T12:00:00-05:00"),
        ("o1", "MSFT", "SELL", 10, 187.25, 1000, "2026-01-10T12:00:00-05:00"),
    ]
    fields = ("external_id", "symbol", "side", "quantity", "price", "pnl", "executed_at")
    trades = [make_trade(**dict(zip(fields, fill, strict=True))) for fill in fills]
    # Strategies: momentum (make_trade's) but for t1's meanrev and e1's none ("").
    trades[1]["strategy"], trades[2]["strategy"] = "", "meanrev"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alpha.issue_key()[1]}")
    assert client.post("/api/v1/trades/", trades, format="json").status_code == 201
    beta = Bot.objects.create(name="beta")
    # The bots' state, before their last heartbeats (bare): alpha reports everything, beta its
    # equity alone; one of alpha's is older than the range (the last 24 hours), one is its host alone.
    state = client_for(alpha)
    post_state(state, NOW - dt.timedelta(hours=25), equity=9000, positions=[], host=host())
    post_state(
        state,
        NOW - dt.timedelta(hours=3),
        equity=10000,
        positions=[position("AAPL", 10, 100, 101), position("TSLA", -2, 200, 210)],  # 10 - 20
        host=host(disk_free=25 * GB, disk_total=50 * GB, memory_available=1 * GB, memory_total=2 * GB),
    )
    post_state(state, NOW - dt.timedelta(hours=2), host=host(disk_free=5 * GB, memory_available=200 * MB))
    post_state(state, NOW - dt.timedelta(hours=1), equity=10050.5, positions=[])
    post_state(client_for(beta), NOW - dt.timedelta(minutes=90), equity=500)
    heartbeat(alpha, NOW - dt.timedelta(seconds=120))
    heartbeat(beta, NOW - dt.timedelta(hours=1))
    Bot.objects.create(name="gamma")
    Bot.objects.create(name="delta", is_active=False)
    if POSTGRES:
        assert connection.vendor == "postgresql", "DATABASE_URL names PostgreSQL but the site runs on SQLite"
        make_reader_role()
        yield None
    else:
        yield Path(connection.settings_dict["NAME"])


@pytest.mark.parametrize("backend", list(PROVISIONING))
def test_the_dashboard_has_the_thirteen_panels_refreshes_every_30s_over_24h(backend: str) -> None:
    board = dashboard(backend)
    assert [(panel["title"], panel["type"]) for panel in board["panels"]] == [
        ("Bot status", "stat"),
        ("Today's P&L", "stat"),
        ("Trades today", "stat"),
        ("Win rate today", "gauge"),
        ("Cumulative P&L", "timeseries"),
        ("Trades by symbol", "piechart"),
        ("Cumulative P&L by strategy", "timeseries"),
        ("Equity", "timeseries"),
        ("Open P&L", "timeseries"),
        ("Host: disk and memory free", "timeseries"),
        ("Bot memory (RSS)", "timeseries"),
        ("Recent trades", "table"),
        ("Live logs", "logs"),
    ]
    assert board["refresh"] == "30s"
    assert board["time"] == {"from": "now-24h", "to": "now"}
    (variable,) = board["templating"]["list"]
    assert variable["name"] == "symbol" and variable["multi"] and variable["includeAll"]
    for title, sql in sql_queries(backend).items():
        leftover = PLACEHOLDERS.sub("", sql)
        assert "$" not in leftover, f"{title}: uses a placeholder the test does not know"
    assert len(sql_queries(backend)) == 13  # twelve panels and the variable
    # No two panels overlap on Grafana's 24-column grid.
    cells = [
        (x, y)
        for panel in board["panels"]
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)) and all(x < 24 for x, _ in cells)


def test_the_postgres_dashboard_mirrors_every_panel_of_the_sqlite_one() -> None:
    """Same panels, places, units and variable; only the data source and its SQL differ."""

    def without_sql(board: dict[str, Any]) -> dict[str, Any]:
        board = json.loads(json.dumps(board))
        for panel in board["panels"]:
            if panel.get("datasource", {}).get("type") in SQL_SOURCES.values():
                panel["datasource"] = "trades"
            panel["targets"] = [
                "sql" if target["datasource"]["type"] in SQL_SOURCES.values() else target
                for target in panel["targets"]
            ]
        for variable in board["templating"]["list"]:
            variable["datasource"] = "trades"
        board.pop("description")
        return board

    sqlite, postgres = dashboard("sqlite"), dashboard("postgres")
    assert without_sql(postgres) == without_sql(sqlite)
    for panel in postgres["panels"]:
        for target in panel["targets"]:
            if target["datasource"]["type"] == SQL_SOURCES["postgres"]:
                assert target["datasource"]["uid"] == "trades-postgres"
                assert target["rawQuery"] and target["editorMode"] == "code"
                assert target["format"] == ("time_series" if panel["type"] == "timeseries" else "table")
    assert postgres["templating"]["list"][0]["datasource"]["uid"] == "trades-postgres"
    # A series per bot (or strategy): the queries answer (time, metric, value) rows, "long" data
    # that the SQLite plugin's "time series" query type splits by metric, as PostgreSQL's
    # time_series format does.
    for panel in sqlite["panels"]:
        if panel["title"] in SERIES_PANELS:
            (target,) = panel["targets"]
            assert target["queryType"] == "time series" and "AS metric" in target["rawQueryText"]


def test_the_dashboards_connection_cannot_write(database: Path | None) -> None:
    """Grafana reads with mode=ro (SQLite) or as grafana_reader (PostgreSQL): no query changes data."""
    for sql in (
        "DELETE FROM trades_trade",
        "UPDATE trades_bot SET name = 'x'",
        "CREATE TABLE grafana_was_here (x int)",
    ):
        with pytest.raises(Exception, match=r"(?i)read-?only|permission denied"):
            execute(database, sql)
    assert Trade.objects.count() == 7


def test_grafanas_postgresql_role_reads_the_dashboards_tables_and_no_secret(
    tmp_path: Path, postgres_server: str
) -> None:
    """grafana_reader may read what the dashboard shows, and not the channels' webhook URLs and
    tokens, the users, the sessions or the API keys (runs on both runs: the SQLite run starts
    a PostgreSQL of its own)."""
    import psycopg

    url = urlunsplit(urlsplit(postgres_server)._replace(path="/grafana_role"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS grafana_role WITH (FORCE)")
        admin.execute("CREATE DATABASE grafana_role")
    env = site_env(tmp_path, DATABASE_URL=url, REDIS_URL="")
    script = READER_SCRIPT.read_text().split("<<'SQL'\n", 1)[1].split("\nSQL\n", 1)[0]
    with psycopg.connect(url, autocommit=True) as owner:
        exists = owner.execute("SELECT 1 FROM pg_roles WHERE rolname = 'grafana_reader'").fetchone()
        for statement in filter(str.strip, script.split(";")):
            statement = statement.replace(":'reader_password'", f"'{READER_PASSWORD}'")
            statement = statement.replace(':"DBNAME"', "grafana_role")
            if exists and statement.strip().startswith("CREATE ROLE"):
                statement = statement.replace("CREATE ROLE", "ALTER ROLE", 1)
            owner.execute(statement)
    manage(env, "migrate", "--noinput")  # as each start of the site does: it grants the reads
    server = urlsplit(url)
    reader_url = urlunsplit(
        server._replace(netloc=f"grafana_reader:{READER_PASSWORD}@{server.hostname}:{server.port}")
    )
    with psycopg.connect(reader_url, autocommit=True) as reader:
        for table in ("trades_trade", "trades_bot", "trades_botsnapshot", "market_utc_offsets"):
            reader.execute(f"SELECT * FROM {table} LIMIT 1")
        for table in ("alerts_channel", "auth_user", "django_session", "rest_framework_api_key_apikey"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute(f"SELECT * FROM {table} LIMIT 1")
    # The role is the server's: another database migrated only part of the way (before the
    # snapshots' table exists) grants what it has and goes on.
    early_url = urlunsplit(urlsplit(postgres_server)._replace(path="/grafana_role_early"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS grafana_role_early WITH (FORCE)")
        admin.execute("CREATE DATABASE grafana_role_early")
    early = site_env(tmp_path / "early", DATABASE_URL=early_url, REDIS_URL="")
    manage(early, "migrate", "trades", "0001_initial", "--noinput")
    manage(early, "migrate", "--noinput")


def test_every_sql_query_gives_the_known_figures(database: Path | None) -> None:
    def query(title: str) -> Any:
        return lambda **kw: run(database, sql_queries()[title], **{"symbols": ALL_SYMBOLS, **kw})

    q = {title: query(title) for title in sql_queries()}

    assert q["variable symbol"]() == [(s,) for s in ALL_SYMBOLS]
    assert [(bot, state) for bot, state, *_ in q["Bot status"]()] == [
        ("alpha", "RUNNING"),
        ("beta", "STOPPED"),
        ("delta", "INACTIVE"),
        ("gamma", "NO HEARTBEAT"),
    ]
    alpha = q["Bot status"]()[0]
    assert alpha[2] == int((NOW - dt.timedelta(seconds=120)).timestamp()) and alpha[3] == "trading"

    # Today is the 15th in New York: t1..t4. Not y1 and not e1 (the 14th there), not o1.
    assert q["Today's P&L"]() == [(pytest.approx(120),)]
    assert q["Trades today"]() == [(4,)]
    assert q["Win rate today"]() == [(pytest.approx(66.67),)]
    assert q["Today's P&L"](symbols=["AAPL"]) == [(pytest.approx(100),)]
    assert q["Trades today"](symbols=["AAPL"]) == [(2,)]
    assert q["Win rate today"](symbols=["AAPL"]) == [(pytest.approx(100),)]
    assert q["Win rate today"](symbols=["NVDA"]) == [(None,)]  # nothing closed: empty, not 0

    def epoch(text: str) -> int:
        return int(dt.datetime.fromisoformat(text).timestamp())

    # The last 24 hours: from 20:00 UTC on the 14th, so e1 is in and y1 is not.
    assert q["Cumulative P&L"]() == [
        (epoch("2026-01-14T22:00:00-05:00"), pytest.approx(5)),
        (epoch("2026-01-15T00:30:00-05:00"), pytest.approx(65)),
        (epoch("2026-01-15T11:00:00-05:00"), pytest.approx(165)),
        (epoch("2026-01-15T12:00:00-05:00"), pytest.approx(125)),
    ]
    assert q["Cumulative P&L"](symbols=["AAPL"]) == [(epoch("2026-01-15T11:00:00-05:00"), pytest.approx(100))]
    assert q["Trades by symbol"]() == [("AAPL", 2), ("MSFT", 1), ("NVDA", 1), ("TSLA", 1)]

    # A line per strategy, each its own running sum (t2 is an opening fill: no point).
    assert q["Cumulative P&L by strategy"]() == [
        (epoch("2026-01-14T22:00:00-05:00"), "(none)", pytest.approx(5)),
        (epoch("2026-01-15T00:30:00-05:00"), "meanrev", pytest.approx(60)),
        (epoch("2026-01-15T11:00:00-05:00"), "momentum", pytest.approx(100)),
        (epoch("2026-01-15T12:00:00-05:00"), "momentum", pytest.approx(60)),
    ]
    assert q["Cumulative P&L by strategy"](symbols=["MSFT"]) == [
        (epoch("2026-01-15T12:00:00-05:00"), "momentum", pytest.approx(-40))
    ]

    recent = q["Recent trades"]()
    assert [(row[0], row[1], row[2], row[3]) for row in recent] == [
        (epoch("2026-01-15T12:00:00-05:00"), "alpha", "MSFT", "SELL"),
        (epoch("2026-01-15T11:00:00-05:00"), "alpha", "AAPL", "SELL"),
        (epoch("2026-01-15T10:00:00-05:00"), "alpha", "AAPL", "BUY"),
        (epoch("2026-01-15T00:30:00-05:00"), "alpha", "TSLA", "SELL"),
        (epoch("2026-01-14T22:00:00-05:00"), "alpha", "NVDA", "SELL"),
    ]
    assert recent[0][4:] == (
        pytest.approx(5),
        pytest.approx(400),
        pytest.approx(2000),
        pytest.approx(-40),
        "momentum",
    )
    assert recent[2][7] is None  # an opening fill has no P&L

    # An earlier range moves "today" with its end: the 14th in New York.
    earlier = {"start": FROM_MS - 24 * 3600 * 1000, "end": FROM_MS}
    assert q["Today's P&L"](**earlier) == [(pytest.approx(30),)]  # y1 25 + e1 5
    assert q["Cumulative P&L by strategy"](**earlier) == [
        (epoch("2026-01-14T14:00:00-05:00"), "momentum", pytest.approx(25))
    ]

    # The bots' state over the range, a series per bot (its name the series' "metric").
    def ago(**delta: float) -> int:
        return int((NOW - dt.timedelta(**delta)).timestamp())

    assert q["Equity"]() == [
        (ago(hours=3), "alpha", pytest.approx(10000)),
        (ago(minutes=90), "beta", pytest.approx(500)),
        (ago(hours=1), "alpha", pytest.approx(10050.5)),
    ]
    assert q["Open P&L"]() == [(ago(hours=3), "alpha", pytest.approx(-10)), (ago(hours=1), "alpha", 0)]
    assert q["Host: disk and memory free"]() == [
        (ago(hours=3), "alpha disk free", pytest.approx(50)),
        (ago(hours=3), "alpha memory available", pytest.approx(50)),
        (ago(hours=2), "alpha disk free", pytest.approx(10)),
        (ago(hours=2), "alpha memory available", pytest.approx(100 * 200 / 2048)),
    ]
    assert q["Bot memory (RSS)"]() == [(ago(hours=3), "alpha", 120 * MB), (ago(hours=2), "alpha", 120 * MB)]
    # The day before: alpha's first snapshot alone.
    assert q["Equity"](**earlier) == [(ago(hours=25), "alpha", pytest.approx(9000))]


def test_queries_run_on_an_empty_database(database: Path | None) -> None:
    with connection.cursor() as writer:
        writer.execute("DELETE FROM trades_trade")
    for sql in sql_queries().values():
        run(database, sql, symbols=[])  # Grafana renders "All" of no values as nothing: IN ()


def test_time_columns_come_back_as_times_grafana_reads(database: Path | None) -> None:
    """SQLite: Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' text, which the plugin cannot parse
    as a time, so the queries give unix seconds. PostgreSQL: the columns are timestamptz, which
    Grafana's data source reads as times itself."""
    checked = 0
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            if target["datasource"]["type"] != SQL_SOURCES[BACKEND]:
                continue
            columns, rows = execute(database, render(query_text(target), symbols=ALL_SYMBOLS))
            names = (
                target["timeColumns"]
                if not POSTGRES
                else [c for c in columns if c in ("time", "last_heartbeat")]
            )
            for name in names:
                assert name in columns, f"{panel['title']}: no column {name}"
                values = [row[columns.index(name)] for row in rows if row[columns.index(name)] is not None]
                if POSTGRES:
                    assert values and all(isinstance(v, dt.datetime) and v.tzinfo for v in values), panel[
                        "title"
                    ]
                else:
                    assert values and all(isinstance(v, int) and v > 1_500_000_000 for v in values), panel[
                        "title"
                    ]
                checked += 1
    assert checked == 8  # Bot status, both cumulative P&Ls, Recent trades and the four state panels


@pytest.mark.parametrize(
    ("zone", "moments"),
    [
        (
            "America/New_York",
            # Around the spring and autumn clock changes and the late-evening hours.
            ["2026-03-08T04:59:59Z", "2026-03-08T05:00:00Z", "2026-03-09T03:59:59Z", "2026-03-09T04:00:00Z",
             "2026-11-01T04:30:00Z", "2026-11-02T04:59:59Z", "2026-11-02T05:00:00Z", "2026-07-04T03:30:00Z"],
        ),
        ("Asia/Tokyo", ["2026-01-15T14:59:59Z", "2026-01-15T15:00:00Z"]),
        ("Europe/London", ["2026-03-29T00:59:59Z", "2026-03-29T01:00:00Z", "2026-10-25T23:30:00Z"]),
    ],
)  # fmt: skip
def test_today_is_the_trading_day_in_the_market_time_zone(
    transactional_db: Any, settings: Any, zone: str, moments: list[str]
) -> None:
    original = settings.MARKET_TIMEZONE
    settings.MARKET_TIMEZONE = zone
    create_market_views()
    if POSTGRES:
        make_reader_role()
    try:
        today_sql = sql_queries()["Trades today"].split("SELECT COUNT")[0] + "SELECT today FROM market"
        database = None if POSTGRES else Path(connection.settings_dict["NAME"])
        for moment in moments:
            at = dt.datetime.fromisoformat(moment)
            expected = at.astimezone(ZoneInfo(zone)).date().isoformat()
            end = int(at.timestamp() * 1000)
            assert run(database, today_sql, symbols=[], end=end) == [(expected,)], moment
    finally:  # the view lives in the test database, which later tests share
        settings.MARKET_TIMEZONE = original
        create_market_views()


def test_range_queries_use_an_index(database: Path | None) -> None:
    for title in (
        "Cumulative P&L",
        "Cumulative P&L by strategy",
        "Trades by symbol",
        "Recent trades",
        "Today's P&L",
    ):
        if POSTGRES:
            # A handful of rows fit one page, where a scan is cheapest: as on a real table,
            # the planner is asked for its best plan that is not a sequential scan.
            sql = "EXPLAIN " + render(sql_queries()[title], symbols=ALL_SYMBOLS)
            with reader_connection() as reader:
                reader.execute("SET enable_seqscan = off")
                details = " | ".join(row[0] for row in reader.execute(sql.encode()).fetchall())
            assert re.search(
                r"Index (Only )?Scan (Backward )?using trade_\w+ on trades_trade t\b", details
            ), f"{title}: {details}"
            assert not re.search(r"Seq Scan on trades_trade", details), f"{title}: {details}"
            continue
        plan = run(database, "EXPLAIN QUERY PLAN " + sql_queries()[title], symbols=ALL_SYMBOLS)
        details = " | ".join(row[-1] for row in plan)
        assert re.search(r"SEARCH t USING (COVERING )?INDEX", details), f"{title}: {details}"


def test_state_panels_read_the_snapshots_index_bot_by_bot(database: Path | None) -> None:
    """Each state panel walks a (bot, taken_at) index over the range for each bot, never every
    snapshot a bot has kept (90 days of them): the one of every snapshot, or for a panel of
    positions, the account or the host the one of the snapshots that reported them."""
    for title in STATE_PANELS:
        if POSTGRES:
            sql = "EXPLAIN " + render(sql_queries()[title], symbols=ALL_SYMBOLS)
            with reader_connection() as reader:
                reader.execute("SET enable_seqscan = off")
                details = " | ".join(row[0] for row in reader.execute(sql.encode()).fetchall())
            scan = r"Index Scan using snapshot_bot_(positions_|account_|host_)?time"
            assert re.search(scan + r" on trades_botsnapshot s\b", details), f"{title}: {details}"
            assert re.search(r"Index Cond: \(\(bot_id = b\.id\) AND \(taken_at >= ", details), (
                f"{title}: {details}"
            )
            assert not re.search(r"Seq Scan on trades_botsnapshot", details), f"{title}: {details}"
            continue
        plan = run(database, "EXPLAIN QUERY PLAN " + sql_queries()[title], symbols=ALL_SYMBOLS)
        details = " | ".join(row[-1] for row in plan)
        index = r"SEARCH s USING INDEX snapshot_bot_(positions_|account_|host_)?time"
        walk = index + r" \(bot_id=\? AND taken_at>\? AND taken_at<\?\)"
        assert re.search(walk, details), f"{title}: {details}"
        assert "SCAN s" not in details, f"{title}: {details}"


# --- the logs panel -------------------------------------------------------------------


def emitted_labels() -> set[str]:
    """The label names the logging setup puts on a record that carries every optional one."""
    record = logging.LogRecord("bot.orders", logging.INFO, __file__, 1, "x", None, None)
    record.strategy, record.symbol = "momentum", "AAPL"
    return set(LokiEmitter("http://loki", {"application": "trading-bot"}).build_tags(record))


def applications() -> set[str]:
    from django.conf import settings

    return {
        inspect.signature(setup_logging).parameters["application"].default,
        settings.LOGGING["handlers"]["file"]["application"],
    }


def test_logql_queries_name_only_labels_the_logging_setup_emits() -> None:
    exprs = [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel["targets"]
        if target["datasource"]["type"] == "loki"
    ]
    assert exprs
    assert emitted_labels() == {"application", "level", "logger", "strategy", "symbol"}
    for expr in exprs:
        selector = re.fullmatch(r"\{(.*)\}.*", expr, re.S)
        assert selector, expr
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', selector.group(1))
        assert matchers, expr
        for name, _operator, value in matchers:
            assert name in emitted_labels(), f"{expr}: {name} is not a label the setup emits"
            if name == "application":
                matched = {app for app in applications() if re.fullmatch(value, app)}
                assert matched == applications(), f"{expr} misses {applications() - matched}"


# --- provisioning files -----------------------------------------------------------------


@pytest.mark.parametrize("backend", list(PROVISIONING))
def test_datasources_point_at_loki_and_the_read_only_database(backend: str) -> None:
    (config,) = [
        yaml.safe_load(path.read_text()) for path in (PROVISIONING[backend] / "datasources").glob("*.yaml")
    ]
    by_uid = {source["uid"]: source for source in config["datasources"]}
    assert by_uid["loki"]["url"] == "http://loki:3100"
    if backend == "sqlite":
        assert by_uid["trades-sqlite"]["type"] == "frser-sqlite-datasource"
        assert by_uid["trades-sqlite"]["jsonData"]["pathOptions"] == "mode=ro"
    else:
        source = by_uid["trades-postgres"]
        assert source["type"] == "grafana-postgresql-datasource"
        # The compose service, the role the init script makes, its password from the environment.
        assert source["url"] == "postgres:5432" and source["jsonData"]["database"] == "monitor"
        assert (
            source["user"] == "grafana_reader" and "CREATE ROLE grafana_reader" in READER_SCRIPT.read_text()
        )
        assert source["secureJsonData"]["password"] == "$GRAFANA_DB_PASSWORD"
    used = {
        target["datasource"]["uid"] for panel in dashboard(backend)["panels"] for target in panel["targets"]
    } | {variable["datasource"]["uid"] for variable in dashboard(backend)["templating"]["list"]}
    assert used == set(by_uid)
    provider = yaml.safe_load((PROVISIONING[backend] / "dashboards/dashboard.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/provisioning/dashboards"
