"""Ingestion and query benchmark of the trades API, SQLite and PostgreSQL side by side (docs/benchmarks.md).

Run as ``.venv/bin/python bench/ingest.py [--quick] [--backend sqlite,postgres]`` from anywhere.
For each backend it starts its own web server (``python -m monitorsite.serve``) on 127.0.0.1:
over a throwaway SQLite database in a temp dir, and over a throwaway PostgreSQL database with
the Redis broker (both servers started by scripts/_services.sh, as the tests do, and stopped at
the end). It measures four things and prints each figure next to a baseline measured in the
same run, because the machine is shared and absolute numbers drift from one run to the next:

1. bulk ingestion (batches of 1000) against each backend's own raw ``executemany``;
2. single-trade posts from 4 client processes, with WEB_PROCESSES 1 and 2, against
   ``GET /api/v1/health/``;
3. trade queries and the daily summary over ~1M stored trades against the same
   health request;
4. batches into that loaded table.

Targets are reported as PASS/FAIL; a missed target does not change the exit status
(0), only a broken run does (1, or 130 when interrupted).

Client processes use only the standard library (bench/common.py), so that they start fast
and nothing there is shared with the code under test; this parent process also uses
psycopg for PostgreSQL's raw baseline and bulk load.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import psycopg
from common import (
    HEALTH,
    HOST,
    MARKET_TZ_NAME,
    REQUEST_TIMEOUT_S,
    ROOT,
    ClientJob,
    RunResult,
    Server,
    code_version,
    connect,
    free_port,
    get,
    insert_sql,
    machine_line,
    new_site_with_bot,
    percentile,
    run_as_script,
    run_clients,
    site_env,
    stop_clients,
    verdict,
)

MARKET_TZ = ZoneInfo(MARKET_TZ_NAME)
UTC = dt.UTC

TRADES = "/api/v1/trades/"
SUMMARY = "/api/v1/summary/daily/"
BASELINE = "health (baseline)"

BATCH = 1000
SINGLE_CLIENTS = 4
TRADING_DAYS = 250
SYMBOLS = "AAPL MSFT NVDA AMZN GOOGL META TSLA AMD NFLX JPM BAC XOM CVX KO PEP WMT DIS INTC CSCO ORCL".split()
STRATEGIES = ("momentum", "mean_reversion", "breakout", "pairs", "vwap")
SESSION_MS = int(6.5 * 3600 * 1000)  # 09:30 to 16:00 in New York

# What the site must reach; a miss prints FAIL.
BULK_TARGET_RATIO = 0.40
SINGLE_TARGET_RATE = 500.0
SINGLE_TARGET_P99_MS = 50.0
QUERY_TARGET_MS = 20.0
SUMMARY_TARGET_X_HEALTH = 5.0

BACKENDS = ("sqlite", "postgres")
# Part 2 runs each backend's server with each of these.
SINGLE_WEB_PROCESSES = ("1", "2")

BULK_TIME_LIMIT_S = 300.0
QUERY_TIME_LIMIT_S = 300.0
# Single-trade clients stop at this many requests per second of run time, far above
# what 2 cores can serve, so the time limit is what normally ends the run.
SINGLE_MAX_RATE_PER_CLIENT = 2500

# A stored trade as column name -> value; put in the migrated table's column order by ``params``.
Row = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """How much work each part does; ``--quick`` is a smoke test, not a measurement."""

    bulk_batches: int  # per client configuration (1 and 2 clients)
    single_seconds: float
    query_rows: int
    query_repeats: int


FULL = Plan(bulk_batches=30, single_seconds=20.0, query_rows=1_000_000, query_repeats=40)
QUICK = Plan(bulk_batches=6, single_seconds=5.0, query_rows=100_000, query_repeats=30)


# --------------------------------------------------------------------------- data


def trading_days(count: int, today: dt.date) -> list[dt.date]:
    """The ``count`` weekdays before ``today``, oldest first (holidays are ignored)."""
    days: list[dt.date] = []
    day = today
    while len(days) < count:
        day -= dt.timedelta(days=1)
        if day.weekday() < 5:
            days.append(day)
    return days[::-1]


def session_open_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(9, 30), tzinfo=MARKET_TZ).astimezone(UTC)


def db_datetime(moment: dt.datetime) -> str:
    """A UTC datetime as Django's SQLite backend stores it."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


@dataclass
class Fill:
    """The fields of one random trade, shared by the API body and the raw row."""

    symbol: str
    side: str
    quantity: int
    price: float
    strategy: str
    pnl: float | None
    executed_at: dt.datetime
    trading_day: dt.date


