"""The cockpit: what an operator checks from a phone, gathered from every app's own offers.

It stands on the top floor (it reads trades, alerts, backups and the health
registry), and each app computes its part: the daily and period figures
(``trades``), bot states, halts and alerts (``alerts.status``), the last good
backup (``backups``), and health (``monitorsite.registry``). Nothing here reads
a trade one by one: the figures are GROUP BYs over the trading-day indexes.
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
from monitorsite.chart import pnl_chart
from monitorsite.registry import run_health_checks
from trades import market
from trades.formats import format_money, format_rate
from trades.models import Bot, Trade
from trades.summary import DailySummary, PeriodSummary, performance_lines


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
}


def build(now: dt.datetime | None = None) -> Cockpit:
    now = now or timezone.now()
    today = market.trading_day_of(now)
    start, end = market.period(None, today)
    clock = market.market_clock(now)  # one calendar for every bot (MARKET_TIMEZONE, the NYSE's)
    cards = []
    for bot in Bot.objects.filter(is_active=True).defer("last_heartbeat_details", "description"):
        trades = Trade.objects.for_bot(bot)
        period = trades.period_summary(start, end, breakdown=False)
        age = bot.heartbeat_age(now)
        cards.append(
            BotCard(
                bot=bot,
                state=status.bot_state(bot, now),
                heartbeat_age="never" if age is None else f"{timesince(bot.last_heartbeat_at, now)} ago",
                market=clock,
                today=trades.daily_summary(today),
                period=period,
                period_lines=performance_lines(period.overall),
                chart=pnl_chart(period),
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
