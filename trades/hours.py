"""Each bot's fills and realized P&L per clock hour (``HourFigures``), kept for the last weeks.

A scheduled task (``record_hours``) stores, for every active bot, each hour that has ended since
the last one stored: from the bot's first trade, or at most ``KEEP`` back (the baseline window),
zero-fill hours included. Two workers running it at once store each hour once (the table's unique
(bot, hour) and ``ignore_conflicts``). An hour is stored ``SETTLE`` after it ends, so the batches
of its last fills have arrived; a fill stored later than that is not counted in its hour.

``same_hour`` reads what the anomaly rules (``alerts.rules.anomaly``) judge against: the bot's open
hours at the same hour of its market's week, and of its market's day, over ``KEEP``. "The same
hour" is on the market's clock (10:00 in New York is 15:00 UTC in winter and 14:00 in summer).
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connections, router
from django.db.models import Count, Max, Min, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from monitor_client.wire import DECIMAL_PLACES
from trades import market
from trades.models import Bot, BotSnapshot, HourFigures, Trade

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
KEEP = dt.timedelta(weeks=8)  # the baseline window: eight samples of each hour of the week
SETTLE = dt.timedelta(minutes=2)  # an hour is stored this long after it ends


def hour_floor(moment: dt.datetime) -> dt.datetime:
    """The start of the UTC clock hour ``moment`` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_is_open(calendar: market.Calendar, start: dt.datetime) -> bool:
    """Whether the market is open at some time in the hour from ``start`` (a session that opens at
    9:30 makes the 9:00 hour an open one; a holiday, a weekend or a night hour is closed)."""
    if calendar.code == market.ALL_WEEK:
        return True
    end = start + HOUR
    for day in {calendar.trading_day_of(start), calendar.trading_day_of(end - dt.timedelta(microseconds=1))}:
        hours = calendar.market_hours(day)
        if hours is not None and hours[0] < end and hours[1] > start:
            return True
    return False


def record_hours(now: dt.datetime | None = None) -> int:
    """Store every ended hour not yet stored, for every active bot; how many hours were stored."""
    now = now or timezone.now()
    return sum(record_bot_hours(bot, now) for bot in Bot.objects.filter(is_active=True))


def record_bot_hours(bot: Bot, now: dt.datetime) -> int:
    """The bot's ended hours since the last stored one (one aggregate over its trades of those hours,
    on the (bot, executed_at) index), and the rows older than the window removed."""
    end = hour_floor(now - SETTLE)
    last = HourFigures.objects.filter(bot=bot).aggregate(last=Max("hour_start"))["last"]
    if last is not None:
        start = last + HOUR
    else:
        first = Trade.objects.filter(bot=bot).aggregate(first=Min("executed_at"))["first"]
        if first is None:
            return 0  # no trade yet: no history to keep
        start = hour_floor(first)
    start = max(start, end - KEEP)
    if start >= end:
        return 0
    stored = store_hours(bot, start, end)
    HourFigures.objects.filter(bot=bot, hour_start__lt=end - KEEP - dt.timedelta(weeks=1)).delete()
    return stored


class _Marks:
    """The bot's reported unrealized P&L over a span (one read of its snapshots with positions)."""

    def __init__(self, bot: Bot, start: dt.datetime, end: dt.datetime) -> None:
        found = (
            BotSnapshot.objects.filter(bot=bot, taken_at__gte=start - HOUR, taken_at__lt=end)
            .with_positions()
            .order_by("taken_at", "id")
            .values_list("taken_at", "unrealized_pnl")
        )
        self.times = [taken for taken, _ in found]
        self.values = [value or Decimal(0) for _, value in found]

    def at(self, moment: dt.datetime) -> Decimal | None:
        """The unrealized P&L as of ``moment``: the last snapshot before it, if taken within the hour
        before (an older one says nothing of the hour)."""
        index = bisect.bisect_left(self.times, moment) - 1
        if index < 0 or self.times[index] < moment - HOUR:
            return None
        return self.values[index]


def open_change(bot: Bot, start: dt.datetime, now: dt.datetime) -> Decimal | None:
    """The change of the bot's reported unrealized P&L from ``start`` to ``now`` (its newest
    snapshot with positions): None when it did not report positions in the hour before ``start``
    or since ``start``. Two reads on the (bot, taken_at) index."""
    before = BotSnapshot.objects.latest_with_positions(bot, before=start)
    if before is None or before.taken_at < start - HOUR:
        return None
    latest = BotSnapshot.objects.latest_with_positions(bot, before=now + dt.timedelta(microseconds=1))
    if latest is None or latest.taken_at < start:
        return None
    return (latest.unrealized_pnl or Decimal(0)) - (before.unrealized_pnl or Decimal(0))


