"""A bot's day with its open positions marked to market, as a broker reports it.

``day_pnl`` = the trading day's realized P&L + the open positions' unrealized P&L now -
their unrealized P&L in the last snapshot before the trading day began (0 when there is
none). A position carried over from yesterday counts only what it moved today; one
opened today counts all of its unrealized P&L; one closed today counts its realized P&L
(since entry, as the bot reports a closing fill's ``pnl``) minus what of it was already
there this morning.

"Now" is the bot's last snapshot with positions within the trading day: a bot that has
not reported its positions that day has no ``day_pnl`` (its rules judge realized P&L
alone), however old a snapshot it sent before.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connections
from django.db.models import Max, Min

from trades import market
from trades.models import REPORTED_ACCOUNT, REPORTED_HOST, Bot, BotSnapshot, Trade
from trades.summary import DailySummary, DayClose, PeriodSummary


def start_of_day(day: dt.date, bot: Bot | None = None) -> dt.datetime:
    """When the trading day ``day`` begins: midnight in the zone of ``bot``'s calendar (without a
    bot, the site's)."""
    return (market.calendar_for(bot) if bot is not None else market.site_calendar()).start_of_day(day)


@dataclass(frozen=True)
class DayPnl:
    """The day's P&L with open positions and its parts."""

    day: dt.date
    realized: Decimal
    # The positions' unrealized P&L at ``as_of`` and in the last snapshot before the day began.
    unrealized: Decimal
    unrealized_before: Decimal
    as_of: dt.datetime
    snapshot: BotSnapshot

    @property
    def open_part(self) -> Decimal:
        """What the open positions added to the day: their unrealized P&L now minus this morning's."""
        return self.unrealized - self.unrealized_before

    @property
    def total(self) -> Decimal:
        return self.realized + self.open_part


def day_snapshot(bot: Bot, day: dt.date) -> BotSnapshot | None:
    """The bot's last snapshot with positions taken within the trading day ``day``."""
    start = start_of_day(day, bot)
    end = start_of_day(day + dt.timedelta(days=1), bot)
    return (
        BotSnapshot.objects.filter(bot=bot, taken_at__gte=start, taken_at__lt=end)
        .with_positions()
        .order_by("-taken_at", "-id")
        .first()
    )


def day_pnl(bot: Bot, day: dt.date, realized: Decimal | None = None) -> DayPnl | None:
    """The day's P&L with open positions marked to market; None when the bot reported no
    positions that day. ``realized``: the day's realized P&L when the caller has it already
    (the day rules do), else it is summed here."""
    snapshot = day_snapshot(bot, day)
    if snapshot is None:
        return None
    before = BotSnapshot.objects.latest_with_positions(bot, before=start_of_day(day, bot))
    if realized is None:
        realized = Trade.objects.for_bot(bot).realized_pnl(day)
    return DayPnl(
        day=day,
        realized=realized,
        unrealized=snapshot.unrealized_pnl or Decimal(0),
        unrealized_before=(before.unrealized_pnl or Decimal(0)) if before else Decimal(0),
        as_of=snapshot.taken_at,
        snapshot=snapshot,
    )


def latest_account(bot: Bot) -> BotSnapshot | None:
    """The bot's newest snapshot that reported equity or cash (on its partial index)."""
    return BotSnapshot.objects.filter(REPORTED_ACCOUNT, bot=bot).order_by("-taken_at", "-id").first()


def latest_host(bot: Bot) -> BotSnapshot | None:
    """The bot's newest snapshot that reported host figures (on its partial index)."""
    return BotSnapshot.objects.filter(REPORTED_HOST, bot=bot).order_by("-taken_at", "-id").first()


# --- the summaries with the bot's state -------------------------------------------------------


def daily_summary(bot: Bot, day: dt.date) -> DailySummary:
    """The bot's daily summary with the day's closing ``day_pnl`` (and its open part) when the bot
    reported positions that day: the API's, the summary alert's and the command's."""
    summary = Trade.objects.for_bot(bot).daily_summary(day)
    marked = day_pnl(bot, day, realized=summary.total_pnl)
    if marked is None:
        return summary
    return dataclasses.replace(
        summary, day_pnl=marked.total, open_pnl=marked.open_part, day_pnl_as_of=marked.as_of
    )


