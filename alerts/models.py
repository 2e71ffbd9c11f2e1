"""Alert rules, channels, silences, the alert outbox and its delivery records, trading halts.

An alert row is written before anything is sent (the outbox); workers claim
pending rows with a conditional UPDATE and record every delivery attempt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import IntegrityError, connections, models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from alerts import rules
from alerts.rules.base import Judge, Moment
from alerts.transports import TRANSPORTS, Transport, kind_choices, transport_class
from monitor_client.wire import STRATEGY_MAX_LENGTH, SYMBOL_MAX_LENGTH
from trades import market
from trades.formats import format_market_time
from trades.models import Bot, EventKind, TradeQuerySet


class Level(models.TextChoices):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


LEVEL_RANK = {Level.INFO: 0, Level.WARNING: 1, Level.CRITICAL: 2}


class AlertRuleQuerySet(models.QuerySet["AlertRule"]):
    def enabled(self) -> AlertRuleQuerySet:
        return self.filter(enabled=True)

    def for_bot(self, bot: Bot) -> AlertRuleQuerySet:
        """Rules that apply to ``bot``: its own and those for every bot."""
        return self.filter(Q(bot__isnull=True) | Q(bot=bot))

    def judged_on(self, moment: Moment) -> AlertRuleQuerySet:
        """Rules of the kinds judged after new trades (``trades``), on the schedule or on a bot event."""
        return self.filter(kind__in=rules.kinds_judged_on(moment))

    def judged_by(self, judge: type[Judge]) -> AlertRuleQuerySet:
        """Rules of the kinds that ``judge`` (a class) judges."""
        return self.filter(kind__in=rules.kinds_where(lambda member: isinstance(member, judge)))

    def judged(self) -> list[AlertRule]:
        """The rules their kind's judge accepts: a broken stored rule is skipped, never read as 0."""
        return [rule for rule in self if not rule.problems]

    def broken(self) -> list[AlertRule]:
        """Enabled rules their kind's judge refuses (stored before a check existed): not evaluated."""
        return [rule for rule in self.enabled() if rule.problems]


def rules_judging(rules: Iterable[AlertRule], bot_id: int) -> list[AlertRule]:
    """Of ``rules``, those that judge the bot ``bot_id``: its own and the general ones (no bot), except
    that for a kind whose judge says so (``own_rule_replaces_general``, e.g. bot stopped: one
    heartbeat grace per bot), a bot with rules of its own of that kind is judged by those alone.
    """
    applying = [rule for rule in rules if rule.bot_id in (None, bot_id)]
    own = {rule.kind for rule in applying if rule.bot_id == bot_id and rule.judge.own_rule_replaces_general}
    return [rule for rule in applying if rule.bot_id is not None or rule.kind not in own]


class AlertRule(models.Model):
    """A condition over a bot's trades, heartbeats or events that raises an alert."""

    name = models.SlugField(max_length=100, unique=True, help_text="Unique; the key in alerts.yaml.")
    kind = models.CharField(max_length=32, choices=rules.kind_choices)
    event_kind = models.CharField(
        max_length=32, choices=EventKind.choices, blank=True, help_text="For bot event rules only."
    )
    threshold = models.DecimalField(
        max_digits=20,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Daily loss: the day's P&L at or below it. Trade frequency: trades above it. "
        "Position size: notional above it. Bot stopped: minutes without a heartbeat. "
        "Host disk, host memory: percent free below it (above 0, below 100). "
        "Trade rate anomaly, P&L anomaly: the robust score at which an hour is unusual (e.g. 6).",
    )
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.WARNING)
    enabled = models.BooleanField(default=True)
    cooldown_minutes = models.PositiveIntegerField(
        default=60,
        help_text="While a condition lasts, repeat its alert this often (0: once). "
        "For events: at most one alert per this many minutes (0: every event).",
    )
    per_trade = models.BooleanField(
        default=False,
        help_text="Position size only: one alert per large fill, instead of one per symbol and day.",
    )
    bot = models.ForeignKey(
        Bot, null=True, blank=True, on_delete=models.CASCADE, help_text="Empty: every bot."
    )
    strategy = models.CharField(
        max_length=STRATEGY_MAX_LENGTH, blank=True, help_text="Empty: every strategy."
    )
    symbol = models.CharField(max_length=SYMBOL_MAX_LENGTH, blank=True, help_text="Empty: every symbol.")
    channels = models.ManyToManyField(
        "Channel",
        blank=True,
        related_name="rules",
        help_text="Empty: every enabled channel that takes the rule's level.",
    )

    objects = AlertRuleQuerySet.as_manager()

    class Meta:
        ordering = ("kind", "event_kind", "name")

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.symbol = self.symbol.upper()
        super().save(*args, **kwargs)

    @property
    def cooldown(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.cooldown_minutes)

    @property
    def judge(self) -> Judge:
        """The judge of the rule's kind (KeyError for a kind that is not one: see ``problems``)."""
        return rules.judge_for(self.kind)

    @property
    def problems(self) -> dict[str, str]:
        """Field -> what its kind's judge (``alerts.rules``) finds wrong; empty for a valid rule."""
        return rules.problems({name: getattr(self, name) for name in rules.JUDGED_FIELDS})

    def in_scope(self, trades: TradeQuerySet) -> TradeQuerySet:
        """The trades the rule is limited to: its strategy's and its symbol's, when it names them."""
        if self.strategy:
            trades = trades.filter(strategy=self.strategy)
        if self.symbol:
            trades = trades.filter(symbol=self.symbol)
        return trades

    @property
    def scope(self) -> str:
        """A short description of what the rule is limited to, for alert texts."""
        parts = [f"bot {self.bot}" if self.bot_id else "", self.strategy and f"strategy {self.strategy}"]
        parts.append(self.symbol and f"symbol {self.symbol}")
        return ", ".join(p for p in parts if p) or "all trades"


