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

from django.db.models import Max, Min

from trades import market
from trades.models import Bot, BotSnapshot, Trade
from trades.summary import DailySummary, DayClose, PeriodSummary


def start_of_day(day: dt.date) -> dt.datetime:
    """When the trading day ``day`` begins: midnight in the market's time zone."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=market.market_zone())


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
    start = start_of_day(day)
    end = start_of_day(day + dt.timedelta(days=1))
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
    before = BotSnapshot.objects.latest_with_positions(bot, before=start_of_day(day))
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
    """The bot's newest snapshot that reported equity or cash."""
    return (
        BotSnapshot.objects.filter(bot=bot)
        .exclude(equity__isnull=True, cash__isnull=True)
        .order_by("-taken_at", "-id")
        .first()
    )


def latest_host(bot: Bot) -> BotSnapshot | None:
    """The bot's newest snapshot that reported host figures."""
    return (
        BotSnapshot.objects.filter(bot=bot)
        .exclude(
            host_pid__isnull=True,
            host_started_at__isnull=True,
            rss_bytes__isnull=True,
            cpu_percent__isnull=True,
            memory_available_bytes__isnull=True,
            memory_total_bytes__isnull=True,
            disk_free_bytes__isnull=True,
            disk_total_bytes__isnull=True,
        )
        .order_by("-taken_at", "-id")
        .first()
    )


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

    Bounded by days, not heartbeats: one query for the span the snapshots cover, then two index
    seeks per day of it (its last snapshot with positions, its last with equity or cash), and one
    for the morning of the first."""
    snapshots = BotSnapshot.objects.filter(
        bot=bot, taken_at__gte=start_of_day(start), taken_at__lt=start_of_day(end + dt.timedelta(days=1))
    )
    span = snapshots.aggregate(first=Min("taken_at"), last=Max("taken_at"))
    if span["first"] is None:
        return ()
    zone = market.market_zone()
    day, last_day = market.trading_day_of(span["first"], zone), market.trading_day_of(span["last"], zone)
    before = BotSnapshot.objects.latest_with_positions(bot, before=start_of_day(day))
    unrealized_before = (before.unrealized_pnl or Decimal(0)) if before else Decimal(0)
    closes = []
    while day <= last_day:
        that_day = snapshots.filter(
            taken_at__gte=start_of_day(day), taken_at__lt=start_of_day(day + dt.timedelta(days=1))
        ).order_by("-taken_at", "-id")
        held = that_day.with_positions().only("taken_at", "unrealized_pnl").first()
        account = (
            that_day.exclude(equity__isnull=True, cash__isnull=True)
            .only("taken_at", "equity", "cash")
            .first()
        )
        if held is not None or account is not None:
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
        day += dt.timedelta(days=1)
    return tuple(closes)
