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

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from trades import market
from trades.models import Bot, BotSnapshot, Trade


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