# ``any_rule_judged_on``'s SQL and parameters, by moment and database alias.
_COMPILED_EXISTS: dict[tuple[str, str], tuple[str, tuple[Any, ...]]] = {}


def any_rule_judged_on(moment: Moment, using: str = "default") -> bool:
    """Whether an enabled rule is judged at ``moment``: ``AlertRule.objects.enabled().judged_on(moment)
    .exists()``, asked of the database every time, its SQL compiled once per database. Every trade
    batch and every heartbeat with state asks it, and compiling the query cost more than running
    it; it has no other parameter (the kinds come from the fixed ``rules.RULE_KINDS``)."""
    key = (moment, using)
    compiled = _COMPILED_EXISTS.get(key)
    if compiled is None:
        query = AlertRule.objects.using(using).enabled().judged_on(moment).query.exists()
        compiled = _COMPILED_EXISTS[key] = query.get_compiler(using=using).as_sql()
    sql, params = compiled
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


class ChannelQuerySet(models.QuerySet["Channel"]):
    def ensure_defaults(self) -> None:
        """The default channel of each kind whose environment variables are set, named after its kind.

        ``discord`` comes with the first migration; the others appear once their
        variables are set (``TELEGRAM_BOT_TOKEN`` and ``TELEGRAM_CHAT_ID`` make
        ``telegram``). Costs one SELECT when any is configured, none otherwise.
        """
        wanted = {kind for kind in TRANSPORTS if _environment_complete(kind)}
        if not wanted:
            return
        existing = set(Channel.objects.filter(name__in=wanted).values_list("name", flat=True))
        for kind in sorted(wanted - existing):
            try:
                with transaction.atomic():
                    Channel.objects.get_or_create(name=kind, defaults={"kind": kind})
            except IntegrityError:
                pass  # another worker made it first

    def for_level(self, level: str) -> list[Channel]:
        """Enabled, configured channels that take alerts of ``level``."""
        self.ensure_defaults()
        channels = self.filter(
            enabled=True,
            min_level__in=[name for name, rank in LEVEL_RANK.items() if rank <= LEVEL_RANK[level]],
        )
        return [channel for channel in channels if channel.is_configured]

    def routes_for(self, level: str, rule: AlertRule | None = None) -> list[Channel]:
        """Where an alert of ``level`` raised by ``rule`` goes.

        Every enabled channel whose minimum level it reaches; a rule that names
        channels goes to those of them alone (their minimum level still applies).
        """
        channels = self.for_level(level)
        if rule is not None and rule.pk is not None:
            named = set(rule.channels.values_list("pk", flat=True))
            if named:
                channels = [channel for channel in channels if channel.pk in named]
        return channels

    def resume(self) -> int:
        """Clear the permanent failure that disabled these channels; how many were disabled.

        Their waiting alerts go out with the next delivery run; a channel that was not
        disabled is not counted.
        """
        return self.exclude(disabled_reason="").update(disabled_reason="", disabled_at=None)

    def failing(self) -> ChannelQuerySet:
        """Enabled channels whose last send failed (health names them at once, not minutes later)."""
        return self.filter(enabled=True, failing_since__isnull=False)

    def record_success(self, at: dt.datetime) -> int:
        """A send went through: the channel works again."""
        return self.update(last_success_at=at, failing_since=None, consecutive_failures=0, last_error="")

    def record_failure(self, error: str, at: dt.datetime) -> int:
        """A send failed: failing since the first failure in a row, with the latest error (secret-free)."""
        return self.update(
            failing_since=Coalesce("failing_since", Value(at, output_field=models.DateTimeField())),
            last_failure_at=at,
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=error[:500],
        )

    def secrets(self) -> list[str]:
        """Every secret in use, the environment's and each channel's own: masked in every text we write."""
        found: list[str] = []
        for kind in TRANSPORTS:
            transport = transport_class(kind)
            found += transport.secrets_of(transport.environment())
        for kind, config in self.values_list("kind", "config"):
            if kind in TRANSPORTS and config:
                found += transport_class(kind).secrets_of(config)
        return sorted(set(found))