def period_summary(bot: Bot, start: dt.date, end: dt.date) -> PeriodSummary:
    """The bot's period figures with each day's close where it reported its state (``day_closes``)."""
    summary = Trade.objects.for_bot(bot).period_summary(start, end)
    realized = {day.date: day.pnl for day in summary.days}
    return dataclasses.replace(summary, closes=day_closes(bot, start, end, realized))


def day_closes(
    bot: Bot, start: dt.date, end: dt.date, realized: dict[dt.date, Decimal]
) -> tuple[DayClose, ...]:
    """Per trading day from ``start`` to ``end`` on which the bot reported its state, oldest first:
    its last equity and cash that day, and the day's closing ``day_pnl`` as ``day_pnl`` works it
    out (``realized``: the days' realized P&L, 0 where absent).

    Bounded by days, not heartbeats, in four queries: the span the snapshots cover, the morning
    of its first day, each day's two closing snapshots (``closing_ids``), and those rows."""
    snapshots = BotSnapshot.objects.filter(
        bot=bot,
        taken_at__gte=start_of_day(start, bot),
        taken_at__lt=start_of_day(end + dt.timedelta(days=1), bot),
    )
    span = snapshots.aggregate(first=Min("taken_at"), last=Max("taken_at"))
    if span["first"] is None:
        return ()
    calendar = market.calendar_for(bot)
    first, last = calendar.trading_day_of(span["first"]), calendar.trading_day_of(span["last"])
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    before = BotSnapshot.objects.latest_with_positions(bot, before=start_of_day(first, bot))
    unrealized_before = (before.unrealized_pnl or Decimal(0)) if before else Decimal(0)
    ids = closing_ids(bot, days)
    rows = BotSnapshot.objects.only("taken_at", "unrealized_pnl", "equity", "cash").in_bulk(
        {each for pair in ids for each in pair if each is not None}
    )
    closes = []
    for day, (held_id, account_id) in zip(days, ids, strict=True):
        held, account = rows.get(held_id), rows.get(account_id)  # type: ignore[arg-type]
        if held is None and account is None:
            continue
        open_pnl = None
        if held is not None:
            open_pnl = (held.unrealized_pnl or Decimal(0)) - unrealized_before
            unrealized_before = held.unrealized_pnl or Decimal(0)
        closes.append(
            DayClose(
                date=day,
                as_of=max(each.taken_at for each in (held, account) if each is not None),
                equity=account.equity if account else None,
                cash=account.cash if account else None,
                day_pnl=None if open_pnl is None else realized.get(day, Decimal(0)) + open_pnl,
                open_pnl=open_pnl,
            )
        )
    return tuple(closes)


def closing_ids(bot: Bot, days: list[dt.date]) -> list[tuple[int | None, int | None]]:
    """For each trading day, the ids of the bot's last snapshot with positions and its last with
    equity or cash (None: none that day), in one statement: a row per day (VALUES) and, for each,
    two index seeks on (bot, taken_at). A query per day through the ORM cost about a millisecond
    each, 85 ms for six weeks; this is a few."""
    if not days:
        return []
    connection = connections[BotSnapshot.objects.db]
    table = connection.ops.quote_name(BotSnapshot._meta.db_table)

    def last(condition: str) -> str:
        return (
            f"(SELECT s.id FROM {table} s WHERE s.bot_id = {int(bot.pk)} AND s.taken_at >= d.column2"
            f" AND s.taken_at < d.column3 AND {condition} ORDER BY s.taken_at DESC, s.id DESC LIMIT 1)"
        )

    params: list[object] = []
    for n, day in enumerate(days):
        bounds = (start_of_day(day, bot), start_of_day(day + dt.timedelta(days=1), bot))
        params += [n, *(connection.ops.adapt_datetimefield_value(moment) for moment in bounds)]
    values = ", ".join(["(%s, %s, %s)"] * len(days))
    sql = (
        f"SELECT d.column1, {last('s.positions IS NOT NULL')},"
        f" {last('(s.equity IS NOT NULL OR s.cash IS NOT NULL)')}"
        f" FROM (VALUES {values}) AS d ORDER BY d.column1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(held, account) for _, held, account in cursor.fetchall()]