class TradeFactory:
    """Random but realistic trades: fixed symbols and strategies, prices near a base per symbol."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.base_price = {s: self.rng.uniform(10, 900) for s in SYMBOLS}

    def fills(self, day: dt.date, count: int) -> list[Fill]:
        """``count`` fills during ``day``'s session, in time order."""
        rng = self.rng
        opens = session_open_utc(day)
        out = []
        for ms in sorted(rng.randrange(SESSION_MS) for _ in range(count)):
            symbol = rng.choice(SYMBOLS)
            out.append(
                Fill(
                    symbol=symbol,
                    side="BUY" if rng.random() < 0.5 else "SELL",
                    quantity=rng.randint(1, 500),
                    price=round(self.base_price[symbol] * rng.uniform(0.95, 1.05), 2),
                    strategy=rng.choice(STRATEGIES),
                    pnl=round(rng.gauss(0, 60), 2) if rng.random() < 0.5 else None,
                    executed_at=opens + dt.timedelta(milliseconds=ms),
                    trading_day=day,
                )
            )
        return out


# What one real bot sends: a handful of symbols and strategies, fills in time order,
# each batch continuing where the last one stopped.
BOT_SYMBOLS = ("AAPL", "MSFT", "NVDA", "SPY", "QQQ")
BOT_STRATEGIES = ("momentum", "mean_reversion")


class BotSession:
    """Fills as one bot makes them: time moves forward across batches, a few symbols, round prices."""

    def __init__(self, seed: int, day: dt.date) -> None:
        self.rng = random.Random(seed)
        self.clock = session_open_utc(day)
        self.day = day
        self.price = {s: self.rng.uniform(50, 500) for s in BOT_SYMBOLS}

    def fills(self, count: int) -> list[Fill]:
        rng = self.rng
        out = []
        for _ in range(count):
            self.clock += dt.timedelta(milliseconds=rng.randint(5, 25))
            symbol = rng.choice(BOT_SYMBOLS)
            self.price[symbol] *= 1 + rng.gauss(0, 0.0005)
            closing = rng.random() < 0.5
            out.append(
                Fill(
                    symbol=symbol,
                    side="SELL" if closing else "BUY",
                    quantity=rng.randint(1, 200),
                    price=round(self.price[symbol], 2),
                    strategy=rng.choice(BOT_STRATEGIES),
                    pnl=round(rng.gauss(0, 40), 2) if closing else None,
                    executed_at=self.clock,
                    trading_day=self.day,
                )
            )
        return out


def fill_fields(external_id: str, fill: Fill) -> dict[str, Any]:
    """What the request and the stored row say alike about ``fill``."""
    return {
        "external_id": external_id,
        "symbol": fill.symbol,
        "side": fill.side,
        "quantity": fill.quantity,
        "price": fill.price,
        "strategy": fill.strategy,
        "pnl": fill.pnl,
    }


def api_trade(external_id: str, fill: Fill) -> dict[str, Any]:
    return {
        **fill_fields(external_id, fill),
        "executed_at": fill.executed_at.isoformat(timespec="milliseconds"),
        "metadata": {},
    }


def db_row(external_id: str, fill: Fill, received_at: str, bot_id: int) -> Row:
    """The row the site stores for ``fill`` (decimals as numbers, JSON as text)."""
    return {
        **fill_fields(external_id, fill),
        "executed_at": db_datetime(fill.executed_at),
        "trading_day": fill.trading_day.isoformat(),
        "metadata": "{}",
        "received_at": received_at,
        "bot_id": bot_id,
    }


@dataclass
class BulkBatch:
    body: bytes
    rows: list[Row]


def bulk_batches(
    factory: TradeFactory | BotSession, prefix: str, count: int, days: list[dt.date], bot_id: int
) -> list[BulkBatch]:
    """``count`` batches of distinct trades in time order, each as a request body and as raw rows.

    From a ``TradeFactory``: each batch on one of ``days`` in turn, 20 symbols and 5 strategies at
    random (indexes written all over). From a ``BotSession``: what one bot sends over a day.
    """
    received_at = db_datetime(dt.datetime.now(UTC))
    batches = []
    for number in range(count):
        if isinstance(factory, BotSession):
            fills = factory.fills(BATCH)
        else:
            fills = factory.fills(days[number % len(days)], BATCH)
        trades, rows = [], []
        for i, fill in enumerate(fills):
            external_id = f"{prefix}-{number:05d}-{i:04d}"
            trades.append(api_trade(external_id, fill))
            rows.append(db_row(external_id, fill, received_at, bot_id))
        batches.append(BulkBatch(json.dumps(trades, separators=(",", ":")).encode(), rows))
    return batches


def history_rows(factory: TradeFactory, days: list[dt.date], total: int, bot_id: int) -> Iterator[list[Row]]:
    """``total`` rows spread evenly over ``days``, one list per day, oldest first."""
    per_day, extra = divmod(total, len(days))
    for index, day in enumerate(days):
        count = per_day + (1 if index < extra else 0)
        rows = []
        for i, fill in enumerate(factory.fills(day, count)):
            # Received a moment after the fill, as from a bot posting as it trades.
            received = fill.executed_at + dt.timedelta(milliseconds=150)
            rows.append(db_row(f"hist-{day:%Y%m%d}-{i:05d}", fill, db_datetime(received), bot_id))
        yield rows