def _environment_complete(kind: str) -> bool:
    transport = transport_class(kind)
    return transport.is_complete(transport.environment())


class Channel(models.Model):
    """Where alerts go: one destination of one kind (Discord, Telegram, ntfy, Slack, e-mail, webhook).

    ``config`` holds the kind's settings, checked by its transport. Empty, the
    channel uses the environment's settings for its kind as a whole (the
    default channel); a channel's own settings never mix with the
    environment's, so a token set for one server is never sent to another.
    """

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=kind_choices, default="discord")
    config = models.JSONField(
        "settings",
        default=dict,
        blank=True,
        help_text="The kind's settings, secrets included (never shown back). "
        "Empty: the environment's (e.g. DISCORD_WEBHOOK_URL).",
    )
    min_level = models.CharField("minimum level", max_length=16, choices=Level.choices, default=Level.INFO)
    enabled = models.BooleanField(default=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1)],
        help_text="Messages per minute; alerts beyond it wait and go out as one digest.",
    )
    disabled_reason = models.TextField(
        blank=True,
        help_text="Set when the destination refused us for good (e.g. the webhook was deleted); "
        "alerts wait until it is fixed. Clear it to resume.",
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    # What its last sends did (the delivery records them): failing from the first failure in a row
    # until the next success. The error is in words that name the host and the cause, never a secret.
    last_success_at = models.DateTimeField("last success", null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    # One worker at a time sends for a channel, so its rate limit holds across workers.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def transport_class(self) -> type[Transport]:
        return transport_class(self.kind)

    @property
    def uses_environment(self) -> bool:
        return not self.config

    @property
    def settings(self) -> dict[str, Any]:
        """The settings in force: the channel's own, else the environment's. Secrets: never log them."""
        if self.kind not in TRANSPORTS:
            return {}
        return dict(self.config) if self.config else self.transport_class.environment()

    @property
    def is_configured(self) -> bool:
        return self.kind in TRANSPORTS and self.transport_class.is_complete(self.settings)

    @property
    def destination(self) -> str:
        """Where alerts go, masked (fit for pages and logs); empty when not configured."""
        if not self.is_configured:
            return ""
        return self.transport_class(self).destination()

    def secrets(self) -> list[str]:
        return self.transport_class.secrets_of(self.settings) if self.kind in TRANSPORTS else []

    @property
    def is_suspended(self) -> bool:
        return bool(self.disabled_reason)

    @property
    def is_failing(self) -> bool:
        return self.failing_since is not None

    @property
    def failing_words(self) -> str:
        """``failing since 2026-01-15 10:31:05 EST (3 sends): cannot reach …: connection refused``."""
        if self.failing_since is None:
            return ""
        sends = f"{self.consecutive_failures} send{'s' if self.consecutive_failures != 1 else ''}"
        return f"failing since {format_market_time(self.failing_since)} ({sends}): {self.last_error}"

    @property
    def state_words(self) -> str:
        """What its last sends did, in words: working, failing since …, disabled …, off, not configured."""
        if not self.enabled:
            return "off"
        if self.disabled_reason:
            since = f" since {format_market_time(self.disabled_at)}" if self.disabled_at else ""
            return f"disabled{since}: {self.disabled_reason}"
        if self.failing_since is not None:
            return self.failing_words
        return "working" if self.is_configured else "not configured"


class SilenceQuerySet(models.QuerySet["Silence"]):
    def covering(self, rule: AlertRule | None, now: dt.datetime) -> list[Silence]:
        """Silences in force at ``now`` for ``rule`` (a silence without a rule mutes everything).

        The database narrows to the rule's silences that have not ended; whether a
        repeating one's window is open now is judged in market time, in Python.
        """
        scope = Q(rule__isnull=True)
        if rule is not None:
            scope |= Q(rule=rule)
        candidates = self.filter(scope).filter(Q(until__isnull=True) | Q(until__gt=now))
        return [silence for silence in candidates if silence.in_force(now)]


class Repeat(models.TextChoices):
    ONCE = "", "no: once, until the time above"
    TRADING_DAYS = "trading_days", "every trading day (NYSE calendar)"
    WEEKDAYS = "weekdays", "on the chosen days of the week"


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order


class QuickEnd(models.TextChoices):
    """Ends an operator picks instead of typing one, computed in market time when saved."""

    HOUR = "hour", "for an hour"
    TRADING_DAY = "trading_day", "the rest of the trading day (until midnight, market time)"
    NEXT_OPEN = "next_open", "until the next open"

    def end(self, now: dt.datetime) -> dt.datetime:
        if self == QuickEnd.HOUR:
            return now + dt.timedelta(hours=1)
        if self == QuickEnd.TRADING_DAY:
            return market.end_of_trading_day(now)
        return market.next_open(now)


class Silence(models.Model):
    """Mute one rule, or everything: until a given time, or in a window that repeats.

    A repeating silence works like Alertmanager's time intervals: a window of
    market time (``MARKET_TIMEZONE``) on every trading day, or on chosen days of
    the week, e.g. 09:30-09:35 on trading days for the opening noise, or
    Saturdays 00:00-06:00 for maintenance. Muted alerts are still recorded
    (state ``silenced``), so the history shows what a silence held back.
    """

    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.CASCADE, help_text="Empty: every alert."
    )
    until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Once: muted until then. Repeating: repeats until then (empty: until removed).",
    )
    repeat = models.CharField(max_length=16, choices=Repeat.choices, blank=True, default=Repeat.ONCE)
    days = models.CharField(
        max_length=27, blank=True, help_text="For 'on the chosen days': e.g. sat or mon,wed,fri."
    )
    start_time = models.TimeField(null=True, blank=True, help_text="Repeating: from, market time.")
    end_time = models.TimeField(
        null=True, blank=True, help_text="Repeating: until, market time (00:00: the end of the day)."
    )
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SilenceQuerySet.as_manager()

    class Meta:
        ordering = ("-until",)

    def __str__(self) -> str:
        target = self.rule or "everything"
        if not self.repeat:
            return f"{target} until {self.until:%Y-%m-%d %H:%M}" if self.until else str(target)
        when = "trading days" if self.repeat == Repeat.TRADING_DAYS else self.days
        return f"{target} {when} {self.start_time:%H:%M}-{self.end_time:%H:%M}"

    @property
    def weekdays(self) -> list[str]:
        return [day.strip().lower() for day in self.days.split(",") if day.strip()]

    @property
    def problems(self) -> dict[str, str]:
        """Field -> what is wrong; the admin's form and ``clean`` use it."""
        found: dict[str, str] = {}
        if not self.repeat:
            if self.until is None:
                found["until"] = "A silence that does not repeat needs an end."
            for name in ("days", "start_time", "end_time"):
                if getattr(self, name) not in ("", None):
                    found[name] = "Only a repeating silence takes days and times; choose how it repeats."
            return found
        if self.repeat not in Repeat.values:
            found["repeat"] = f"One of {', '.join(v for v in Repeat.values if v)}."
        if self.start_time is None:
            found["start_time"] = "A repeating silence needs the time its window starts (market time)."
        if self.end_time is None:
            found["end_time"] = "A repeating silence needs the time its window ends (market time)."
        elif self.start_time is not None and self._end() <= self.start_time:
            found["end_time"] = (
                "Must be after the start (00:00 is the end of the day); "
                "a window over midnight is two silences."
            )
        unknown = [day for day in self.weekdays if day not in WEEKDAY_NAMES]
        if self.repeat == Repeat.WEEKDAYS and (unknown or not self.weekdays):
            found["days"] = f"Days of the week from {', '.join(WEEKDAY_NAMES)}, comma separated."
        if self.repeat == Repeat.TRADING_DAYS and self.days:
            found["days"] = "Every trading day takes no days of the week; leave it empty."
        return found

    def clean(self) -> None:
        found = self.problems
        if "until" not in found and (past := self.ended(timezone.now())):
            found["until"] = past
        if found:
            raise ValidationError(found)

    def ended(self, now: dt.datetime) -> str:
        """Why the end is refused when it is not after ``now`` (a silence ending now mutes nothing);
        empty when it is fine. Checked whenever a silence is saved in a form (``clean``): one that
        has run out is given a new end, or deleted."""
        if self.until is None or self.until > now:
            return ""
        shown = self.until.astimezone(market.market_zone())
        return f"Must be in the future: {shown:%Y-%m-%d %H:%M:%S %Z} has passed."

    def _end(self) -> dt.time:
        assert self.end_time is not None
        return dt.time.max if self.end_time == dt.time(0, 0) else self.end_time

    def in_force(self, now: dt.datetime) -> bool:
        """Does it mute alerts at ``now``? Repeating windows are judged in market time."""
        if self.until is not None and now >= self.until:
            return False
        if not self.repeat:
            return self.until is not None
        if self.problems:
            return False  # a window that cannot be read mutes nothing
        local = now.astimezone(market.market_zone())
        if self.repeat == Repeat.TRADING_DAYS:
            if not market.is_trading_day(local.date()):
                return False
        elif WEEKDAY_NAMES[local.weekday()] not in self.weekdays:
            return False
        assert self.start_time is not None
        return self.start_time <= local.time().replace(tzinfo=None) < self._end()


