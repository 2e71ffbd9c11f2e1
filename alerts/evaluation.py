"""Judging the rules: which rules apply when, and what their judges find, as alerts.

After new trades, on the schedule, on a bot event and after heartbeats that carried the
bot's state (positions, account, host), evaluation finds the enabled
rules of the kinds judged then (``Judge.judged_on``) that apply to the bot, and asks
each rule's judge (``alerts.rules``). What a judge finds, evaluation turns into alerts
the same way for every kind:

Each rule keeps one ``Condition`` per subject (a bot's trading day, a bot, a
symbol). A breach alerts when it starts and again after the rule's cooldown
while it lasts; a condition that ends is cleared (and the judge may say so).
Claims on a condition are conditional UPDATEs, so two workers judging the
same batch raise one alert, not two. Alerts go to the outbox (``raise_alert``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Max, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from alerts.conf import setting
from alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Channel,
    Condition,
    Level,
    PendingEvaluation,
    PendingStateEvaluation,
    Silence,
    rules_judging,
)
from alerts.rules.base import Finding, Memo, NewState, NewTrades, Notice, Recovery
from alerts.transports import hide
from trades import market
from trades.models import Bot, BotEvent, Trade

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


# --- what a judge found, as alerts ----------------------------------------------------------


def _alerts(rule: AlertRule, bot: Bot, findings: Iterable[Finding], now: dt.datetime) -> list[Alert]:
    """The judge's findings, taken one by one as it finds them (its side effects keep their order).

    A breach alerts when it starts and again once per cooldown while it lasts; a breach
    that is over is ended, and the judge says so when it has something to say.
    """
    alerts: list[Alert] = []
    for finding in findings:
        if isinstance(finding, Recovery):
            condition = _clear(rule, finding.subject, now)
            notice = None if condition is None else rule.judge.recovered(rule, bot, condition.started_at, now)
            if notice is not None:
                alerts += _raise(rule, bot, finding.subject, notice, now)
        elif _breach_alerts_now(rule, finding.subject, now, each_time=finding.each_time):
            alerts += _raise(rule, bot, finding.alert_subject or finding.subject, finding.notice, now)
    return alerts


def _raise(rule: AlertRule, bot: Bot, subject: str, notice: Notice, now: dt.datetime) -> list[Alert]:
    return raise_alert(
        source=notice.source or rule.kind,
        subject=subject,
        level=notice.level or rule.level,
        title=notice.title,
        message=notice.message,
        fields=notice.fields,
        rule=rule,
        bot=bot,
        now=now,
    )


# --- after new trades ---------------------------------------------------------------------


def evaluate_trades(bot_id: int, trade_ids: list[int], now: dt.datetime | None = None) -> list[Alert]:
    """After a batch was stored: every rule judged on new trades (the day rules judge each trading
    day the batch touched). The batch is every trade of the bot from the least of ``trade_ids`` to
    the greatest: ids grow with each stored batch."""
    if not trade_ids:
        return []
    return _evaluate_batch(bot_id, min(trade_ids), max(trade_ids), now or timezone.now())


def evaluate_new_trades(bot_id: int, first_trade_id: int, now: dt.datetime | None = None) -> list[Alert]:
    """Every trade of the bot from ``first_trade_id`` on (ids grow with each stored batch)."""
    last_id = Trade.objects.filter(bot_id=bot_id, pk__gte=first_trade_id).aggregate(last=Max("pk"))["last"]
    if last_id is None:
        return []
    return _evaluate_batch(bot_id, first_trade_id, last_id, now or timezone.now())


def _evaluate_batch(bot_id: int, first_id: int, last_id: int, now: dt.datetime) -> list[Alert]:
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return []
    rules = rules_judging(AlertRule.objects.enabled().for_bot(bot).judged_on("trades").judged(), bot.pk)
    if not rules:
        return []
    batch = NewTrades.between(bot, first_id, last_id)
    alerts: list[Alert] = []
    memo: Memo = {}
    for rule in rules:
        alerts += _alerts(rule, bot, rule.judge.after_trades(rule, batch, now, memo), now)
    return alerts


# --- after heartbeats with the bot's state ------------------------------------------------


def evaluate_state(bot_id: int, since: dt.datetime, now: dt.datetime | None = None) -> list[Alert]:
    """After heartbeats that carried the bot's state, the first of them taken at ``since``: every
    rule judged on the state (the daily losses with open positions marked to market, the host
    rules), each judging the bot's newest state; the day rules judge each trading day from
    ``since``'s to now's."""
    now = now or timezone.now()
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        return []
    rules = rules_judging(AlertRule.objects.enabled().for_bot(bot).judged_on("state").judged(), bot.pk)
    if not rules:
        return []
    calendar = market.calendar_for(bot)
    first, last = calendar.trading_day_of(min(since, now)), calendar.trading_day_of(now)
    days = [first] if first == last else [first, last]
    state = NewState(bot=bot, days=days)
    alerts: list[Alert] = []
    memo: Memo = {}
    for rule in rules:
        alerts += _alerts(rule, bot, rule.judge.on_state(rule, state, now, memo), now)
    return alerts


# --- the schedule ------------------------------------------------------------------


def evaluate_schedule(now: dt.datetime | None = None) -> list[Alert]:
    """The periodic pass: every rule judged on the schedule, for each active bot it applies to
    (bot stopped, and today's daily thresholds, so an edited threshold counts).

    It also judges trades and states whose evaluation task was lost (a request left waiting too long).
    """
    now = now or timezone.now()
    alerts: list[Alert] = []
    for pending in PendingEvaluation.objects.filter(queued_at__lt=now - PendingEvaluation.STALE):
        first_id = PendingEvaluation.objects.claim(pending.bot_id)
        if first_id is not None:
            alerts += evaluate_new_trades(pending.bot_id, first_id, now=now)
    for waiting in PendingStateEvaluation.objects.filter(queued_at__lt=now - PendingStateEvaluation.STALE):
        since = PendingStateEvaluation.objects.claim(waiting.bot_id)
        if since is not None:
            alerts += evaluate_state(waiting.bot_id, since, now=now)
    rules = AlertRule.objects.enabled().judged_on("schedule").judged()
    if not rules:
        return alerts
    bots = list(Bot.objects.filter(is_active=True))
    memo: Memo = {}
    judging = {bot.pk: {rule.pk for rule in rules_judging(rules, bot.pk)} for bot in bots}
    today = {bot.pk: market.calendar_for(bot).today(now) for bot in bots}  # each on its calendar
    for rule in rules:
        for bot in bots:
            if rule.pk in judging[bot.pk]:
                judged = rule.judge.on_schedule(rule, bot, today[bot.pk], now, memo)
                alerts += _alerts(rule, bot, judged, now)
    return alerts


# --- events ---------------------------------------------------------------------------


def alert_for_event(event: BotEvent, now: dt.datetime | None = None) -> list[Alert]:
    """A bot event becomes an alert by the rules judged on events that name its kind (the rule sets
    the level)."""
    now = now or timezone.now()
    rules = rules_judging(
        AlertRule.objects.enabled()
        .for_bot(event.bot)
        .judged_on("event")
        .filter(event_kind=event.kind)
        .judged(),
        event.bot_id,
    )
    alerts: list[Alert] = []
    for rule in rules:
        alerts += _alerts(rule, event.bot, rule.judge.on_event(rule, event, now), now)
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
