"""Judging the rules: after new trades, on bot events and on the schedule.

Each rule keeps one ``Condition`` per subject (a bot's trading day, a bot, a
symbol). A breach alerts when it starts and again after the rule's cooldown
while it lasts; a condition that ends is cleared (and the bot-stopped rule
says so). Claims on a condition are conditional UPDATEs, so two workers
judging the same batch raise one alert, not two.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, DecimalField, ExpressionWrapper, F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from alerts.conf import setting
from alerts.models import (
    DAILY_KINDS,
    Alert,
    AlertRule,
    AlertState,
    Channel,
    Condition,
    Level,
    PendingEvaluation,
    RuleKind,
    Silence,
    TradingHalt,
)
from alerts.rules import judge_for
from alerts.transports import hide
from trades import market
from trades.models import Bot, BotEvent, Trade, TradeQuerySet
from trades.tables import format_number

logger = logging.getLogger(__name__)

Fields = Iterable[tuple[str, object]]


# --- raising an alert -------------------------------------------------------


def raise_alert(
    *,
    source: str,
    level: str,
    title: str,
    message: str = "",
    fields: Fields = (),
    subject: str = "",
    rule: AlertRule | None = None,
    bot: Bot | None = None,
    now: dt.datetime | None = None,
    silenceable: bool = True,
) -> list[Alert]:
    """Write the alert to the outbox: one row per channel that takes its level.

    Muted by a silence, it is stored as ``silenced``; with no usable channel
    (none configured, or none of the rule's) as ``stored``: either way it shows in the history.
    """
    now = now or timezone.now()
    secrets = _secrets()
    row = {
        "rule": rule,
        "bot": bot,
        "source": source[:64],
        "subject": subject[:200],
        "level": level,
        "title": scrub(title, secrets)[:300],
        "message": scrub(message, secrets),
        "fields": [[scrub(str(n), secrets), scrub(str(v), secrets)] for n, v in fields],
        "created_at": now,
    }
    if silenceable and Silence.objects.covering(rule, now):
        return [Alert.objects.create(**row, state=AlertState.SILENCED)]
    channels = Channel.objects.routes_for(level, rule)
    if not channels:
        return [Alert.objects.create(**row, state=AlertState.STORED)]
    return [Alert.objects.create(**row, channel=channel) for channel in channels]


def _secrets() -> list[str]:
    """Every secret in use, as each transport declares them: the channels' own and the environment's."""
    return Channel.objects.secrets()


def scrub(text: str, secrets: list[str]) -> str:
    """Never let a secret (a webhook URL, a bot token, a password, or a long piece) reach alert text."""
    return hide(text, secrets)


# --- conditions: dedup and cooldown ------------------------------------------


def _breach_alerts_now(rule: AlertRule, subject: str, now: dt.datetime, *, each_time: bool = False) -> bool:
    """Record a breach of ``rule`` for ``subject``; True when it should alert now.

    It alerts when the breach starts, and again once the cooldown has passed
    since its last alert (``each_time``: events with no cooldown alert every time).
    A breach that goes on within its cooldown costs one SELECT and no write.
    """
    # Events of a rule without a cooldown alert every time: two of one bot judged at once by
    # two workers (or two clusters) must not cancel each other out, as a claim would make them.
    every_time = each_time and rule.cooldown_minutes == 0
    condition = Condition.objects.filter(rule=rule, subject=subject).first()
    if condition is None:
        try:
            with transaction.atomic():
                Condition.objects.create(rule=rule, subject=subject, started_at=now, last_alert_at=now)
            return True
        except IntegrityError:  # another worker recorded it first: its alert is the one
            if not every_time:
                return False
            condition = Condition.objects.get(rule=rule, subject=subject)
    mine = Condition.objects.filter(pk=condition.pk)
    if every_time:
        mine.filter(active=False).update(active=True, started_at=now, cleared_at=None)
        mine.update(last_alert_at=Greatest(F("last_alert_at"), Value(now, output_field=DateTimeField())))
        return True
    if not condition.active:
        return (
            mine.filter(active=False).update(active=True, started_at=now, last_alert_at=now, cleared_at=None)
            == 1
        )
    due = rule.cooldown_minutes > 0 and now - condition.last_alert_at >= rule.cooldown
    return due and mine.filter(last_alert_at=condition.last_alert_at).update(last_alert_at=now) == 1


def _clear(rule: AlertRule, subject: str, now: dt.datetime) -> Condition | None:
    """End an active breach; returns the condition when this call ended it."""
    condition = Condition.objects.filter(rule=rule, subject=subject, active=True).first()
    if condition is None:
        return None
    if Condition.objects.filter(pk=condition.pk, active=True).update(active=False, cleared_at=now) != 1:
        return None
    return condition


# --- rules over a trading day --------------------------------------------------


def _scoped(rule: AlertRule, trades: TradeQuerySet) -> TradeQuerySet:
    if rule.strategy:
        trades = trades.filter(strategy=rule.strategy)
    if rule.symbol:
        trades = trades.filter(symbol=rule.symbol)
    return trades


DayFigures = dict[tuple[int, dt.date, str, str], tuple[Decimal, int]]


def _day_figures(rule: AlertRule, bot: Bot, day: dt.date, cache: DayFigures) -> tuple[Decimal, int]:
    """Realized P&L and trade count of the day in the rule's scope: one query, shared by the day rules."""
    key = (bot.pk, day, rule.strategy, rule.symbol)
    if key not in cache:
        figures = _scoped(rule, Trade.objects.for_bot(bot)).day_figures(day)
        cache[key] = (figures.pnl, figures.trades)
    return cache[key]


def judge_day(
    rule: AlertRule, bot: Bot, day: dt.date, now: dt.datetime, cache: DayFigures | None = None
) -> list[Alert]:
    """Daily loss, max daily loss and trade frequency over ``bot``'s trading ``day``.

    No flapping: the breach's condition is the bot's trading day, and it is not
    cleared when the figure crosses back within that day, so however often P&L
    crosses the limit it alerts at the first breach and then at most once per
    cooldown (while breached). The next trading day is a new subject.
    """
    pnl, count = _day_figures(rule, bot, day, {} if cache is None else cache)
    subject = f"bot-{bot.pk}:{day.isoformat()}"
    judge = judge_for(rule.kind)
    threshold = rule.threshold
    if threshold is None:  # callers pass judged rules only; never read a missing limit as 0
        return []
    fields: list[tuple[str, object]] = [("Bot", bot.name), ("Trading day", day.isoformat())]
    if rule.kind in (RuleKind.DAILY_LOSS, RuleKind.MAX_DAILY_LOSS):
        breached = judge.breached(pnl, threshold)
        title = f"{bot.name}: realized P&L {format_number(pnl)} on {day}"
        limit = "max daily loss" if rule.kind == RuleKind.MAX_DAILY_LOSS else "daily loss"
        message = f"Realized P&L is at or below the {limit} limit of {format_number(threshold)}."
        fields += [("Realized P&L", format_number(pnl)), ("Limit", format_number(threshold))]
    else:
        breached = judge.breached(count, threshold)
        title = f"{bot.name}: {count} trades on {day}"
        message = f"More trades in one trading day than the limit of {format_number(threshold)}."
        fields += [("Trades", count), ("Limit", format_number(threshold))]
    if rule.strategy or rule.symbol:
        fields.append(("Scope", rule.scope))
    if not breached:
        return []
    if rule.kind == RuleKind.MAX_DAILY_LOSS:
        halt = halt_trading(bot, day, f"max daily loss: realized P&L {format_number(pnl)} on {day}", now)
        if halt.resumed_at is None:
            message += f" Trading is halted until {halt.ends_on}, or until an admin resumes it."
        else:
            message += f" An admin resumed trading after the halt ({halt.resumed_by or 'admin'})."
    if not _breach_alerts_now(rule, subject, now):
        return []
    return raise_alert(
        source=rule.kind,
        subject=subject,
        level=rule.level,
        title=title,
        message=message,
        fields=fields,
        rule=rule,
        bot=bot,
        now=now,
    )


def next_trading_day(day: dt.date) -> dt.date:
    following = day + dt.timedelta(days=1)
    for _ in range(15):  # the longest NYSE closure on record is far shorter
        if market.is_trading_day(following):
            return following
        following += dt.timedelta(days=1)
    return following


def halt_trading(bot: Bot, day: dt.date, reason: str, now: dt.datetime) -> TradingHalt:
    """The status endpoint says "stop" for ``bot`` until the next trading day (once per day)."""
    existing = TradingHalt.objects.filter(bot=bot, trading_day=day).first()
    if existing is not None:
        return existing  # set once a day; an admin's resume stands
    try:
        with transaction.atomic():
            return TradingHalt.objects.create(
                bot=bot, trading_day=day, ends_on=next_trading_day(day), reason=reason[:300], created_at=now
            )
    except IntegrityError:
        return TradingHalt.objects.get(bot=bot, trading_day=day)


def judge_position_sizes(rule: AlertRule, bot: Bot, trade_ids: list[int], now: dt.datetime) -> list[Alert]:
    """Fills whose notional (quantity x price) is above the threshold (the judge's SQL lookup)."""
    if rule.threshold is None:
        return []
    notional = ExpressionWrapper(
        F("quantity") * F("price"), output_field=DecimalField(max_digits=40, decimal_places=8)
    )
    trades = (
        _scoped(rule, Trade.objects.filter(bot=bot, pk__in=trade_ids))
        .annotate(notional=notional)
        .filter(**{f"notional__{judge_for(rule.kind).lookup}": rule.threshold})
        .order_by("executed_at", "pk")
    )
    alerts: list[Alert] = []
    for trade in trades:
        subject = (
            f"trade-{trade.pk}" if rule.per_trade else f"bot-{bot.pk}:{trade.trading_day}:{trade.symbol}"
        )
        if not _breach_alerts_now(rule, subject, now):
            continue
        notional_text = format_number(Decimal(trade.quantity) * Decimal(trade.price))
        alerts += raise_alert(
            source=rule.kind,
            subject=subject,
            level=rule.level,
            title=f"{bot.name}: large position {trade.side} {format_number(trade.quantity)} {trade.symbol}",
            message=f"Notional {notional_text} is above the limit of {format_number(rule.threshold)}.",
            fields=[
                ("Bot", bot.name),
                ("Symbol", trade.symbol),
                ("Side", trade.side),
                ("Quantity", format_number(trade.quantity)),
                ("Price", format_number(trade.price)),
                ("Notional", notional_text),
                ("Strategy", trade.strategy or "-"),
                ("Trade", trade.external_id),
            ],
            rule=rule,
            bot=bot,
            now=now,
        )
    return alerts


def evaluate_trades(bot_id: int, trade_ids: list[int], now: dt.datetime | None = None) -> list[Alert]:
    """After a batch was stored: the day rules for every trading day it touched, and position sizes."""
    now = now or timezone.now()
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None or not trade_ids:
        return []
    kinds = [*DAILY_KINDS, RuleKind.POSITION_SIZE]
    rules = AlertRule.objects.enabled().for_bot(bot).filter(kind__in=kinds).judged()
    if not rules:
        return []
    days = sorted(
        set(
            Trade.objects.filter(pk__in=trade_ids).order_by().values_list("trading_day", flat=True).distinct()
        )
    )
    alerts: list[Alert] = []
    cache: DayFigures = {}
    for rule in rules:
        if rule.kind == RuleKind.POSITION_SIZE:
            alerts += judge_position_sizes(rule, bot, trade_ids, now)
        else:
            for day in days:
                alerts += judge_day(rule, bot, day, now, cache)
    return alerts


def evaluate_new_trades(bot_id: int, first_trade_id: int, now: dt.datetime | None = None) -> list[Alert]:
    """Every trade of the bot from ``first_trade_id`` on (ids grow with each stored batch)."""
    trade_ids = list(
        Trade.objects.filter(bot_id=bot_id, pk__gte=first_trade_id).order_by().values_list("pk", flat=True)
    )
    return evaluate_trades(bot_id, trade_ids, now=now)


# --- the schedule ------------------------------------------------------------------


def judge_bot_stopped(rule: AlertRule, bot: Bot, now: dt.datetime) -> list[Alert]:
    """No heartbeat for ``threshold`` minutes of market hours; a recovery notice when they return."""
    if bot.last_heartbeat_at is None or rule.threshold is None:
        return []  # a bot that never reported cannot have stopped
    judge = judge_for(rule.kind)
    subject = f"bot-{bot.pk}"
    if not judge.breached(_minutes_between(bot.last_heartbeat_at, now), rule.threshold):
        condition = _clear(rule, subject, now)
        if condition is None:
            return []
        down_for = now - condition.started_at
        return raise_alert(
            source="bot_recovered",
            subject=subject,
            level=Level.INFO,
            title=f"{bot.name} is reporting again",
            message=f"Heartbeats are back after the bot was reported stopped {_minutes(down_for)} ago.",
            fields=[("Bot", bot.name), ("Last heartbeat", _local(bot.last_heartbeat_at))],
            rule=rule,
            bot=bot,
            now=now,
        )
    hours = market.market_hours(market.trading_day_of(now))
    if hours is None or not hours[0] <= now <= hours[1]:
        return []  # outside market hours silence is expected; an open breach stays open
    # Silent since before the open: count from the open, so the bell itself is not a breach.
    silent_since = max(bot.last_heartbeat_at, hours[0])
    if not judge.breached(_minutes_between(silent_since, now), rule.threshold):
        return []
    if not _breach_alerts_now(rule, subject, now):
        return []
    return raise_alert(
        source=rule.kind,
        subject=subject,
        level=rule.level,
        title=f"{bot.name} has stopped reporting",
        message=f"No heartbeat for {_minutes(now - bot.last_heartbeat_at)} during market hours.",
        fields=[
            ("Bot", bot.name),
            ("Last heartbeat", _local(bot.last_heartbeat_at)),
            ("Limit", f"{format_number(rule.threshold)} min"),
        ],
        rule=rule,
        bot=bot,
        now=now,
    )


def evaluate_schedule(now: dt.datetime | None = None) -> list[Alert]:
    """The periodic pass: bot stopped, and today's daily thresholds (so an edited threshold counts).

    It also judges trades whose evaluation task was lost (a request left waiting too long).
    """
    now = now or timezone.now()
    today = market.trading_day_of(now)
    alerts: list[Alert] = []
    for pending in PendingEvaluation.objects.filter(queued_at__lt=now - PendingEvaluation.STALE):
        first_id = PendingEvaluation.objects.claim(pending.bot_id)
        if first_id is not None:
            alerts += evaluate_new_trades(pending.bot_id, first_id, now=now)
    rules = AlertRule.objects.enabled().filter(kind__in=[*DAILY_KINDS, RuleKind.BOT_STOPPED]).judged()
    if not rules:
        return alerts
    bots = list(Bot.objects.filter(is_active=True))
    cache: DayFigures = {}
    for rule in rules:
        for bot in bots:
            if rule.bot_id is not None and rule.bot_id != bot.pk:
                continue
            if rule.kind == RuleKind.BOT_STOPPED:
                alerts += judge_bot_stopped(rule, bot, now)
            else:
                alerts += judge_day(rule, bot, today, now, cache)
    return alerts


# --- events ---------------------------------------------------------------------------


def alert_for_event(event: BotEvent, now: dt.datetime | None = None) -> list[Alert]:
    """A bot event becomes an alert by its kind's rule (the rule sets the level)."""
    now = now or timezone.now()
    rules = (
        AlertRule.objects.enabled()
        .for_bot(event.bot)
        .filter(kind=RuleKind.BOT_EVENT, event_kind=event.kind)
        .judged()
    )
    alerts: list[Alert] = []
    for rule in rules:
        if not _breach_alerts_now(rule, f"bot-{event.bot_id}", now, each_time=True):
            continue
        fields: list[tuple[str, object]] = [
            ("Bot", event.bot.name),
            ("Event", event.kind),
            ("Reported level", event.level),
            ("Occurred", _local(event.occurred_at)),
        ]
        if event.details:
            fields.append(("Details", json.dumps(event.details, default=str, sort_keys=True)))
        alerts += raise_alert(
            source=f"event:{event.kind}",
            subject=f"event-{event.pk}",
            level=rule.level,
            title=f"{event.bot.name}: {event.get_kind_display()}",
            message=event.message,
            fields=fields,
            rule=rule,
            bot=event.bot,
            now=now,
        )
    return alerts


# --- problems of the site itself -----------------------------------------------------


def alert_for_site_problem(
    *, kind: str, level: str, title: str, message: str, subject: str, now: dt.datetime | None = None
) -> list[Alert]:
    """A ``site_alert`` signal: one alert per kind and subject per ``SITE_ALERT_COOLDOWN``."""
    now = now or timezone.now()
    source = f"site:{kind}"
    cooldown = dt.timedelta(minutes=setting("SITE_ALERT_COOLDOWN_MINUTES"))
    recent = Alert.objects.filter(source=source, subject=subject, created_at__gt=now - cooldown)
    if recent.exists():
        return []
    if level not in Level.values:
        level = Level.WARNING
    return raise_alert(source=source, subject=subject, level=level, title=title, message=message, now=now)


def _minutes_between(start: dt.datetime, end: dt.datetime) -> Decimal:
    return Decimal(str((end - start).total_seconds())) / 60


def _minutes(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def _local(moment: dt.datetime) -> str:
    return f"{moment.astimezone(market.market_zone()):%Y-%m-%d %H:%M:%S %Z}"