class Condition(models.Model):
    """The state of one rule for one subject: is it breached, since when, when did it last alert.

    Dedup and cooldown live here: a breach alerts once when it starts, again
    after the rule's cooldown while it lasts, and clears when it ends.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="conditions")
    subject = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    started_at = models.DateTimeField()
    last_alert_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("rule", "subject"), name="condition_unique_subject")]

    def __str__(self) -> str:
        return f"{self.rule} {self.subject}"


class AlertState(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    FOLDED = "folded", "folded into a digest"
    SILENCED = "silenced"
    STORED = "stored", "stored (no channel)"


UNSENT_STATES = (AlertState.PENDING, AlertState.SENDING)
# Still on their way (or gone out inside a digest): sending them again would send them twice.
NOT_RESENDABLE_STATES = (*UNSENT_STATES, AlertState.FOLDED)
# What a copy of an alert for another channel takes from it: the message, not its delivery.
MESSAGE_FIELDS = ("rule", "bot", "source", "subject", "level", "title", "message", "fields")


class AlertQuerySet(models.QuerySet["Alert"]):
    def unsent(self) -> AlertQuerySet:
        return self.filter(state__in=UNSENT_STATES)

    def resend(self, now: dt.datetime) -> int:
        """Send these alerts again; how many messages that queues.

        An alert that went to a channel goes back to pending there, its attempts
        reset: a sent one goes to all its recipients again, a failed one only to
        those its attempts have not reached (``Alert.reached``). One stored
        without a channel (none took its level then) is copied, created at
        ``now``, to each channel that takes its level now. Alerts still waiting
        or being sent, and those folded into a digest, are left as they are: the
        reset is one conditional UPDATE, so an alert a worker claims meanwhile is
        not put back to be sent twice.
        """
        resendable = self.exclude(state__in=NOT_RESENDABLE_STATES)
        stored = list(resendable.filter(channel__isnull=True))
        with transaction.atomic():
            # Asking for a delivered alert again means everyone; a failed one was not delivered to some.
            DeliveryAttempt.objects.filter(
                alert__in=resendable.filter(channel__isnull=False, state=AlertState.SENT)
            ).update(reached=[])
            count = resendable.filter(channel__isnull=False).update(
                state=AlertState.PENDING, attempts=0, next_attempt_at=None, held=False, last_error=""
            )
        for alert in stored:
            for channel in Channel.objects.for_level(alert.level):
                message = {name: getattr(alert, name) for name in MESSAGE_FIELDS}
                self.model.objects.create(channel=channel, created_at=now, **message)
                count += 1
        return count

    def sent_since(self, channel: Channel, moment: dt.datetime) -> int:
        """Messages the channel received since ``moment`` (a digest is one message)."""
        return self.filter(channel=channel, state=AlertState.SENT, sent_at__gte=moment).count()


class Alert(models.Model):
    """One message to one channel: written first, then sent by a worker (the outbox)."""

    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL)
    bot = models.ForeignKey(Bot, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(
        max_length=64, help_text="What raised it: a rule kind, event:<kind>, site:<kind>, test_alert, digest…"
    )
    subject = models.CharField(max_length=200, blank=True, help_text="Dedup key within the source.")
    level = models.CharField(max_length=16, choices=Level.choices)
    title = models.CharField(max_length=300)
    message = models.TextField(blank=True)
    fields = models.JSONField(default=list, blank=True, help_text="[[name, value], …] shown as embed fields.")
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    # Waited for the channel's rate-limit window; goes out in the next digest.
    held = models.BooleanField(default=False)
    folded_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="folded"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=("state", "channel", "created_at"), name="alert_outbox"),
            models.Index(fields=("channel", "state", "sent_at"), name="alert_channel_sent"),
            models.Index(fields=("source", "subject", "-created_at"), name="alert_source_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.title}"

    def reached(self) -> set[str]:
        """Whom this alert's delivery attempts have reached so far, in its transport's terms (for
        e-mail, the recipients that took it). A transport that sends to several places reads it
        so a retry sends only where the alert is still owed."""
        return {item for items in self.delivery_attempts.values_list("reached", flat=True) for item in items}

    @property
    def retried(self) -> bool:
        """A failed send is tried again later, except a test alert's: its sender reads the result once."""
        return self.source != TEST_SOURCE

    @property
    def foldable(self) -> bool:
        """Critical alerts and daily summaries always go out on their own, never in a digest."""
        return self.level != Level.CRITICAL and self.source not in REPORT_SOURCES