# --------------------------------------------------------------------------- backends


class SqliteStore:
    """The SQLite site's file, and the raw baseline: plain ``sqlite3`` into a copy of its table."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.site_db = folder / "trades.db"
        self.raw: sqlite3.Connection | None = None

    def site_env(self, env: dict[str, str]) -> dict[str, str]:
        return env

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}, {self.site_db}"

    def bot_id(self) -> int:
        with contextlib.closing(sqlite3.connect(self.site_db)) as conn:
            return int(conn.execute("SELECT id FROM trades_bot WHERE name = 'bench'").fetchone()[0])

    def prepare_raw(self) -> None:
        self.raw = make_raw_db(self.site_db, self.folder / "raw.db")

    def raw_pair(self, label: str, batches: Sequence[BulkBatch], site: Callable[[], RunResult]) -> RawPair:
        """Raw inserts before and after ``site()``, into two copies of the table in the same state."""
        assert self.raw is not None
        spare_path = self.folder / f"raw-{label}-after.db"
        with contextlib.closing(sqlite3.connect(spare_path)) as spare:
            self.raw.backup(spare)
        before = sqlite_raw_insert(self.raw, batches)
        run = site()
        with contextlib.closing(connect(spare_path)) as spare:
            after = sqlite_raw_insert(spare, batches)
        spare_path.unlink()
        return RawPair(before, after, run)

    def count_rows(self, bot_id: int, prefix: str) -> int:
        with contextlib.closing(sqlite3.connect(self.site_db, timeout=30)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM trades_trade WHERE bot_id = ? AND external_id >= ? AND external_id < ?",
                (bot_id, f"{prefix}-", f"{prefix}."),  # '.' sorts right after '-'
            ).fetchone()
        return int(row[0])

    def load_history(self, days: Iterator[list[Row]]) -> int:
        stored = 0
        with contextlib.closing(connect(self.site_db)) as conn:
            pending: list[Row] = []
            for rows in days:
                pending.extend(rows)
                if len(pending) >= 50_000:
                    insert_rows(conn, pending)
                    stored += len(pending)
                    pending = []
            if pending:
                insert_rows(conn, pending)
                stored += len(pending)
            # Leave the file as a long-running site would have it, not with a large WAL to search.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return stored

    def counts(self, bot_id: int, day: dt.date) -> tuple[int, int]:
        """Trades in the table, and the bot's on ``day``."""
        with contextlib.closing(sqlite3.connect(self.site_db, timeout=30)) as conn:
            total = conn.execute("SELECT count(*) FROM trades_trade").fetchone()[0]
            on_day = conn.execute(
                "SELECT count(*) FROM trades_trade WHERE bot_id = ? AND trading_day = ?",
                (bot_id, day.isoformat()),
            ).fetchone()[0]
        return int(total), int(on_day)

    def loaded_raw_seconds(self, batches: Sequence[BulkBatch]) -> float:
        """Raw insert of ``batches`` into a copy of the loaded database."""
        copy_path = self.folder / "loaded-raw.db"
        with (
            contextlib.closing(sqlite3.connect(self.site_db)) as site,
            contextlib.closing(sqlite3.connect(copy_path)) as copy,
        ):
            site.backup(copy)
        with contextlib.closing(connect(copy_path)) as copy:
            seconds = sqlite_raw_insert(copy, batches)
        copy_path.unlink()
        return seconds

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()


def insert_rows(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """One ``executemany`` of ``rows`` in one immediate transaction, columns from the migrated schema.

    A column the site has and ``db_row`` lacks is a ``KeyError`` here, not a silently different table.
    """
    sql, columns = insert_sql(conn, "trades_trade")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, [tuple(row[c] for c in columns) for row in rows])
    conn.execute("COMMIT")


def make_raw_db(site_db: Path, raw_db: Path) -> sqlite3.Connection:
    """A separate database with the site's trades_trade (table and indexes) and the bot rows it references."""
    with contextlib.closing(sqlite3.connect(site_db)) as site:
        tables = site.execute(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name IN ('trades_bot', 'trades_trade')"
            " ORDER BY name = 'trades_trade'"
        ).fetchall()
        indexes = site.execute(
            "SELECT sql FROM sqlite_master WHERE type='index' AND tbl_name='trades_trade' AND sql IS NOT NULL"
        ).fetchall()
        bots = site.execute("SELECT * FROM trades_bot").fetchall()
    raw = connect(raw_db)
    for (sql,) in [*tables, *indexes]:
        raw.execute(sql)
    raw.executemany(f"INSERT INTO trades_bot VALUES ({','.join('?' * len(bots[0]))})", bots)
    return raw


def sqlite_raw_insert(raw: sqlite3.Connection, batches: Sequence[BulkBatch]) -> float:
    """Seconds to store ``batches`` with one executemany and commit each."""
    sql, columns = insert_sql(raw, "trades_trade")
    params = [[tuple(row[c] for c in columns) for row in batch.rows] for batch in batches]
    t0 = time.perf_counter()
    for rows in params:
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany(sql, rows)
        raw.execute("COMMIT")
    return time.perf_counter() - t0


