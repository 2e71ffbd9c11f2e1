"""The cockpit: what an operator checks from a phone, gathered from every app's own offers.

It stands on the top floor (it reads trades, alerts, backups and the health
registry), and each app computes its part: the daily and period figures
(``trades``), bot states, halts and alerts (``alerts.status``), the last good
backup (``backups``), health (``monitorsite.registry``), and the bot's own state
(``trades.positions``: its open positions, day P&L marked to market, account and host).
Nothing here reads a trade one by one: the figures are GROUP BYs over the trading-day
indexes; the state is a few index seeks per bot on the snapshots' (bot, time) index.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from alerts import status
from alerts.models import TradingHalt
from backups.models import BackupRecord
from monitorsite.chart import compares_strategies, pnl_chart, strategies_chart
from monitorsite.registry import run_health_checks
from trades import market
from trades.formats import (
    format_duration,
    format_market_time,
    format_money,
    format_price,
    format_quantity,
    format_rate,
    format_size,
)
from trades.models import Bot, BotSnapshot, Trade
from trades.positions import DayPnl, day_pnl, latest_account, latest_host
from trades.state import Position
from trades.summary import DailySummary, PeriodSummary, group_table, performance_lines


@dataclass(frozen=True)
class BotCard:
    bot: Bot
    state: status.BotState
    heartbeat_age: str
    market: market.MarketClock
    today: DailySummary
    period: PeriodSummary
    period_lines: list[tuple[str, str]]
    chart: SafeString
    positions: PositionsView | None = None  # None: the bot never reported its positions
    day_pnl: DayPnl | None = None  # None: no positions reported today
    day_pnl_as_of: str = ""  # "" when its positions are current
    account: AccountView | None = None
    host: HostView | None = None
    calendar: str = ""  # a bot not on the site's calendar: its code and its day, "XLON, Thu 2026-07-16"
    strategies: StrategiesView | None = None  # None: fewer than two strategies traded in the period


@dataclass(frozen=True)
class StrategiesView:
    """The period's strategies side by side: a row of figures each (as the report page's "By strategy"
    table) and their cumulative P&L lines on one chart."""

    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    chart: SafeString

    @classmethod
    def of(cls, period: PeriodSummary) -> StrategiesView | None:
        if not compares_strategies(period):
            return None
        return cls(*group_table("strategy", period.by_strategy), strategies_chart(period))

    @property
    def labelled_rows(self) -> list[list[tuple[str, str]]]:
        """Each cell with its column's header: in a card a row stacks and each cell says what it is."""
        return [list(zip(self.headers, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Cockpit:
    now: dt.datetime
    today: dt.date
    bots: list[BotCard]
    halts: list[TradingHalt]
    resumed: list[TradingHalt]  # resumed halts whose rule stays quiet until their end
    alerts: list[status.AlertGroup]
    last_backup: BackupRecord | None
    backup_age: str
    health_state: str
    health: list[tuple[str, str, bool]]  # (component, words, ok)


HEALTH_NAMES = {
    "database": "database",
    "task_cluster": "task cluster",
    "alerts": "alert delivery",
    "log_shipping": "log shipping",
    "backup": "backups",
    "telegram_commands": "Telegram commands",
}


# --- the bot's own state: positions, account, host ------------------------------------------

# A card shows this many positions, the largest by |unrealized P&L|; the rest are counted.
SHOWN_POSITIONS = 5
# Host figures: a warning colour below the host rules' default threshold (disk and memory:
# below 10% free), a caution colour below twice that.
HOST_WARNING_PERCENT = Decimal(10)
HOST_CAUTION_PERCENT = Decimal(20)
MINUTE = dt.timedelta(minutes=1)


def as_of(taken_at: dt.datetime, now: dt.datetime, grace: dt.timedelta) -> str:
    """Nothing while figures taken at ``taken_at`` are current (within the heartbeat grace), else
    "as of <market time>": older figures are shown as what they were then."""
    return "" if now - taken_at <= grace else f"as of {format_market_time(taken_at)}"


@dataclass(frozen=True)
class PositionRow:
    symbol: str
    quantity: str
    avg_price: str
    market_price: str
    unrealized: Decimal
    side: str  # "long" or "short"


@dataclass(frozen=True)
class PositionsView:
    """The positions of the bot's last snapshot that reported them, the largest few first."""

    rows: list[PositionRow]
    count: int
    unrealized: Decimal | None
    as_of: str  # "" when current

    @property
    def more(self) -> int:
        return self.count - len(self.rows)

    @classmethod
    def of(cls, snapshot: BotSnapshot, now: dt.datetime, grace: dt.timedelta) -> PositionsView:
        positions: list[Position] = snapshot.position_list()
        largest = sorted(positions, key=lambda p: (-abs(p.unrealized_pnl), p.symbol))[:SHOWN_POSITIONS]
        rows = [
            PositionRow(
                p.symbol,
                format_quantity(p.quantity),
                format_price(p.avg_price),
                format_price(p.market_price),
                p.unrealized_pnl,
                "short" if p.quantity < 0 else "long",
            )
            for p in largest
        ]
        return cls(rows, len(positions), snapshot.unrealized_pnl, as_of(snapshot.taken_at, now, grace))


@dataclass(frozen=True)
class AccountView:
    equity: Decimal | None
    cash: Decimal | None
    as_of: str

    @property
    def words(self) -> str:
        """What the bot reported of the two: "equity 100,000.00, cash 20,000.00"."""
        figures = (("equity", self.equity), ("cash", self.cash))
        return ", ".join(f"{name} {format_money(value)}" for name, value in figures if value is not None)


@dataclass(frozen=True)
class HostLine:
    words: str
    level: str  # "ok", "caution" (under 20%), "warning" (under 10%)


def host_level(percent: Decimal) -> str:
    if percent < HOST_WARNING_PERCENT:
        return "warning"
    if percent < HOST_CAUTION_PERCENT:
        return "caution"
    return "ok"


def share_line(
    name: str, verb: str, percent: Decimal | None, part: int | None, total: int | None
) -> HostLine | None:
    """A share in words, "disk 6.2% free (3.1 GB of 50.0 GB)", coloured by it; None without it."""
    if percent is None:
        return None
    words = f"{name} {format_rate(percent)} {verb} ({format_size(part)} of {format_size(total)})"
    return HostLine(words, host_level(percent))


@dataclass(frozen=True)
class HostView:
    """The host's figures in plain words, from the bot's last snapshot that carried them."""

    lines: list[HostLine]
    as_of: str

    @property
    def level(self) -> str:
        levels = {line.level for line in self.lines}
        return next((level for level in ("warning", "caution") if level in levels), "ok")

    @classmethod
    def of(cls, snapshot: BotSnapshot, now: dt.datetime, grace: dt.timedelta) -> HostView:
        lines = [
            share_line(
                "disk",
                "free",
                snapshot.disk_free_percent,
                snapshot.disk_free_bytes,
                snapshot.disk_total_bytes,
            ),
            share_line(
                "memory",
                "available",
                snapshot.memory_available_percent,
                snapshot.memory_available_bytes,
                snapshot.memory_total_bytes,
            ),
        ]
        process = []
        if snapshot.host_started_at is not None:
            # Up until the figures were taken; counted to now while they are current, in whole minutes
            # past the first: a clock in seconds would change the cockpit's live part (and its ETag)
            # at every refresh.
            stale = now - snapshot.taken_at > grace
            up = (snapshot.taken_at if stale else now) - snapshot.host_started_at
            if not stale and up >= MINUTE:
                up = MINUTE * (up // MINUTE)
            process.append(f"up {format_duration(up)}")
        if snapshot.host_pid is not None:
            process.append(f"pid {snapshot.host_pid}")
        if snapshot.rss_bytes is not None:
            process.append(f"RSS {format_size(snapshot.rss_bytes)}")
        if snapshot.cpu_percent is not None:
            process.append(f"CPU {format_rate(snapshot.cpu_percent)}")
        if process:
            lines.append(HostLine(", ".join(process), "ok"))
        return cls([line for line in lines if line is not None], as_of(snapshot.taken_at, now, grace))


def bot_state_views(
    bot: Bot, now: dt.datetime, today: dt.date, realized: Decimal, grace: dt.timedelta
) -> tuple[PositionsView | None, DayPnl | None, AccountView | None, HostView | None]:
    """The card's state parts. A bot's client sends everything with each heartbeat, so the newest
    snapshot usually answers all of it: one index seek; a part it lacks is looked up on its own."""
    latest = BotSnapshot.objects.filter(bot=bot).order_by("-taken_at", "-id").first()
    if latest is None:
        return None, None, None, None
    held = latest if latest.positions is not None else BotSnapshot.objects.latest_with_positions(bot)
    account = latest if latest.equity is not None or latest.cash is not None else latest_account(bot)
    host = latest if latest.has_host else latest_host(bot)
    return (
        None if held is None else PositionsView.of(held, now, grace),
        None if held is None else day_pnl(bot, today, realized=realized),
        None
        if account is None
        else AccountView(account.equity, account.cash, as_of(account.taken_at, now, grace)),
        None if host is None else HostView.of(host, now, grace),
    )


def build(now: dt.datetime | None = None) -> Cockpit:
    now = now or timezone.now()
    today = market.trading_day_of(now)
    # Each bot on its calendar: its day, its last 30 trading days, its market's clock (worked out
    # once per calendar, however many bots share it).
    days: dict[market.Calendar, tuple[dt.date, dt.date, dt.date, market.MarketClock]] = {}
    cards = []
    for bot in Bot.objects.filter(is_active=True).defer("last_heartbeat_details", "description"):
        calendar = market.calendar_for(bot)
        if calendar not in days:
            bot_today = calendar.today(now)
            days[calendar] = (bot_today, *calendar.period(None, bot_today), calendar.clock(now))
        bot_today, start, end, clock = days[calendar]
        trades = Trade.objects.for_bot(bot)
        # Per strategy too (one GROUP BY by day and strategy, the same drawdown read), for the card's
        # strategies side by side; see docs/benchmarks.md for its cost.
        period = trades.period_summary(start, end, breakdown="strategy")
        age = bot.heartbeat_age(now)
        state = status.bot_state(bot, now)
        summary = trades.daily_summary(bot_today)
        positions, day, account, host = bot_state_views(bot, now, bot_today, summary.total_pnl, state.grace)
        cards.append(
            BotCard(
                bot=bot,
                state=state,
                heartbeat_age="never" if age is None else f"{timesince(bot.last_heartbeat_at, now)} ago",
                market=clock,
                today=summary,
                period=period,
                period_lines=performance_lines(period.overall),
                chart=pnl_chart(period),
                positions=positions,
                day_pnl=day,
                day_pnl_as_of="" if day is None else as_of(day.as_of, now, state.grace),
                account=account,
                host=host,
                calendar=""
                if calendar == market.site_calendar()
                else f"{calendar.code}, {bot_today:%a %Y-%m-%d}",
                strategies=StrategiesView.of(period),
            )
        )
    last = BackupRecord.objects.last_good()
    state, components = run_health_checks()
    return Cockpit(
        now=now,
        today=today,
        bots=cards,
        halts=status.halts_in_force(now),
        resumed=status.resumed_halts(now),
        alerts=status.latest_alerts(now),
        last_backup=last,
        backup_age="" if last is None or last.finished_at is None else timesince(last.finished_at, now),
        health_state=state,
        health=[
            (HEALTH_NAMES.get(name, name.replace("_", " ")), health_words(part), part["ok"])
            for name, part in components.items()
        ],
    )


def health_words(part: dict[str, Any]) -> str:
    if part.get("starting"):
        return "starting"
    if part.get("enabled") is False:  # log shipping without a Loki configured
        return "off"
    if part["ok"]:
        return "ok"
    return str(part.get("reason") or "failing")


def signed_money(value: Decimal | None) -> SafeString:
    """Money with 2 decimals, green when positive, red when negative."""
    if value is None:
        return mark_safe("-")
    css = "pnl-pos" if value > 0 else "pnl-neg" if value < 0 else "pnl-zero"
    return format_html('<span class="{}">{}</span>', css, format_money(value))


__all__ = ["Cockpit", "build", "format_rate", "pnl_chart", "signed_money"]