# What ``send_test_alert`` raises: sent at once, once, never retried.
TEST_SOURCE = "test_alert"

# Reports, not alarms: each goes out as its own message, never folded into a digest.
REPORT_SOURCES = ("daily_summary", "period_summary", "weekly_report", "digest")


class DeliveryAttempt(models.Model):
    """One request (HTTP, or an SMTP transaction) that tried to deliver an alert."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="delivery_attempts")
    channel = models.ForeignKey(Channel, null=True, on_delete=models.SET_NULL)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.FloatField(default=0)
    reached = models.JSONField(
        default=list, blank=True, help_text="Whom this attempt delivered to, as its transport names them."
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "id")

    def __str__(self) -> str:
        outcome = "delivered" if self.ok else self.error or f"status {self.status_code}"
        channel = self.channel.name if self.channel else "a deleted channel"
        return f"to {channel} at {format_market_time(self.at)}: {outcome[:80]}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class TradingHaltQuerySet(models.QuerySet["TradingHalt"]):
    def in_force(self, bot: Bot, today: dt.date) -> TradingHalt | None:
        """The halt that stops ``bot`` trading on ``today``, if any."""
        for halt in self.filter(bot=bot, resumed_at__isnull=True, trading_day__lte=today).order_by(
            "-trading_day"
        )[:5]:
            if today < halt.ends_on:
                return halt
        return None

    def halt(self, bot: Bot, day: dt.date, reason: str, now: dt.datetime) -> TradingHalt:
        """Tell ``bot`` to stop trading until the next trading day: once per trading day; an admin's
        resume stands (the day's halt is returned as it is)."""
        existing = self.filter(bot=bot, trading_day=day).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                return self.create(
                    bot=bot,
                    trading_day=day,
                    ends_on=market.calendar_for(bot).next_trading_day(day),
                    reason=reason[:300],
                    created_at=now,
                )
        except IntegrityError:  # another worker halted it first
            return self.get(bot=bot, trading_day=day)

    def halt_by_operator(
        self, bot: Bot, day: dt.date, *, by: str, now: dt.datetime
    ) -> tuple[TradingHalt, bool]:
        """An operator halts ``bot`` until the next trading day: ``(halt, whether this halted it)``.

        A halt already in force is left as it is (``False``). There is one halt per bot and trading
        day: the day's halt that was resumed stands again, now as this operator's.
        """
        current = self.in_force(bot, day)
        if current is not None:
            return current, False
        reason, by = f"halted by {by}"[:300], by[:150]
        try:
            with transaction.atomic():
                halt = self.create(
                    bot=bot,
                    trading_day=day,
                    ends_on=market.calendar_for(bot).next_trading_day(day),
                    reason=reason,
                    created_at=now,
                    halted_by=by,
                )
            return halt, True
        except IntegrityError:  # the day's halt exists, resumed (or raised a moment ago)
            pass
        again = self.filter(bot=bot, trading_day=day, resumed_at__isnull=False).update(
            resumed_at=None, resumed_by="", halted_by=by, reason=reason, created_at=now
        )
        return self.get(bot=bot, trading_day=day), bool(again)

    def all_in_force(self, today: dt.date) -> TradingHaltQuerySet:
        """Every halt that stops a bot trading on ``today`` (the cockpit's banner)."""
        return self.filter(resumed_at__isnull=True, trading_day__lte=today, ends_on__gt=today).select_related(
            "bot"
        )

    def all_in_force_at(self, now: dt.datetime) -> list[TradingHalt]:
        """Every halt that stops a bot trading at ``now``, on its bot's calendar's day (a London
        bot's day may have begun while New York's has not), in the queryset's order."""
        return [halt for halt in self._around(now).filter(resumed_at__isnull=True) if halt.covers(now)]

    def resumed_quiet_at(self, now: dt.datetime) -> list[TradingHalt]:
        """``resumed_quiet`` at ``now``, each halt on its bot's calendar's day."""
        return [halt for halt in self._around(now).filter(resumed_at__isnull=False) if halt.covers(now)]

    def _around(self, now: dt.datetime) -> TradingHaltQuerySet:
        # Every zone's date is within a day of UTC's: the candidates, checked per bot after.
        day = now.astimezone(dt.UTC).date()
        return self.filter(
            trading_day__lte=day + dt.timedelta(days=1), ends_on__gt=day - dt.timedelta(days=1)
        ).select_related("bot")

    def resumed_quiet(self, today: dt.date) -> TradingHaltQuerySet:
        """Halts an admin resumed whose trading day is not over on ``today``: their rule will not halt
        the bot again before ``ends_on`` (one halt per bot and day, and a resume stands)."""
        return self.filter(
            resumed_at__isnull=False, trading_day__lte=today, ends_on__gt=today
        ).select_related("bot")

    def resume(self, *, by: str, now: dt.datetime) -> int:
        """Let the halted bots trade again, recording who resumed and when; how many halts that resumed.

        A conditional UPDATE: a halt already resumed keeps its first resumer and time,
        so two admins pressing at once resume it once.
        """
        return self.filter(resumed_at__isnull=True).update(resumed_at=now, resumed_by=by)


class TradingHalt(models.Model):
    """Raised by the max-daily-loss rule: the bot is told to stop trading until the next trading day."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="trading_halts")
    trading_day = models.DateField()
    ends_on = models.DateField(help_text="The next trading day, when trading is allowed again.")
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    resumed_at = models.DateTimeField(null=True, blank=True)
    resumed_by = models.CharField(max_length=150, blank=True)
    halted_by = models.CharField(
        max_length=150, blank=True, help_text="The operator who halted it; empty: a rule halted it."
    )

    objects = TradingHaltQuerySet.as_manager()

    class Meta:
        ordering = ("-trading_day", "bot")
        constraints = [models.UniqueConstraint(fields=("bot", "trading_day"), name="halt_once_per_day")]

    def __str__(self) -> str:
        return f"{self.bot} halted on {self.trading_day}"

    def covers(self, now: dt.datetime) -> bool:
        """Whether ``now`` falls within the halt's days on its bot's calendar (resumed or not)."""
        return self.trading_day <= market.calendar_for(self.bot).today(now) < self.ends_on

    @property
    def quiet_until(self) -> str:
        """What a resume leaves, in words: "max daily loss will not halt alpha again until Fri
        2026-01-16 (the next trading day)". ``halt`` raises one halt per bot and trading day and a
        resume stands, so the halting rule (named first in the reason) stays quiet until ``ends_on``."""
        # An operator's halt took the day's one halt: no rule can halt the bot again that day.
        rule = "no rule" if self.halted_by else self.reason.partition(":")[0].strip() or "no rule"
        return (
            f"{rule} will not halt {self.bot} again until {self.ends_on:%a %Y-%m-%d} (the next trading day)"
        )


class PendingEvaluationQuerySet(models.QuerySet["PendingEvaluation"]):
    def request(self, bot: Bot, first_trade_id: int, now: dt.datetime) -> bool:
        """Ask for an evaluation of ``bot``'s trades from ``first_trade_id`` on; True: queue a task.

        False when an evaluation is already waiting for this bot: it will see
        these trades too (it evaluates every trade of the bot from its first id
        on, and these were committed before this call). The read comes first,
        so under load a request costs one SELECT and no write. A request
        older than ``STALE`` is taken over, in case its task was lost.
        """
        return _request(self, bot, "first_trade_id", first_trade_id, now)

    def claim(self, bot_id: int) -> int | None:
        """Take the bot's waiting request (one task gets it); the first trade id to evaluate from."""
        return _claim(self, bot_id, "first_trade_id")


def _request(queryset: models.QuerySet[Any], bot: Bot, column: str, value: Any, now: dt.datetime) -> bool:
    """Record that ``bot`` waits for an evaluation from ``value`` on (the least one wins); True when
    this call queued it (none waited, or the one waiting is older than ``STALE``: its task may be lost).

    The read comes first, so under load a request costs one SELECT and no write (a write only when
    the waiting one starts later than ``value``)."""
    model = queryset.model
    stale = now - model.STALE
    connection = connections[queryset.db]
    table = connection.ops.quote_name(model._meta.db_table)
    # SQLite's two-argument min() is PostgreSQL's LEAST().
    least = "min" if connection.vendor == "sqlite" else "LEAST"
    with connection.cursor() as cursor:
        # Whether one waits, and starts later than this one: every batch asks it.
        cursor.execute(
            f"SELECT {column} > %s FROM {table} WHERE bot_id = %s AND queued_at >= %s",
            [value, bot.pk, _db_time(connection, stale)],
        )
        waiting = cursor.fetchone()
        if waiting is not None:
            if not waiting[0]:
                return False  # it starts here or earlier: it covers this one
            # It starts later. PostgreSQL hands out ids as rows are inserted, not as they commit: a
            # batch can commit after one with higher ids queued its request, and was left unjudged.
            cursor.execute(
                f"UPDATE {table} SET {column} = {least}({column}, %s) WHERE bot_id = %s RETURNING bot_id",
                [value, bot.pk],
            )
            if cursor.fetchone() is not None:
                return False
            # Its task took it meanwhile (and judges from its own start): queue another below.
        cursor.execute(
            f"INSERT INTO {table} (bot_id, {column}, queued_at) VALUES (%s, %s, %s) "
            f"ON CONFLICT (bot_id) DO UPDATE SET queued_at = excluded.queued_at, "
            f"{column} = {least}({table}.{column}, excluded.{column}) "
            f"WHERE {table}.queued_at < %s RETURNING bot_id",
            [bot.pk, value, _db_time(connection, now), _db_time(connection, stale)],
        )
        return cursor.fetchone() is not None


def _claim(queryset: models.QuerySet[Any], bot_id: int, column: str) -> Any:
    """Take the bot's waiting request (one task gets it); its ``column``, None when none waited."""
    connection = connections[queryset.db]
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE bot_id = %s RETURNING {column}", [bot_id])
        row = cursor.fetchone()
    return None if row is None else row[0]


def _db_time(connection: Any, moment: dt.datetime) -> Any:
    """A datetime for raw SQL, as the backend's own adapter passes it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(moment)


class PendingEvaluation(models.Model):
    """A bot whose new trades wait for an evaluation task: batches that arrive meanwhile join it.

    One task per batch while the cluster keeps up; under load, the batches
    that arrive while a bot's evaluation waits in the queue are judged by that
    one task, so rules cost the cluster one evaluation per queue wait, not one
    per request.
    """

    STALE = dt.timedelta(seconds=30)

    bot = models.OneToOneField(Bot, on_delete=models.CASCADE, primary_key=True)
    first_trade_id = models.BigIntegerField()
    queued_at = models.DateTimeField()

    objects = PendingEvaluationQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.bot}: trades from #{self.first_trade_id} wait to be judged"


class PendingStateEvaluationQuerySet(models.QuerySet["PendingStateEvaluation"]):
    def request(self, bot: Bot, since: dt.datetime, now: dt.datetime) -> bool:
        """Ask for an evaluation of ``bot``'s state reported from ``since`` on; True: queue a task.

        False when one already waits for this bot: it judges the bot's newest state when it
        runs, so it covers this snapshot too. A heartbeat every few seconds costs one SELECT
        while the task waits, and the cluster one evaluation per queue wait."""
        return _request(self, bot, "since", _db_time(connections[self.db], since), now)

    def claim(self, bot_id: int) -> dt.datetime | None:
        """Take the bot's waiting request (one task gets it); when the first waiting snapshot was taken."""
        since = _claim(self, bot_id, "since")
        if isinstance(since, str):  # SQLite's raw rows hold text ...
            since = dt.datetime.fromisoformat(since)
        if since is not None and timezone.is_naive(since):  # ... of naive UTC
            since = since.replace(tzinfo=dt.UTC)
        return since


class PendingStateEvaluation(models.Model):
    """A bot whose newly reported state (``trades.BotSnapshot``) waits for an evaluation task;
    snapshots that arrive meanwhile join it (like ``PendingEvaluation`` for trades)."""

    STALE = dt.timedelta(seconds=30)

    bot = models.OneToOneField(Bot, on_delete=models.CASCADE, primary_key=True)
    since = models.DateTimeField(help_text="When the first snapshot waiting to be judged was taken.")
    queued_at = models.DateTimeField()

    objects = PendingStateEvaluationQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.bot}: state since {format_market_time(self.since)} waits to be judged"


