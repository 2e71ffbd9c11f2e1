"""What the provisioned Grafana dashboard needs inside the database: the market's UTC offsets.

The dashboard's "today" is the trading day in the market's time zone
(``MARKET_TIMEZONE``), like ``trades.trading_day``. SQLite knows no time zones,
and a fixed offset in the dashboard would be wrong half the year and wrong for any
other market. So the site keeps a view, ``market_utc_offsets``, listing when the
zone's offset from UTC changes (from zoneinfo, 2000 to 2100), and the dashboard
turns its end time into the market date with it:

    SELECT date($__to / 1000 + offset_seconds, 'unixepoch') FROM market_utc_offsets
    WHERE since_epoch <= $__to / 1000 ORDER BY since_epoch DESC LIMIT 1

The view is rebuilt after every ``migrate`` (run at each start), so a changed
``MARKET_TIMEZONE`` reaches the dashboard with the next start. It is a view, not
a table: no migration, nothing for a backup restore to get out of step with.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connections

VIEW = "market_utc_offsets"
# Grafana's read-only PostgreSQL role (grafana/postgres/grafana_reader.sh makes it) and all it
# may read: what the dashboard shows. Never the channels' settings (webhook URLs and tokens),
# the users, the sessions or the API keys.
READER_ROLE = "grafana_reader"
DASHBOARD_TABLES = ("trades_trade", "trades_bot", "trades_botsnapshot", VIEW)
FIRST_YEAR, LAST_YEAR = 2000, 2100


@lru_cache(maxsize=4)
def offset_changes(zone: ZoneInfo) -> list[tuple[int, int]]:
    """(unix second from which it holds, UTC offset in seconds), from FIRST_YEAR to LAST_YEAR.

    Scans day by day, then narrows each change down to the second: zoneinfo does
    not expose its transition table.
    """

    def offset_at(second: int) -> int:
        moment = dt.datetime.fromtimestamp(second, dt.UTC).astimezone(zone)
        return int(moment.utcoffset().total_seconds())  # type: ignore[union-attr]

    start = int(dt.datetime(FIRST_YEAR, 1, 1, tzinfo=dt.UTC).timestamp())
    end = int(dt.datetime(LAST_YEAR, 1, 1, tzinfo=dt.UTC).timestamp())
    changes = [(start, offset_at(start))]
    day = 86_400
    for second in range(start + day, end + 1, day):
        if offset_at(second) == changes[-1][1]:
            continue
        low, high = second - day, second  # offset changes somewhere in (low, high]
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if offset_at(middle) == changes[-1][1] else (low, middle)
        changes.append((high, offset_at(high)))
    return changes


def create_market_views(using: str = "default", **_: Any) -> None:
    """(Re)create ``market_utc_offsets`` for ``settings.MARKET_TIMEZONE``; a post_migrate receiver."""
    rows = offset_changes(ZoneInfo(settings.MARKET_TIMEZONE))
    values = ", ".join(f"({since}, {offset})" for since, offset in rows)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP VIEW IF EXISTS {VIEW}")
        cursor.execute(f"CREATE VIEW {VIEW} (since_epoch, offset_seconds) AS VALUES {values}")
        if connection.vendor == "postgresql":
            grant_dashboard_reads(cursor)


def grant_dashboard_reads(cursor: Any) -> None:
    """On PostgreSQL, let Grafana's role (when there is one) read the dashboard's tables and nothing else.

    Run after every ``migrate`` with the view: the view is new each time, and a table the
    dashboard reads may be new too.
    """
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [READER_ROLE])
    if cursor.fetchone() is None:
        return
    # Only those that exist: a migrate to an earlier state (``migrate alerts 0003``) has not made
    # the newer ones yet, and the role is the server's, not the database's.
    cursor.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
        [list(DASHBOARD_TABLES)],
    )
    existing = sorted(name for (name,) in cursor.fetchall())
    if existing:
        cursor.execute(f"GRANT SELECT ON {', '.join(existing)} TO {READER_ROLE}")
