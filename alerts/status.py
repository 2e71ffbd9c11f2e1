"""What the alerts app tells the cockpit: each bot's state as the bot-stopped rule judges it, the
halts in force, and the latest alerts (critical first)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from alerts.models import Alert, AlertRule, Level, TradingHalt, rules_judging
from alerts.rules.bot_stopped import BotStopped, heartbeat_state
from trades import market
from trades.models import Bot

# The bot-stopped rule's own default, when no rule sets a threshold.
DEFAULT_GRACE_MINUTES = Decimal(10)


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


def grace_for(bot: Bot) -> Decimal:
    """The grace, in minutes, after which the bot-stopped rules that judge ``bot`` call it stopped:
    the shortest of them (its own replace the general ones), or the rule's default without one."""
    rules = rules_judging(AlertRule.objects.enabled().judged_by(BotStopped).judged(), bot.pk)
    thresholds = [rule.threshold for rule in rules if rule.threshold is not None]
    return min(thresholds, default=DEFAULT_GRACE_MINUTES)


def bot_state(bot: Bot, now: dt.datetime) -> BotState:
    """The state in words, judged as the bot-stopped rule judges it (``heartbeat_state``)."""
    minutes = grace_for(bot)
    grace = dt.timedelta(minutes=float(minutes))
    if bot.last_heartbeat_at is None:
        return BotState("never reported", grace)
    return BotState(heartbeat_state(bot.last_heartbeat_at, now, minutes, market.trading_day_of(now)), grace)


def halts_in_force(now: dt.datetime) -> list[TradingHalt]:
    return list(TradingHalt.objects.all_in_force(market.trading_day_of(now)).order_by("bot__name"))


def latest_alerts(limit: int = 8) -> list[Alert]:
    """The latest alerts, critical ones first, newest first within a level."""
    latest = list(Alert.objects.select_related("bot", "channel").order_by("-created_at", "-id")[:limit])
    return sorted(latest, key=lambda a: a.level != Level.CRITICAL)
