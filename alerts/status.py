"""What the alerts app tells the cockpit: each bot's state as the bot-stopped rule judges it, the
halts in force, and the latest alerts (critical first)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from alerts.models import Alert, AlertRule, Level, TradingHalt, rules_judging
from alerts.rules.bot_stopped import SHUT_DOWN, BotStopped, bot_heartbeat_state
from trades import market
from trades.formats import format_market_time
from trades.models import Bot

# The bot-stopped rule's own default, when no rule sets a threshold.
DEFAULT_GRACE_MINUTES = Decimal(10)


@dataclass(frozen=True)
class BotState:
    """A bot's state in words.

    ``running``: a heartbeat within the grace. ``stopped``: silent past the grace
    during market hours (what the bot-stopped rule alerts on). ``stale``: silent past
    the grace, but outside market hours or too soon after the open for the rule to
    call it stopped. ``shut down``: the bot said it stopped (shown "stopped at <time>"),
    until a heartbeat, a new trade or a startup says it runs again. ``never reported``:
    no heartbeat yet.

    ``halted_until``: the trading day a halt in force ends on; the badge then says
    ``halted`` whatever the heartbeats say (the bot may run, but must not trade).
    """

    word: str
    grace: dt.timedelta
    stopped_at: dt.datetime | None = None
    halted_until: dt.date | None = None

    @property
    def is_problem(self) -> bool:
        return self.word == "stopped"

    @property
    def label(self) -> str:
        """The heartbeat state in words: "stopped at 2026-01-15 16:02:10 EST" for a bot shut down."""
        if self.word == SHUT_DOWN:
            return f"stopped at {format_market_time(self.stopped_at)}"
        return self.word

    @property
    def badge(self) -> str:
        """The card's badge: ``halted`` while a halt is in force, else the label."""
        return "halted" if self.halted_until is not None else self.label

    @property
    def css(self) -> str:
        """The card's state class: ``halted``, ``shut-down``, ``running``, ``stale``, ..."""
        return "halted" if self.halted_until is not None else self.word.replace(" ", "-")


def grace_for(bot: Bot) -> Decimal:
    """The grace, in minutes, after which the bot-stopped rules that judge ``bot`` call it stopped:
    the shortest of them (its own replace the general ones), or the rule's default without one."""
    rules = rules_judging(AlertRule.objects.enabled().judged_by(BotStopped).judged(), bot.pk)
    thresholds = [rule.threshold for rule in rules if rule.threshold is not None]
    return min(thresholds, default=DEFAULT_GRACE_MINUTES)


def bot_state(bot: Bot, now: dt.datetime) -> BotState:
    """The state in words, judged as the bot-stopped rule judges it (``bot_heartbeat_state``), and
    the halt in force on the market's day of ``now``."""
    minutes = grace_for(bot)
    grace = dt.timedelta(minutes=float(minutes))
    today = market.trading_day_of(now)
    halt = TradingHalt.objects.in_force(bot, today)
    halted_until = None if halt is None else halt.ends_on
    if bot.last_heartbeat_at is None and bot.stopped_at is None:
        return BotState("never reported", grace, halted_until=halted_until)
    word = bot_heartbeat_state(bot, now, minutes, today)
    return BotState(word, grace, bot.stopped_at, halted_until)


def halts_in_force(now: dt.datetime) -> list[TradingHalt]:
    return list(TradingHalt.objects.all_in_force(market.trading_day_of(now)).order_by("bot__name"))


def resumed_halts(now: dt.datetime) -> list[TradingHalt]:
    """Halts resumed by an admin whose rule stays quiet for the rest of their trading day."""
    return list(TradingHalt.objects.resumed_quiet(market.trading_day_of(now)).order_by("bot__name"))


def latest_alerts(limit: int = 8) -> list[Alert]:
    """The latest alerts, critical ones first, newest first within a level."""
    latest = list(Alert.objects.select_related("bot", "channel").order_by("-created_at", "-id")[:limit])
    return sorted(latest, key=lambda a: a.level != Level.CRITICAL)