class SummarySchedule(models.Model):
    """When the daily summary goes out (one row, edited in the admin)."""

    enabled = models.BooleanField(default=True)
    send_at = models.TimeField(default=dt.time(16, 5), help_text="Market time, on trading days.")
    last_sent_day = models.DateField(null=True, blank=True, editable=False)
    weekly_enabled = models.BooleanField(
        "weekly report", default=True, help_text="The week's performance after the week's last close."
    )
    weekly_send_at = models.TimeField(
        "weekly report at",
        default=dt.time(16, 15),
        help_text="Market time, on the last trading day of each week.",
    )
    last_weekly_sent_day = models.DateField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "daily summary schedule"

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        weekly = "on" if self.weekly_enabled else "off"
        daily = f"daily summary at {self.send_at:%H:%M} ({state})"
        return f"{daily}, weekly report at {self.weekly_send_at:%H:%M} ({weekly})"

    @classmethod
    def current(cls) -> SummarySchedule:
        schedule, _ = cls.objects.get_or_create(pk=1)
        return schedule


# --- commands from the operator's phone (Telegram) ------------------------------------------


class OperatorAction(models.Model):
    """Something an operator changed from outside the admin (a Telegram command): who, when, what."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    who = models.CharField(max_length=150, help_text="The operator, as the command's sender named them.")
    via = models.CharField(max_length=20, default="telegram")
    action = models.CharField(max_length=20)
    bot = models.ForeignKey(Bot, null=True, blank=True, on_delete=models.SET_NULL)
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(max_length=300)

    class Meta:
        ordering = ("-at", "-id")

    def __str__(self) -> str:
        return f"{self.who}: {self.action} at {format_market_time(self.at)}"


class ConfirmAction(models.TextChoices):
    HALT = "halt", "halt"
    RESUME = "resume", "resume"


class CommandConfirmationQuerySet(models.QuerySet["CommandConfirmation"]):
    def claim(self, nonce: str, user_id: int, now: dt.datetime, within: dt.timedelta | None = None) -> int:
        """Take the press of ``nonce``'s button: 1 when this press may act, else 0 (already answered,
        another user's question, or asked longer than ``within`` ago; exactly ``within`` is in time).
        A conditional UPDATE, so two presses (or two readers) act once."""
        pending = self.filter(nonce=nonce, user_id=user_id, answered_at__isnull=True)
        if within is not None:
            pending = pending.filter(asked_at__gte=now - within)
        return pending.update(answered_at=now)


class CommandConfirmation(models.Model):
    """A control command waiting for its asker's confirm press (``/halt``, ``/resume``)."""

    nonce = models.CharField(max_length=32, unique=True)
    user_id = models.BigIntegerField()
    who = models.CharField(max_length=150)
    action = models.CharField(max_length=10, choices=ConfirmAction.choices)
    bot = models.ForeignKey(Bot, on_delete=models.CASCADE)
    asked_at = models.DateTimeField()
    message_id = models.BigIntegerField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = CommandConfirmationQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.action} {self.bot} asked by {self.who}"


class CommandReader(models.Model):
    """The one reader of a Telegram bot's updates, for every process and machine of the site.

    A process reads only while it holds the lease (``holder`` until ``lease_until``), taken and
    renewed with conditional UPDATEs. ``next_update_id`` is the ``offset`` of the next
    ``getUpdates``: an update is handled in the transaction that moves it past the update, so
    each is handled once, across restarts too. Keyed by a hash of the token, never the token.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    next_update_id = models.BigIntegerField(default=0)
    holder = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True, help_text="The last answered getUpdates.")
    last_update_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last update was handled."
    )
    error = models.CharField(max_length=300, blank=True)
    error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Telegram command reader ({self.holder or 'nobody'})"