def pg_value(column: str, value: Any) -> Any:
    """``db_row``'s SQLite text as the Python value psycopg sends for that column, as the site does."""
    if value is None:
        return None
    if column in ("executed_at", "received_at"):
        return dt.datetime.fromisoformat(value).replace(tzinfo=UTC)
    if column == "trading_day":
        return dt.date.fromisoformat(value)
    return value


class PostgresStore:
    """The PostgreSQL site's database, and the raw baseline: psycopg 3 ``executemany`` of a plain
    INSERT into the migrated ``trades_trade`` of other databases on the same server.

    The raw databases are copies (``CREATE DATABASE ... TEMPLATE``) of the site's, made right after
    ``migrate`` and ``create_bot``: the same schema, indexes and bot.
    """

    name = "postgres"

    def __init__(self, database_url: str, redis_url: str) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.raw_before: Any = None
        self.raw_after: Any = None

    def url(self, database: str) -> str:
        return urlunsplit(urlsplit(self.database_url)._replace(path=f"/{database}"))

    def site_env(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url}

    def describe(self) -> str:
        with psycopg.connect(self.database_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        where = urlsplit(self.database_url)
        return f"PostgreSQL {version} at {where.hostname}:{where.port}{where.path}, Redis broker"

    def site(self) -> Any:
        return psycopg.connect(self.database_url, autocommit=True)

    def bot_id(self) -> int:
        with self.site() as conn:
            return int(conn.execute("SELECT id FROM trades_bot WHERE name = 'bench'").fetchone()[0])

    def prepare_raw(self) -> None:
        site_name = urlsplit(self.database_url).path.lstrip("/")
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            for name in ("raw_before", "raw_after"):
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{site_name}"')
        self.raw_before = psycopg.connect(self.url("raw_before"), autocommit=True)
        self.raw_after = psycopg.connect(self.url("raw_after"), autocommit=True)

    def raw_pair(self, label: str, batches: Sequence[BulkBatch], site: Callable[[], RunResult]) -> RawPair:
        """Raw inserts before and after ``site()``, into two databases that get the same rows in turn."""
        before = pg_raw_insert(self.raw_before, batches)
        run = site()
        after = pg_raw_insert(self.raw_after, batches)
        return RawPair(before, after, run)

    def count_rows(self, bot_id: int, prefix: str) -> int:
        with self.site() as conn:
            row = conn.execute(
                "SELECT count(*) FROM trades_trade"
                " WHERE bot_id = %s AND external_id >= %s AND external_id < %s",
                (bot_id, f"{prefix}-", f"{prefix}."),
            ).fetchone()
        return int(row[0])

    def load_history(self, days: Iterator[list[Row]]) -> int:
        """COPY, a transaction per day; then VACUUM ANALYZE, as autovacuum leaves a long-running site."""
        stored = 0
        with self.site() as conn:
            columns = pg_columns(conn)
            names = ", ".join(f'"{c}"' for c in columns)
            for rows in days:
                with (
                    conn.transaction(),
                    conn.cursor().copy(f"COPY trades_trade ({names}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row([pg_value(c, row[c]) for c in columns])
                stored += len(rows)
            conn.execute("VACUUM ANALYZE trades_trade")
        return stored

    def counts(self, bot_id: int, day: dt.date) -> tuple[int, int]:
        with self.site() as conn:
            total = conn.execute("SELECT count(*) FROM trades_trade").fetchone()[0]
            on_day = conn.execute(
                "SELECT count(*) FROM trades_trade WHERE bot_id = %s AND trading_day = %s", (bot_id, day)
            ).fetchone()[0]
        return int(total), int(on_day)

    def loaded_raw_seconds(self, batches: Sequence[BulkBatch]) -> float:
        """Raw insert of ``batches`` into the loaded site table itself, each batch rolled back after timing.

        A copy of a 1M-row database cannot be made while the site is connected to it; the
        rolled-back rows leave only dead tuples, which the site's inserts then skip over.
        """
        with self.site() as conn:
            columns = pg_columns(conn)
            sql = pg_insert_sql(columns)
            params = [[[pg_value(c, row[c]) for c in columns] for row in b.rows] for b in batches]
            seconds = 0.0
            for rows in params:
                conn.execute("BEGIN")
                t0 = time.perf_counter()
                with conn.cursor() as cur:
                    cur.executemany(sql, rows)
                seconds += time.perf_counter() - t0
                conn.execute("ROLLBACK")
        return seconds

    def close(self) -> None:
        for conn in (self.raw_before, self.raw_after):
            if conn is not None:
                conn.close()


def pg_columns(conn: Any) -> list[str]:
    """Every column of the migrated ``trades_trade`` but ``id``, in table order."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = 'trades_trade' AND column_name <> 'id' ORDER BY ordinal_position"
    ).fetchall()
    return [r[0] for r in rows]


def pg_insert_sql(columns: list[str]) -> str:
    quoted = ", ".join(f'"{c}"' for c in columns)
    return f"INSERT INTO trades_trade ({quoted}) VALUES ({', '.join(['%s'] * len(columns))})"


def pg_raw_insert(conn: Any, batches: Sequence[BulkBatch]) -> float:
    """Seconds to store ``batches`` with one ``cursor.executemany`` and commit each."""
    columns = pg_columns(conn)
    sql = pg_insert_sql(columns)
    params = [[[pg_value(c, row[c]) for c in columns] for row in b.rows] for b in batches]
    t0 = time.perf_counter()
    for rows in params:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)
    return time.perf_counter() - t0


@dataclass
class RawPair:
    before_s: float
    after_s: float
    run: RunResult


Store = SqliteStore | PostgresStore


def start_services(folder: Path) -> tuple[str, str]:
    """A throw-away PostgreSQL and redis-server (scripts/_services.sh); their URLs."""
    script = f'source scripts/_services.sh && start_services "{folder}" && echo "$DATABASE_URL $REDIS_URL"'
    started = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if started.returncode != 0 or not started.stdout.strip():
        raise RuntimeError(f"PostgreSQL and Redis did not start:\n{started.stderr[-2000:]}")
    database_url, redis_url = started.stdout.strip().splitlines()[-1].split()
    return database_url, redis_url


def stop_services(folder: Path) -> None:
    subprocess.run(
        ["bash", "-c", f'source scripts/_services.sh && stop_services "{folder}"'],
        cwd=ROOT,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------- parts


@dataclass
class Context:
    """One backend's site: its store, its environment, and the web server running over it."""

    store: Store
    folder: Path
    env: dict[str, str]
    server: Server
    bot_id: int
    key: str
    days: list[dt.date]
    plan: Plan
    web_processes: str | None = None

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def post_headers(self) -> dict[str, str]:
        return {**self.auth, "Content-Type": "application/json"}

    def restart(self, web_processes: str | None) -> None:
        """The web server again, with ``WEB_PROCESSES`` set (or unset: its default)."""
        self.server.stop()
        env = dict(self.env)  # None: as the caller's environment has it
        if web_processes is not None:
            env["WEB_PROCESSES"] = web_processes
        self.web_processes = web_processes
        self.server = Server(env, free_port(), self.folder / f"web-{web_processes or 'default'}.log")
        self.server.wait_ready()
        warm_up(self)


def post_job(ctx: Context, ok_status: int, max_requests: int, seconds: float, **body: Any) -> ClientJob:
    """A client posting trades with the bot's key; ``body`` is ``bodies=[...]`` or ``template=...``."""
    return ClientJob(
        port=ctx.server.port,
        method="POST",
        path=TRADES,
        headers=ctx.post_headers,
        ok_statuses=(ok_status,),
        max_requests=max_requests,
        seconds=seconds,
        **body,
    )


def warm_up(ctx: Context) -> None:
    """A few requests of each kind, so that no worker answers its very first request in a measurement."""
    conn = http.client.HTTPConnection(HOST, ctx.server.port, timeout=REQUEST_TIMEOUT_S)
    factory = TradeFactory(seed=1)
    fills = factory.fills(ctx.days[-1], 40)
    try:
        for i, fill in enumerate(fills):
            body = json.dumps(api_trade(f"warm-{i:04d}", fill)).encode()
            conn.request("POST", TRADES, body=body, headers=ctx.post_headers)
            conn.getresponse().read()
            get(conn, HEALTH, {})
            get(conn, f"{TRADES}?limit=5", ctx.auth)
    finally:
        conn.close()


def part_bulk(ctxs: list[Context]) -> None:
    print(f"\n1. Bulk ingestion: batches of {BATCH} distinct trades, bodies encoded before timing")
    print("   baseline: each backend's own raw executemany + commit per batch, same rows, into a copy of")
    print("   the migrated trades_trade in a separate database, timed before and after the site's run")
    print("   (into two copies in the same state) and averaged. sqlite: sqlite3 (WAL, synchronous=NORMAL,")
    print("   foreign_keys=ON); postgres: psycopg 3 cursor.executemany of a plain INSERT, same server")
    print(
        f"   bot-like (the target): one bot's day, {len(BOT_SYMBOLS)} symbols,"
        f" {len(BOT_STRATEGIES)} strategies, fills in time order across batches;"
    )
    print("   random (no target): 20 symbols, 5 strategies, batches spread over 5 days")
    header = (
        f"{'backend':>8} {'shape':>9} {'clients':>7} {'rows':>7} {'raw rows/s':>11} {'site rows/s':>12}"
        f" {'site/raw':>9}"
    )
    print(f"   {header}  target")
    for ctx in ctxs:
        factory = TradeFactory(seed=2)
        total = 0
        for shape, clients in (("bot-like", 1), ("bot-like", 2), ("random", 1), ("random", 2)):
            prefix = f"bulk-{shape}-{clients}"
            source = factory if shape == "random" else BotSession(seed=clients, day=ctx.days[-1 - clients])
            batches = bulk_batches(source, prefix, ctx.plan.bulk_batches, ctx.days[-5:], ctx.bot_id)
            rows = len(batches) * BATCH
            # Batch i goes to client i % clients: the site gets the same rows as the raw passes.
            jobs = [
                post_job(
                    ctx, 201, len(batches), BULK_TIME_LIMIT_S, bodies=[b.body for b in batches[c::clients]]
                )
                for c in range(clients)
            ]
            pair = ctx.store.raw_pair(f"{shape}-{clients}", batches, lambda jobs=jobs: run_clients(jobs))
            run = pair.run
            stored = ctx.store.count_rows(ctx.bot_id, prefix)
            total += stored
            raw_rate = 2 * rows / (pair.before_s + pair.after_s)
            site_rate = stored / run.wall_s
            ratio = site_rate / raw_rate
            target = (
                f">= {BULK_TARGET_RATIO:.0%} {verdict(ratio >= BULK_TARGET_RATIO)}"
                if shape == "bot-like"
                else "-"
            )
            print(
                f"   {ctx.name:>8} {shape:>9} {clients:>7} {stored:>7} {raw_rate:>11,.0f} {site_rate:>12,.0f}"
                f" {ratio:>9.1%}  {target}"
            )
            lat = run.latencies_ms
            print(
                f"{'':>30}raw before {rows / pair.before_s:,.0f}, after {rows / pair.after_s:,.0f} rows/s;"
                f" site per batch p50 {percentile(lat, 50):.0f} ms, max {max(lat, default=math.nan):.0f} ms;"
                f" errors {run.errors}; stored {stored} of {rows}"
            )
            for sample in run.error_samples:
                print(f"           error: {sample}")
        print(f"   {ctx.name}: {total:,} trades stored through the site in this part")


def single_jobs(ctx: Context, seconds: float, kind: str, label: str = "") -> list[ClientJob]:
    max_requests = int(seconds * SINGLE_MAX_RATE_PER_CLIENT) + 100
    jobs = []
    for c in range(SINGLE_CLIENTS):
        if kind == "health":
            jobs.append(
                ClientJob(
                    port=ctx.server.port,
                    method="GET",
                    path=HEALTH,
                    headers={},
                    ok_statuses=(200, 503),  # 503: no task cluster runs, which is expected here
                    max_requests=max_requests,
                    seconds=seconds,
                )
            )
            continue
        fill = TradeFactory(seed=10 + c).fills(ctx.days[-1], 1)[0]
        body = json.dumps(api_trade("@ID@", fill), separators=(",", ":")).encode()
        template = body.replace(b"@ID@", f"single{label}-{c}-%08d".encode())
        jobs.append(post_job(ctx, 201, max_requests, seconds, template=template))
    return jobs


def part_single(ctxs: list[Context]) -> None:
    seconds = ctxs[0].plan.single_seconds
    print(
        f"\n2. Single trades: {SINGLE_CLIENTS} client processes (not threads: the client's GIL must not"
        f" be the limit), one trade per POST, {seconds:.0f} s, for each backend and WEB_PROCESSES"
    )
    print(
        f"   baseline: the same clients on GET {HEALTH} (no key), {seconds / 2:.0f} s before and after,"
        " against the same server"
    )
    print(
        f"   targets: >= {SINGLE_TARGET_RATE:.0f} trades/s, p99 <= {SINGLE_TARGET_P99_MS:.0f} ms, zero errors"
    )
    print(
        f"   {'backend':>8} {'procs':>5} {'trades/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
        f" {'health/s':>9} {'h p50':>6} {'h p99':>6} {'ratio':>6}  targets (rate, p99, errors)"
    )
    for ctx in ctxs:
        for processes in SINGLE_WEB_PROCESSES:
            ctx.restart(processes)
            before = run_clients(single_jobs(ctx, seconds / 2, "health"))
            trades = run_clients(single_jobs(ctx, seconds, "trade", label=f"p{processes}"))
            after = run_clients(single_jobs(ctx, seconds / 2, "health"))
            lat = trades.latencies_ms
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            health_rate = (before.ok + after.ok) / (before.wall_s + after.wall_s)
            hlat = before.latencies_ms + after.latencies_ms
            print(
                f"   {ctx.name:>8} {processes:>5} {trades.rate:>9,.0f} {p50:>7.1f} {p99:>7.1f}"
                f" {trades.errors:>6}"
                f" {health_rate:>9,.0f} {percentile(hlat, 50):>6.1f} {percentile(hlat, 99):>6.1f}"
                f" {trades.rate / health_rate:>6.2f}  {verdict(trades.rate >= SINGLE_TARGET_RATE)}"
                f" {verdict(p99 <= SINGLE_TARGET_P99_MS)} {verdict(trades.errors == 0)}"
            )
            for sample in trades.error_samples + before.error_samples + after.error_samples:
                print(f"             error: {sample}")
        ctx.restart(None)
    print(
        "   WEB_PROCESSES is set in each server's environment; a monitorsite.serve that does not read it"
        " runs one process"
    )


def part_queries(ctxs: list[Context]) -> None:
    repeats = ctxs[0].plan.query_repeats
    rows = ctxs[0].plan.query_rows
    print(
        f"\n3. Queries: {rows:,} trades loaded straight into each site's database, then {repeats} GETs each"
    )
    print(
        "   sqlite: executemany in 50k-row transactions, then a WAL checkpoint; postgres: COPY, a transaction"
    )
    print("   per day, then VACUUM ANALYZE. One client, sequential, requests round-robin;")
    print(f"   baseline: GET {HEALTH} in the same rounds. Targets: each median <= {QUERY_TARGET_MS:.0f} ms;")
    print(f"   the daily summary <= {SUMMARY_TARGET_X_HEALTH:.0f} x health")
    for ctx in ctxs:
        query_backend(ctx)


def query_backend(ctx: Context) -> None:
    repeats = ctx.plan.query_repeats
    t0 = time.perf_counter()
    loaded = ctx.store.load_history(
        history_rows(TradeFactory(seed=3), ctx.days, ctx.plan.query_rows, ctx.bot_id)
    )
    seconds = time.perf_counter() - t0
    day = ctx.days[len(ctx.days) // 2]
    total, on_day = ctx.store.counts(ctx.bot_id, day)
    print(
        f"\n   {ctx.name}: loaded {loaded:,} trades ({len(ctx.days)} trading days, {len(SYMBOLS)} symbols,"
        f" {len(STRATEGIES)} strategies) in {seconds:.1f} s; {total:,} in the table; day {day} has {on_day:,}"
    )
    d = day.isoformat()
    endpoints = {
        BASELINE: (HEALTH, {}),
        "daily summary": (f"{SUMMARY}?date={d}", ctx.auth),
        "trades, no filter": (TRADES, ctx.auth),
        "trades ?symbol": (f"{TRADES}?symbol=AAPL", ctx.auth),
        "trades ?strategy": (f"{TRADES}?strategy=momentum", ctx.auth),
        "trades ?side": (f"{TRADES}?side=SELL", ctx.auth),
        "trades ?date": (f"{TRADES}?date={d}", ctx.auth),
        "trades, all four": (f"{TRADES}?symbol=AAPL&strategy=momentum&side=SELL&date={d}", ctx.auth),
    }
    timings: dict[str, list[float]] = {name: [] for name in endpoints}
    errors: Counter[str] = Counter()
    samples: dict[str, bytes] = {}
    conn_http = http.client.HTTPConnection(HOST, ctx.server.port, timeout=REQUEST_TIMEOUT_S)
    deadline = time.monotonic() + QUERY_TIME_LIMIT_S
    try:
        for round_no in range(repeats + 2):
            if time.monotonic() > deadline:
                break
            for name, (path, headers) in endpoints.items():
                try:
                    status, ms, body = get(conn_http, path, headers)
                except (OSError, http.client.HTTPException):
                    conn_http.close()
                    errors[name] += 1
                    continue
                # The health check answers 503 here because no task cluster runs.
                if status not in ((200, 503) if name == BASELINE else (200,)):
                    errors[name] += 1
                    samples.setdefault(name, body[:200])
                    continue
                samples.setdefault(name, body)
                if round_no >= 2:  # the first two rounds warm caches and are not counted
                    timings[name].append(ms)
    finally:
        conn_http.close()
    _check_answers(samples, on_day)

    base = percentile(timings[BASELINE], 50)
    print(f"   {'request':<18} {'n':>3} {'median ms':>10} {'p95 ms':>8} {'x health':>9}  target")
    for name, values in timings.items():
        median = percentile(values, 50)
        line = (
            f"   {name:<18} {len(values):>3} {median:>10.1f} {percentile(values, 95):>8.1f}"
            f" {median / base:>9.1f}"
        )
        if name != BASELINE:
            line += f"  <= {QUERY_TARGET_MS:.0f} ms {verdict(median <= QUERY_TARGET_MS and not errors[name])}"
        if name == "daily summary":
            ok = median <= SUMMARY_TARGET_X_HEALTH * base and not errors[name]
            line += f"; <= {SUMMARY_TARGET_X_HEALTH:.0f} x health {verdict(ok)}"
        if errors[name]:
            line += f"  ({errors[name]} errors: {samples.get(name, b'')[:120]!r})"
        print(line)


LOADED_BATCHES = 10


def part_loaded(ctxs: list[Context]) -> None:
    """Batches into the table part 3 filled: the repeat lookup must not slow with the table's size."""
    print(f"\n4. Bulk into the loaded table: {LOADED_BATCHES} new batches of {BATCH}, then the same replayed")
    print("   baseline: raw executemany of the same rows; sqlite: into a copy of the loaded database;")
    print("   postgres: into the loaded table itself, each batch rolled back")
    for ctx in ctxs:
        batches = bulk_batches(TradeFactory(seed=3), "loaded", LOADED_BATCHES, ctx.days[-3:], ctx.bot_id)
        rows = len(batches) * BATCH
        raw_rate = rows / ctx.store.loaded_raw_seconds(batches)
        for label, status in (("new", 201), ("replayed", 200)):
            job = post_job(ctx, status, len(batches), BULK_TIME_LIMIT_S, bodies=[b.body for b in batches])
            run = run_clients([job])
            rate = run.ok * BATCH / run.wall_s
            print(
                f"   {ctx.name:>8} {label:<9} site {rate:>9,.0f} rows/s, raw {raw_rate:,.0f} rows/s,"
                f" site/raw {rate / raw_rate:.1%};"
                f" per batch p50 {percentile(run.latencies_ms, 50):.0f} ms; errors {run.errors}"
            )


def _check_answers(samples: dict[str, bytes], on_day: int) -> None:
    """Warn when an answer is not what the loaded data implies, so a fast wrong answer is noticed."""
    with contextlib.suppress(KeyError, ValueError, TypeError):
        summary = json.loads(samples["daily summary"])
        if summary.get("total_trades") != on_day:
            print(f"   WARNING: the summary counts {summary.get('total_trades')} trades, the table {on_day}")
    for name, body in samples.items():
        if name.startswith("trades"):
            with contextlib.suppress(ValueError):
                if not json.loads(body).get("results"):
                    print(f"   WARNING: {name} returned no trades")


# --------------------------------------------------------------------------- main


def setup_site(store: Store, folder: Path, days: list[dt.date], plan: Plan) -> Context:
    """Migrate the backend's database, create the bench bot and its raw copies, start the web server."""
    env = store.site_env(site_env(folder))
    key = new_site_with_bot(env)
    bot_id = store.bot_id()
    store.prepare_raw()
    server = Server(env, free_port(), folder / "web.log")
    return Context(store, folder, env, server, bot_id, key, days, plan)


def parse_backends(value: str) -> list[str]:
    chosen = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not chosen or set(chosen) - set(BACKENDS):
        raise argparse.ArgumentTypeError(f"takes {' and/or '.join(BACKENDS)}, comma separated; got {value!r}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run; its figures are rough")
    parser.add_argument(
        "--parts",
        default="bulk,single,queries,loaded",
        help="comma separated parts to run (default: all): bulk, single, queries, loaded",
    )
    parser.add_argument(
        "--backend",
        type=parse_backends,
        default=list(BACKENDS),
        help="comma separated: sqlite, postgres (default: both, side by side)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    parts = {"bulk": part_bulk, "single": part_single, "queries": part_queries, "loaded": part_loaded}
    chosen = [name.strip() for name in args.parts.split(",") if name.strip()]
    if set(chosen) - set(parts) or ("loaded" in chosen and "queries" not in chosen):
        parser.error(f"--parts takes {', '.join(parts)} (loaded needs queries); got {args.parts!r}")

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    services: Path | None = None
    stores: list[Store] = []
    ctxs: list[Context] = []
    try:
        days = trading_days(TRADING_DAYS, dt.datetime.now(MARKET_TZ).date())
        for backend in args.backend:
            folder = tmp / backend
            folder.mkdir()
            if backend == "postgres":
                # Not under tmp, which the postgres user may not enter.
                services = Path(tempfile.mkdtemp(prefix="bench-services-"))
                stores.append(PostgresStore(*start_services(services)))
            else:
                stores.append(SqliteStore(folder))
            ctxs.append(setup_site(stores[-1], folder, days, plan))
        version = code_version()
        for ctx in ctxs:
            ctx.server.wait_ready()
            warm_up(ctx)
        print(
            f"Trades API benchmark ({'--quick' if args.quick else 'full run'}),"
            f" {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        print(machine_line())
        print(
            f"sites: waitress (monitorsite.serve), {ctxs[0].server.threads()} threads, WEB_PROCESSES"
            f" {os.environ.get('WEB_PROCESSES') or 'unset (its default)'} except in part 2;"
            " clients use http.client"
        )
        for ctx in ctxs:
            print(f"  {ctx.name}: {ctx.store.describe()}; on {HOST}:{ctx.server.port}")
        print(f"code: {ROOT} at {version}")
        for name in chosen:
            parts[name](ctxs)
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
    except Exception as exc:
        print(f"\nbenchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for ctx in ctxs:
            print(f"{ctx.name} web server log tail:\n{ctx.server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        # Ignore a second Ctrl-C until everything started here is stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_clients()
        for ctx in ctxs:
            ctx.server.stop()
        for store in stores:
            with contextlib.suppress(Exception):
                store.close()
        if services is not None:
            stop_services(services)
            shutil.rmtree(services, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_as_script(main)
