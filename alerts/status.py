"""What the alerts app tells the cockpit: each bot's state as the bot-stopped rule judges it, the
halts in force, and the latest alerts (each once, live ones first)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q

from alerts import rules
from alerts.models import Alert, AlertRule, AlertState, Channel, Level, TradingHalt, rules_judging
from alerts.rules.bot_stopped import SHUT_DOWN, BotStopped, bot_heartbeat_state
from alerts.rules.daily_loss import MaxDailyLoss
from alerts.rules.trading_day import day_subject
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
    today = market.calendar_for(bot).today(now)
    halt = TradingHalt.objects.in_force(bot, today)
    halted_until = None if halt is None else halt.ends_on
    if bot.last_heartbeat_at is None and bot.stopped_at is None:
        return BotState("never reported", grace, halted_until=halted_until)
    word = bot_heartbeat_state(bot, now, minutes, today)
    return BotState(word, grace, bot.stopped_at, halted_until)


def halts_in_force(now: dt.datetime) -> list[TradingHalt]:
    """The halts in force at ``now``, each on its bot's calendar's day."""
    return TradingHalt.objects.order_by("bot__name").all_in_force_at(now)


def resumed_halts(now: dt.datetime) -> list[TradingHalt]:
    """Halts resumed by an admin whose rule stays quiet for the rest of their trading day."""
    return TradingHalt.objects.order_by("bot__name").resumed_quiet_at(now)


@dataclass(frozen=True)
class Delivery:
    """Where one alert went and how far: ``sent to discord``, ``failed to phone``, ``silenced``."""

    state: str
    words: str


@dataclass(frozen=True)
class AlertGroup:
    """One alert as the operator thinks of it: the rows raised together, one per channel.

    ``alert`` is the first row (its title, level, message and page); ``resolved``: it belongs to a
    halt that was resumed or has ended, so it no longer calls for action.
    """

    alert: Alert
    deliveries: list[Delivery]
    resolved: bool


def _group_key(alert: Alert) -> tuple[object, ...]:
    # ``raise_alert`` writes one row per channel, every field alike but the channel.
    return (
        alert.created_at,
        alert.source,
        alert.subject,
        alert.level,
        alert.title,
        alert.bot_id,
        alert.rule_id,
    )


def _delivery(alert: Alert) -> Delivery:
    label = str(alert.get_state_display()).lower()
    if alert.channel is None:
        return Delivery(alert.state, label)
    label = "in a digest" if alert.state == AlertState.FOLDED else label
    words = f"{label} to {alert.channel.name}"
    if alert.state == AlertState.PENDING and alert.attempts:
        words += f" (tried {alert.attempts}×, retrying)"
    elif alert.state == AlertState.PENDING and alert.held:
        words += " (held by the rate limit)"
    return Delivery(alert.state, words)


def resolved_halt_subjects(bot_ids: set[int], now: dt.datetime) -> set[str]:
    """The subjects of the halts of these bots that were resumed or have ended by ``now`` (on each
    bot's calendar's day)."""
    latest = now.astimezone(dt.UTC).date() + dt.timedelta(days=1)  # no zone's date is later
    halts = TradingHalt.objects.filter(bot_id__in=bot_ids).filter(
        Q(resumed_at__isnull=False) | Q(ends_on__lte=latest)
    )
    today = {bot.pk: market.calendar_for(bot).today(now) for bot in Bot.objects.filter(pk__in=bot_ids)}
    return {
        day_subject(bot_id, day)
        for bot_id, day, ends_on, resumed_at in halts.values_list(
            "bot_id", "trading_day", "ends_on", "resumed_at"
        )
        if resumed_at is not None or ends_on <= today[bot_id]
    }


def latest_alerts(now: dt.datetime, limit: int = 8) -> list[AlertGroup]:
    """The latest ``limit`` alerts, each once with its channels' states: the live ones first
    (critical first, then newest first), then those of resolved halts (newest first).

    Reads the newest ``limit`` x (channels + 1) rows: an alert has a row per channel at most, and
    its rows share one ``created_at``, so the first ``limit`` alerts among them are whole.
    """
    window = limit * (Channel.objects.count() + 1)
    rows = Alert.objects.select_related("channel").order_by("-created_at", "-id")[:window]
    groups: dict[tuple[object, ...], list[Alert]] = {}
    for row in rows:
        key = _group_key(row)
        if key not in groups and len(groups) == limit:
            break
        groups.setdefault(key, []).append(row)
    firsts = [members[0] for members in groups.values()]
    halting = set(rules.kinds_where(lambda judge: isinstance(judge, MaxDailyLoss)))
    resolved = resolved_halt_subjects({a.bot_id for a in firsts if a.bot_id and a.source in halting}, now)
    latest = [
        AlertGroup(
            alert=members[0],
            deliveries=[
                _delivery(a) for a in sorted(members, key=lambda a: a.channel.name if a.channel else "")
            ],
            resolved=members[0].source in halting and members[0].subject in resolved,
        )
        for members in groups.values()
    ]
    return sorted(latest, key=lambda g: (g.resolved, g.alert.level != Level.CRITICAL))
