"""What the alerts app tells the cockpit: each bot's state as the bot-stopped rule judges it, the
halts in force, and the latest alerts (critical first)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import F, Q

from alerts.models import Alert, AlertRule, Level, TradingHalt
from alerts.rules.bot_stopped import BotStopped
from trades import market
from trades.models import Bot

# The bot-stopped rule's own default, when no rule sets a threshold.
DEFAULT_GRACE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class BotState:
    """A bot's state in words.

    ``running``: a heartbeat within the grace. ``stopped``: silent past the grace
    during market hours (what the bot-stopped rule alerts on). ``stale``: silent past
    the grace, but outside market hours or too soon after the open for the rule to
    call it stopped. ``never reported``: no heartbeat yet.
    """

    word: str
    grace: dt.timedelta

    @property
    def is_problem(self) -> bool:
        return self.word == "stopped"


def grace_for(bot: Bot) -> dt.timedelta:
    """The grace of the enabled bot-stopped rule that applies to ``bot`` (its own before a general one)."""
    rules = (
        AlertRule.objects.enabled()
        .judged_by(BotStopped)
        .filter(Q(bot=bot) | Q(bot__isnull=True))
        # The general rule (no bot) first on every backend (PostgreSQL puts NULLs last
        # unless told): the last one is the bot's own when it has one.
        .order_by(F("bot_id").asc(nulls_first=True))
        .values_list("bot_id", "threshold")
    )
    found = list(rules)
    if not found:
        return DEFAULT_GRACE
    threshold = found[-1][1]
    return dt.timedelta(minutes=float(threshold or 10))


def bot_state(bot: Bot, now: dt.datetime) -> BotState:
    """The state in words, judged as the bot-stopped rule (``alerts.rules.bot_stopped``) judges it."""
    grace = grace_for(bot)
    if bot.last_heartbeat_at is None:
        return BotState("never reported", grace)
    if bot.last_heartbeat_at >= now - grace:
        return BotState("running", grace)
    hours = market.market_hours(market.trading_day_of(now))
    if hours is None or not hours[0] <= now <= hours[1]:
        return BotState("stale", grace)
    silent_since = max(bot.last_heartbeat_at, hours[0])
    # Past the grace, as the rule judges (``MissedHeartbeats``): silent exactly the grace is not stopped.
    return BotState("stopped" if now - silent_since > grace else "stale", grace)


def halts_in_force(now: dt.datetime) -> list[TradingHalt]:
    return list(TradingHalt.objects.all_in_force(market.trading_day_of(now)).order_by("bot__name"))


def latest_alerts(limit: int = 8) -> list[Alert]:
    """The latest alerts, critical ones first, newest first within a level."""
    latest = list(Alert.objects.select_related("bot", "channel").order_by("-created_at", "-id")[:limit])
    return sorted(latest, key=lambda a: a.level != Level.CRITICAL)