def store_hours(bot: Bot, start: dt.datetime, end: dt.datetime) -> int:
    """Store the bot's hours from ``start`` to ``end`` (on the hour); an hour stored already (by
    another worker) is left as it is. How many hours were given."""
    per_hour = {
        row["hour"].astimezone(UTC): (row["fills"], row["pnl"] or Decimal(0))
        for row in Trade.objects.filter(bot=bot, executed_at__gte=start, executed_at__lt=end)
        .order_by()
        .annotate(hour=TruncHour("executed_at", tzinfo=UTC))
        .values("hour")
        .annotate(fills=Count("id"), pnl=Sum("pnl"))
    }
    calendar = market.calendar_for(bot)
    marks = _Marks(bot, start, end)
    rows = []
    hour = start
    while hour < end:
        fills, pnl = per_hour.get(hour, (0, Decimal(0)))
        opened, closed = marks.at(hour), marks.at(hour + HOUR)
        rows.append(
            HourFigures(
                bot=bot,
                hour_start=hour,
                market_open=hour_is_open(calendar, hour),
                fills=fills,
                realized_pnl=pnl,
                open_change=None if opened is None or closed is None else closed - opened,
            )
        )
        hour += HOUR
    HourFigures.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return len(rows)


@dataclass(frozen=True)
class Sample:
    hour_start: dt.datetime
    fills: int
    realized_pnl: Decimal
    open_change: Decimal | None = None


@dataclass(frozen=True)
class SameHour:
    """The bot's open hours before ``hour_start`` at the same hour of its market's week (``week``,
    newest first) and of its market's day (``day``, newest first, the week's included), and the
    oldest stored hour at that hour of the day, open or not (``since``: how far its history reaches)."""

    week: list[Sample]
    day: list[Sample]
    since: dt.datetime | None


def same_hour(bot: Bot, hour_start: dt.datetime, calendar: market.Calendar | None = None) -> SameHour:
    """One read of at most ``KEEP`` days of stored hours: those at the same wall-clock hour of the
    bot's market, one to 56 days before ``hour_start``."""
    calendar = calendar or market.calendar_for(bot)
    local = hour_start.astimezone(calendar.zone)
    days = range(1, KEEP.days + 1)
    # Wall-clock arithmetic in the market's zone: the same market hour across a DST change.
    wanted = {(local - dt.timedelta(days=d)).astimezone(UTC): d for d in days}
    found = HourFigures.objects.filter(bot=bot, hour_start__in=list(wanted)).values_list(
        "hour_start", "market_open", "fills", "realized_pnl", "open_change"
    )
    rows = sorted((h.astimezone(UTC), is_open, f, p, o) for h, is_open, f, p, o in found)
    since = rows[0][0] if rows else None
    samples = [Sample(h, f, p, o) for h, is_open, f, p, o in reversed(rows) if is_open]  # newest first
    week = [s for s in samples if wanted[s.hour_start] % 7 == 0]
    return SameHour(week=week, day=samples, since=since)


def hour_totals(bot: Bot, start: dt.datetime, end: dt.datetime) -> tuple[int, Decimal]:
    """The bot's fills and realized P&L from ``start`` to ``end``: one aggregate on the
    (bot, executed_at) index. Judged with every batch, so its SQL is written once per database
    rather than compiled by the ORM each time (that cost more than running it)."""
    alias = router.db_for_read(Trade)
    connection = connections[alias]
    sql = _HOUR_TOTALS_SQL.get(alias)
    if sql is None:
        quote, meta = connection.ops.quote_name, Trade._meta
        column = lambda name: quote(meta.get_field(name).column)  # noqa: E731
        sql = _HOUR_TOTALS_SQL[alias] = (
            f"SELECT COUNT(*), SUM({column('pnl')}) FROM {quote(meta.db_table)}"
            f" WHERE {column('bot')} = %s AND {column('executed_at')} >= %s AND {column('executed_at')} < %s"
        )
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(sql, [bot.pk, adapt(start), adapt(end)])
        fills, pnl = cursor.fetchone()
    return int(fills), _money(pnl)


_HOUR_TOTALS_SQL: dict[str, str] = {}
_PLACES = Decimal(1).scaleb(-DECIMAL_PLACES)


def _money(value: object) -> Decimal:
    """A sum as the database returns it (SQLite: a float) as a Decimal of the P&L's places."""
    if value is None:
        return Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_PLACES)
    return Decimal(value)  # type: ignore[arg-type]


def stored_hour(bot: Bot, start: dt.datetime) -> HourFigures | None:
    return HourFigures.objects.filter(bot=bot, hour_start=start).first()
