"""Bots, their API keys, their trades and the events they report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, Literal

from django.db import IntegrityError, connections, models, transaction
from django.db.models import Count, Q, Sum
from django.db.models.sql.constants import MULTI
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from monitor_client.wire import (
    DECIMAL_PLACES,
    EVENT_ID_MAX_LENGTH,
    EVENT_KINDS,
    EVENT_LEVELS,
    EXTERNAL_ID_MAX_LENGTH,
    HEARTBEAT_STATUS_MAX_LENGTH,
    MAX_ABS_PNL,
    MAX_DIGITS,
    MAX_PRICE,
    MAX_QUANTITY,
    SIDES,
    STRATEGY_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
)
from trades.formats import format_price, format_quantity
from trades.ingest import BatchResult, store_batch
from trades.limits import StorableDecimal, validate_metadata
from trades.market import (
    calendar_for,
    default_calendar_code,
    validate_calendar_code,
    validate_timezone_name,
)
from trades.summary import (
    Breakdown,
    DailySummary,
    DayFigures,
    Drawdown,
    DrawdownMeter,
    Performance,
    PeriodSummary,
    TradeRef,
    daily_pnl,
    pnl_units,
)


class Bot(models.Model):
    """One trading bot that reports to this site."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(
        default=True, help_text="Inactive bots' keys are refused and their trades not accepted."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_heartbeat_status = models.CharField(
        max_length=HEARTBEAT_STATUS_MAX_LENGTH, blank=True, editable=False
    )
    last_heartbeat_details = models.JSONField(default=dict, blank=True, editable=False)
    stopped_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the bot said it shut down (a shutdown event); cleared when a heartbeat,"
        " a new trade or a startup event says it runs again.",
    )
    calendar = models.CharField(
        max_length=32,
        default=default_calendar_code,
        db_default="XNYS",  # a row written without it (raw SQL, an older process mid-deploy)
        validators=[validate_calendar_code],
        help_text="The market it trades: an exchange code (XNYS, XLON, XTKS, XHKG ...), 24/7 or 24/5."
        " Its trading days, daily figures, summaries and halts follow it. After changing it, run"
        " manage.py recompute_trading_days with the bot's name.",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        db_default="UTC",
        validators=[validate_timezone_name],
        help_text="For a 24/7 or 24/5 calendar, the IANA time zone its days start in (an exchange"
        " keeps its own).",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def heartbeat_age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """How long ago the bot last said it was alive, or None if it never did."""
        if self.last_heartbeat_at is None:
            return None
        return (now or timezone.now()) - self.last_heartbeat_at

    def is_stale(self, grace: dt.timedelta, now: dt.datetime | None = None) -> bool:
        """True when the bot has been silent for longer than ``grace``."""
        age = self.heartbeat_age(now)
        return age is None or age > grace

    def record_heartbeat(
        self, status: str = "", details: dict[str, Any] | None = None, **state: Any
    ) -> dt.datetime:
        """Store a heartbeat with one UPDATE, so a busy bot costs one write. A bot that beats runs:
        a shutdown it reported before is over.

        ``state``: what the heartbeat said of the bot's state, checked (``trades.state``):
        ``positions`` (a list of ``Position``), ``equity``, ``cash``, ``host`` (figures by
        ``wire.HOST_FIELDS`` name). When any is given it is kept as a ``BotSnapshot`` in the
        same transaction, and ``state_reported`` is sent once that has committed."""
        from trades.signals import state_reported

        now = timezone.now()
        state = {name: value for name, value in state.items() if value is not None}
        with transaction.atomic():
            Bot.objects.filter(pk=self.pk).update(
                last_heartbeat_at=now,
                last_heartbeat_status=status,
                last_heartbeat_details=details or {},
                stopped_at=None,
            )
            if state:
                snapshot = BotSnapshot.objects.create(bot=self, taken_at=now, **snapshot_fields(**state))
                transaction.on_commit(
                    lambda: state_reported.send(sender=BotSnapshot, bot=self, snapshot=snapshot)
                )
        self.last_heartbeat_at, self.last_heartbeat_status = now, status
        self.last_heartbeat_details = details or {}
        self.stopped_at = None
        return now

    # A heartbeat the bot's client sent just before the shutdown may reach us just after it: its
    # request may take the client's timeout (10 s by default), and the clocks may differ a little.
    HEARTBEAT_IN_FLIGHT = dt.timedelta(seconds=30)

    def record_shutdown(self, occurred_at: dt.datetime, now: dt.datetime | None = None) -> bool:
        """The bot said it shut down at ``occurred_at`` (its clock, never later than ours): stopped
        from then on, unless a heartbeat came more than ``HEARTBEAT_IN_FLIGHT`` after it (an old
        shutdown replayed from the spool of a bot that has started again). Whether the bot is now
        stopped. A wrong "stopped" would last until the next heartbeat; a missed one for good."""
        moment = min(occurred_at, now or timezone.now())
        latest_beat = occurred_at + self.HEARTBEAT_IN_FLIGHT
        changed = (
            Bot.objects.filter(pk=self.pk)
            .filter(Q(last_heartbeat_at__isnull=True) | Q(last_heartbeat_at__lte=latest_beat))
            .update(stopped_at=moment)
        )
        if changed:
            self.stopped_at = moment
        return bool(changed)

    def record_running(self, since: dt.datetime, using: str = "default") -> None:
        """Something the bot did at ``since`` (a new trade, a startup event) says it runs: a shutdown
        it reported before that is over.

        Asked of the database whatever this instance says: the bot of an API request may be a few
        seconds old (``trades.auth``'s key cache), its ``stopped_at`` with it. One UPDATE, which
        matches no row unless the bot is stopped, in SQL written here: every trade batch runs it,
        and the ORM's compiling cost more than the statement."""
        connection = connections[using]
        quote = connection.ops.quote_name
        stopped = quote(Bot._meta.get_field("stopped_at").column)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(Bot._meta.db_table)} SET {stopped} = NULL"
                f" WHERE {quote(Bot._meta.pk.column)} = %s AND {stopped} < %s",
                [self.pk, connection.ops.adapt_datetimefield_value(since)],
            )
            if cursor.rowcount:
                self.stopped_at = None

    def issue_key(self, *, read_only: bool = False, name: str = "") -> tuple[BotKey, str]:
        """Create a key for this bot; the plain key is returned once and never stored."""
        label = name or f"{self.name} {'read-only' if read_only else 'write'} key"
        return BotKey.objects.create_key(bot=self, read_only=read_only, name=label[:50])


class BotKeyManager(BaseAPIKeyManager):
    def get_usable_keys(self) -> models.QuerySet[BotKey]:
        """Keys that may be used, with their bot, as every API request looks them up.

        The bot's free-form columns are left out: loading a large heartbeat
        ``details`` on every request once made each request of that bot slow.
        """
        return (
            self.filter(revoked=False, bot__is_active=True)
            .select_related("bot")
            .defer("bot__last_heartbeat_details", "bot__description")
        )


class BotKey(AbstractAPIKey):
    """An API key of one bot, stored hashed (SHA-512 of a random key)."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="keys")
    read_only = models.BooleanField(
        default=False, help_text="A read-only key may query trades and summaries but not write."
    )

    objects = BotKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "bot API key"
        verbose_name_plural = "bot API keys"

    @property
    def can_write(self) -> bool:
        return not self.read_only


# The choices of the wire contract (``monitor_client.wire``), which the bot checks too.
Side = models.TextChoices("Side", [(side, (side, side.title())) for side in SIDES])


class TradeQuerySet(models.QuerySet["Trade"]):
    def for_bot(self, bot: Bot) -> TradeQuerySet:
        return self.filter(bot=bot)

    def for_day(self, day: dt.date) -> TradeQuerySet:
        """Trades whose trading day (the date in the market's time zone) is ``day``."""
        return self.filter(trading_day=day)

    def newest_first(self) -> TradeQuerySet:
        return self.order_by("-executed_at", "-id")

    def matching(
        self,
        *,
        symbol: str | None = None,
        strategy: str | None = None,
        side: str | None = None,
        day: dt.date | None = None,
    ) -> TradeQuerySet:
        """Apply the filters the API and ``view_trades`` offer; None means no filter."""
        qs = self
        if symbol:
            qs = qs.filter(symbol=symbol.upper())
        if strategy is not None:
            qs = qs.filter(strategy=strategy)
        if side:
            qs = qs.filter(side=side.upper())
        if day is not None:
            qs = qs.filter(trading_day=day)
        return qs

    def figures_per_day(
        self, start: dt.date, end: dt.date | None = None, *, by: Sequence[str] = ()
    ) -> list[tuple[tuple[str, ...], DayFigures]]:
        """The counting every summary and day rule shares, done by the database in one GROUP BY.

        A row per trading day from ``start`` to ``end`` (both included; ``end``
        defaults to ``start``) and, with ``by``, per value of those fields (such as
        ``("strategy", "symbol")``): the values of ``by``, and the row's figures.
        For one bot without ``by``, the grouping reads the (bot, trading_day,
        executed_at, id, pnl) index alone, never the table: 30 days of a busy bot in a
        few milliseconds.
        """
        end = start if end is None else end
        if start == end:
            trades = self.filter(trading_day=start)
            if by:
                # Grouped over "id IN (the day's trades)": grouped directly, SQLite walks the
                # (bot, strategy) index through every trade the bot ever made to spare a sort,
                # which took over a second with a million trades instead of milliseconds.
                trades = self.model.objects.using(self.db).filter(pk__in=trades.order_by().values("pk"))
        else:
            trades = self.filter(trading_day__gte=start, trading_day__lte=end)
        rows = (
            trades.order_by()
            .values_list("trading_day", *by)
            .annotate(
                n_trades=Count("id"),
                n_closed=Count("pnl"),
                pnl_sum=Sum("pnl"),
                n_wins=Count("id", filter=Q(pnl__gt=0)),
                n_losses=Count("id", filter=Q(pnl__lt=0)),
                profit=Sum("pnl", filter=Q(pnl__gt=0)),
                loss=Sum("pnl", filter=Q(pnl__lt=0)),
            )
        )
        zero = Decimal(0)
        result = []
        for day, *values in rows:
            names, (count, closed, pnl, wins, losses, profit, loss) = values[: len(by)], values[len(by) :]
            figures = DayFigures(day, count, closed, pnl or zero, wins, losses, profit or zero, loss or zero)
            result.append((tuple(names), figures))
        return result

    def day_figures(self, day: dt.date) -> DayFigures:
        """The trading day's figures over the trades in this queryset (the day rules judge these)."""
        return DayFigures.total(day, (figures for _, figures in self.figures_per_day(day)))

    def realized_pnl(self, day: dt.date) -> Decimal:
        """The sum of the day's realized P&L (trades without a P&L count as zero)."""
        return self.day_figures(day).pnl

    def daily_summary(self, day: dt.date) -> DailySummary:
        """Figures for one trading day over the trades in this queryset (see ``DailySummary``)."""
        trades = self.for_day(day)
        groups = self.figures_per_day(day, by=("strategy", "symbol"))
        totals = DayFigures.total(day, (figures for _, figures in groups))
        return DailySummary(
            **totals.totals(),
            date=day,
            best_trade=_extreme_trade(trades, "-pnl"),
            worst_trade=_extreme_trade(trades, "pnl"),
            by_strategy=_breakdown(groups, 0),
            by_symbol=_breakdown(groups, 1),
        )

    def period_summary(
        self, start: dt.date, end: dt.date, *, breakdown: bool | Literal["strategy"] = True
    ) -> PeriodSummary:
        """Performance over trading days ``start`` to ``end`` (both included); see ``PeriodSummary``.

        One GROUP BY per trading day (and, with ``breakdown``, per strategy and
        symbol; with ``breakdown="strategy"``, per strategy alone) does the counting
        in the database (``figures_per_day``); Python only adds up the rows, a few per
        day, and each strategy's daily series comes from the same rows. The drawdowns
        are measured trade by trade, from one ordered read of the closed trades' (time,
        day, P&L) (``drawdowns``). Without ``breakdown``, or per strategy alone (the
        cockpit), an index alone answers the counting, in the order it groups.
        """
        by = _BREAKDOWNS[breakdown]
        groups = self.figures_per_day(start, end, by=by)
        every = [figures for _, figures in groups]
        overall, *per_group = self.drawdowns(start, end, breakdown=breakdown)

        def per(index: int) -> dict[str, list[DayFigures]]:
            return _per_name(groups, index) if index < len(by) else {}

        def performance(index: int) -> dict[str, Performance]:
            drawdowns = per_group[index]
            # A group with opening fills alone has no drawdown: no closed trade.
            return {
                name: Performance.from_days(days, drawdowns.get(name)) for name, days in per(index).items()
            }

        strategies = per(0)
        return PeriodSummary(
            start=start,
            end=end,
            overall=Performance.from_days(every, overall),
            days=tuple(daily_pnl(_per_day(every))),
            by_strategy=performance(0),
            by_symbol=performance(1),
            strategy_days={name: tuple(daily_pnl(_per_day(rows))) for name, rows in strategies.items()},
        )

    def drawdowns(
        self, start: dt.date, end: dt.date, *, breakdown: bool | Literal["strategy"] = True
    ) -> tuple[Drawdown | None, dict[str, Drawdown | None], dict[str, Drawdown | None]]:
        """The deepest fall of the cumulative realized P&L, trade by trade, over trading days ``start``
        to ``end``: overall and (with ``breakdown``) per strategy and per symbol, or (with
        ``breakdown="strategy"``) per strategy alone (see ``Drawdown``).

        One read of the closed trades' (id, P&L) in the order they were executed, as bare
        tuples: for one bot without ``breakdown`` or per strategy alone (the cockpit) the
        (bot, trading day, time, id, P&L, strategy) index gives them in that order, without
        the table or a sort. Then one read of the few trades that mark a drawdown, for their times.
        """
        by = _BREAKDOWNS[breakdown]
        # The trading day is the market's date of the time, so (day, time) is the time's order.
        rows = (
            self.filter(trading_day__gte=start, trading_day__lte=end, pnl__isnull=False)
            .order_by("trading_day", "executed_at", "id")
            .values_list("id", "pnl", *by)
        )
        overall = DrawdownMeter()
        per_name: tuple[dict[str, DrawdownMeter], dict[str, DrawdownMeter]] = ({}, {})
        for pk, raw_pnl, *names in _raw_rows(rows):
            pnl = pnl_units(raw_pnl)
            overall.add(pk, pnl)
            for meters, name in zip(per_name, names, strict=False):
                # Not setdefault: that would make a meter for every trade, to throw away.
                meter = meters.get(name)
                if meter is None:
                    meter = meters[name] = DrawdownMeter()
                meter.add(pk, pnl)
        meters = [overall, *per_name[0].values(), *per_name[1].values()]
        marks = set().union(*(meter.keys() for meter in meters))
        moments: dict[int, tuple[dt.datetime, dt.date]] = {}
        if marks:
            found = self.model.objects.using(self.db).filter(pk__in=marks)
            moments = {pk: (at, day) for pk, at, day in found.values_list("id", "executed_at", "trading_day")}
        strategies, symbols = (
            {name: meter.result(moments, in_units=True) for name, meter in each.items()} for each in per_name
        )
        return overall.result(moments, in_units=True), strategies, symbols


def _raw_rows(rows: models.QuerySet[Any], chunk: int = 5000) -> Iterator[tuple[Any, ...]]:
    """The rows of a ``values_list`` query as the database cursor gives them, without Django's
    converters: for the drawdowns' read of every closed trade of a period (the id, the P&L as
    ``pnl_units`` reads it, names), whose conversion to Decimal took two thirds of its time
    (95 ms of 146 for 62,000 trades). Only for columns that need no converter but the P&L's.
    Read in chunks as ``iterator()`` reads (a server-side cursor on PostgreSQL unless the
    database's settings turn them off): a year's trades are never all in memory at once."""
    chunked = not connections[rows.db].settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
    compiler = rows.query.get_compiler(rows.db)
    for batch in compiler.execute_sql(MULTI, chunked_fetch=chunked, chunk_size=chunk):
        yield from batch


# ``breakdown``'s fields to group by: both, the strategy alone (the cockpit's strategies), none.
_BREAKDOWNS: dict[bool | str, tuple[str, ...]] = {
    True: ("strategy", "symbol"),
    "strategy": ("strategy",),
    False: (),
}


def _per_day(figures: Iterable[DayFigures]) -> list[DayFigures]:
    """Rows of the same day added up, one per day."""
    merged: dict[dt.date, DayFigures] = {}
    for each in figures:
        merged[each.day] = merged[each.day] + each if each.day in merged else each
    return list(merged.values())


def _per_name(groups: list[tuple[tuple[str, ...], DayFigures]], key: int) -> dict[str, list[DayFigures]]:
    """The rows of each strategy (key 0) or symbol (key 1) of ``figures_per_day``, in name order."""
    by_name: dict[str, list[DayFigures]] = {}
    for names, figures in groups:
        by_name.setdefault(names[key], []).append(figures)
    return {name: by_name[name] for name in sorted(by_name)}


def _breakdown(groups: list[tuple[tuple[str, ...], DayFigures]], key: int) -> dict[str, Breakdown]:
    """One day's totals per strategy (key 0) or per symbol (key 1), in name order."""
    result = {}
    for name, rows in _per_name(groups, key).items():
        total = DayFigures.total(rows[0].day, rows)
        result[name] = Breakdown(total.trades, total.pnl, total.win_rate)
    return result


def _extreme_trade(trades: TradeQuerySet, order: str) -> TradeRef | None:
    row = (
        trades.filter(pnl__isnull=False)
        .order_by(order, "executed_at", "id")
        .values("symbol", "pnl", "external_id", "executed_at")
        .first()
    )
    return TradeRef(**row) if row else None


class TradeManager(models.Manager.from_queryset(TradeQuerySet)):  # type: ignore[misc]
    def record_batch(self, bot: Bot, trades: Sequence[dict[str, Any]]) -> BatchResult:
        """Store new trades of ``bot`` all-or-nothing; see ``trades.ingest.store_batch``.

        After the transaction commits, ``trades.signals.trades_recorded`` announces
        the new ones (never ``post_save``: this path does not go through ``save()``).
        """
        return store_batch(self.model, self.db, bot, trades)


class Trade(models.Model):
    """One fill reported by a bot."""

    # No index of its own: the unique (bot, external_id) constraint serves lookups by bot.
    bot = models.ForeignKey(Bot, on_delete=models.PROTECT, related_name="trades", db_index=False)
    external_id = models.CharField(
        max_length=EXTERNAL_ID_MAX_LENGTH, help_text="The bot's own id for this fill."
    )
    symbol = models.CharField(max_length=SYMBOL_MAX_LENGTH)
    side = models.CharField(max_length=max(map(len, SIDES)), choices=Side.choices)
    quantity = models.DecimalField(
        max_digits=MAX_DIGITS,
        decimal_places=DECIMAL_PLACES,
        validators=[StorableDecimal(MAX_QUANTITY, positive=True)],
    )
    price = models.DecimalField(
        max_digits=MAX_DIGITS,
        decimal_places=DECIMAL_PLACES,
        validators=[StorableDecimal(MAX_PRICE, positive=True)],
    )
    strategy = models.CharField(max_length=STRATEGY_MAX_LENGTH, blank=True, default="")
    pnl = models.DecimalField(
        "P&L",
        max_digits=MAX_DIGITS,
        decimal_places=DECIMAL_PLACES,
        null=True,
        blank=True,
        validators=[StorableDecimal(MAX_ABS_PNL, positive=False)],
        help_text="Realized P&L of this fill; empty for opening fills.",
    )
    executed_at = models.DateTimeField()
    trading_day = models.DateField(editable=False, help_text="The execution date in the market's time zone.")
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_metadata])
    received_at = models.DateTimeField(auto_now_add=True)

    objects = TradeManager()

    class Meta:
        ordering = ("-executed_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=("bot", "external_id"), name="trade_unique_external_id"),
        ]
        indexes = [
            models.Index(fields=("bot", "-executed_at"), name="trade_bot_time"),
            models.Index(fields=("bot", "trading_day", "-executed_at"), name="trade_bot_day_time"),
            models.Index(fields=("bot", "symbol", "-executed_at"), name="trade_bot_symbol_time"),
            models.Index(fields=("bot", "strategy", "-executed_at"), name="trade_bot_strategy_time"),
            models.Index(fields=("trading_day",), name="trade_day"),
            # The admin's trade list, newest first over every bot (ties fall back on the row id),
            # and one trading day's trades newest first, without a sort.
            models.Index(fields=("executed_at",), name="trade_time"),
            models.Index(fields=("trading_day", "executed_at"), name="trade_day_time"),
            # Covers a period's per-day figures (the cockpit, the period summary) without the table,
            # and gives its closed trades in the order they were executed (ties by id) for the
            # drawdown, with their strategy for the drawdown of each (the cockpit's strategies).
            models.Index(
                fields=("bot", "trading_day", "executed_at", "id", "pnl", "strategy"),
                name="trade_bot_day_time_pnl",
            ),
            # Covers the per-day figures of each strategy in the order they are grouped: no table, no sort.
            models.Index(fields=("bot", "trading_day", "strategy", "pnl"), name="trade_bot_day_strategy_pnl"),
        ]

    def __str__(self) -> str:
        """Like a fill: "SELL 65 NVDA @ 123.47" (stored as 65.00000000 and 123.47000000)."""
        return f"{self.side} {format_quantity(self.quantity)} {self.symbol} @ {format_price(self.price)}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.trading_day = calendar_for(self.bot).trading_day_of(self.executed_at)
        super().save(*args, **kwargs)


# The kinds and levels of the wire contract (``monitor_client.wire``), which the bot
# checks too: ``EventKind.CRASH == "crash"``, labelled "Crash".
EventKind = models.TextChoices("EventKind", [(kind.upper(), kind) for kind in EVENT_KINDS])
EventLevel = models.TextChoices("EventLevel", [(level.upper(), level) for level in EVENT_LEVELS])


class BotEventQuerySet(models.QuerySet["BotEvent"]):
    def record(self, bot: Bot, **fields: Any) -> tuple[BotEvent, bool]:
        """Store an event for ``bot``; with an ``event_id`` already stored for it, store nothing.

        Returns the event and whether it is new. A ``shutdown`` marks the bot stopped
        (``Bot.record_shutdown``), a ``startup`` running again. A bot that retries an event after a
        timeout sends the same ``event_id``, so the event (and its alert, which follows
        the new row) happens once. Two copies racing each other meet at the unique
        constraint: the loser answers with the winner's row.
        """
        event_id = fields.get("event_id") or None
        fields["event_id"] = event_id
        if event_id is not None:
            stored = self.filter(bot=bot, event_id=event_id).first()
            if stored is not None:
                return stored, False
        try:
            with transaction.atomic():
                event = self.create(bot=bot, **fields)
                if event.kind == EventKind.SHUTDOWN:
                    bot.record_shutdown(event.occurred_at)
                elif event.kind == EventKind.STARTUP:
                    bot.record_running(event.occurred_at)
                return event, True
        except IntegrityError:
            if event_id is None:
                raise
            return self.get(bot=bot, event_id=event_id), False


class BotEvent(models.Model):
    """Something the bot reported about itself: a start, a lost connection, a crash."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="events")
    # NULL for events sent without one: a unique constraint lets many NULLs through.
    event_id = models.CharField(
        max_length=EVENT_ID_MAX_LENGTH,
        null=True,
        blank=True,
        help_text="The bot's own id for this event; a repeat is answered, not stored again.",
    )
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    level = models.CharField(max_length=16, choices=EventLevel.choices, default=EventLevel.INFO)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(auto_now_add=True)

    objects = BotEventQuerySet.as_manager()

    class Meta:
        ordering = ("-occurred_at", "-id")
        indexes = [
            models.Index(fields=("bot", "-occurred_at"), name="event_bot_time"),
            models.Index(fields=("level", "-occurred_at"), name="event_level_time"),
        ]
        constraints = [models.UniqueConstraint(fields=("bot", "event_id"), name="event_unique_event_id")]

    def __str__(self) -> str:
        return f"{self.level} {self.kind}: {self.message[:60]}"


# The snapshots that reported equity or cash, and host figures: the conditions of their partial
# indexes, and the filters that use them (a query must state the condition as the index does).
REPORTED_ACCOUNT = Q(equity__isnull=False) | Q(cash__isnull=False)
REPORTED_HOST = (
    Q(host_pid__isnull=False)
    | Q(host_started_at__isnull=False)
    | Q(rss_bytes__isnull=False)
    | Q(cpu_percent__isnull=False)
    | Q(memory_available_bytes__isnull=False)
    | Q(memory_total_bytes__isnull=False)
    | Q(disk_free_bytes__isnull=False)
    | Q(disk_total_bytes__isnull=False)
)


class BotSnapshotQuerySet(models.QuerySet["BotSnapshot"]):
    def with_positions(self) -> BotSnapshotQuerySet:
        """Snapshots whose heartbeat reported the positions (an empty list included: flat)."""
        return self.filter(positions__isnull=False)

    def latest_with_positions(self, bot: Bot, before: dt.datetime | None = None) -> BotSnapshot | None:
        """The bot's newest snapshot that reported positions, taken before ``before`` when given."""
        snapshots = self.filter(bot=bot).with_positions()
        if before is not None:
            snapshots = snapshots.filter(taken_at__lt=before)
        return snapshots.order_by("-taken_at", "-id").first()


class BotSnapshot(models.Model):
    """The bot's state as one heartbeat reported it (``trades.state``): open positions, account, host.

    A heartbeat that carries none of it stores no snapshot. ``positions`` is NULL when
    not reported, ``[]`` when flat; ``unrealized_pnl`` is their sum, worked out once here.
    Old snapshots are thinned by a scheduled task (``trades.retention``).
    """

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(help_text="When the site received the heartbeat.")
    positions = models.JSONField(null=True, blank=True, editable=False)
    position_count = models.PositiveIntegerField(null=True, blank=True)
    unrealized_pnl = models.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True
    )
    equity = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True)
    cash = models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, null=True, blank=True)
    host_pid = models.PositiveIntegerField(null=True, blank=True)
    host_started_at = models.DateTimeField(null=True, blank=True)
    rss_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_available_bytes = models.BigIntegerField(null=True, blank=True)
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    disk_free_bytes = models.BigIntegerField(null=True, blank=True)
    disk_total_bytes = models.BigIntegerField(null=True, blank=True)

    objects = BotSnapshotQuerySet.as_manager()

    HOST_COLUMNS = {
        "pid": "host_pid",
        "started_at": "host_started_at",
        "rss_bytes": "rss_bytes",
        "cpu_percent": "cpu_percent",
        "memory_available_bytes": "memory_available_bytes",
        "memory_total_bytes": "memory_total_bytes",
        "disk_free_bytes": "disk_free_bytes",
        "disk_total_bytes": "disk_total_bytes",
    }

    class Meta:
        ordering = ("-taken_at", "-id")
        indexes = [
            models.Index(fields=("bot", "taken_at"), name="snapshot_bot_time"),
            # The snapshots with positions alone (day_pnl's: the day's last, the last before it),
            # so a bot that sends host figures every minute and positions rarely is not scanned.
            models.Index(
                fields=("bot", "taken_at"),
                condition=Q(positions__isnull=False),
                name="snapshot_bot_positions_time",
            ),
            # And those with equity or cash, and those with host figures: a bot that never sends
            # one of them is not scanned snapshot by snapshot for it (the cockpit, /status/).
            models.Index(
                fields=("bot", "taken_at"), condition=REPORTED_ACCOUNT, name="snapshot_bot_account_time"
            ),
            models.Index(fields=("bot", "taken_at"), condition=REPORTED_HOST, name="snapshot_bot_host_time"),
        ]

    def __str__(self) -> str:
        return f"{self.bot_id} at {self.taken_at:%Y-%m-%d %H:%M:%S}"

    @property
    def has_host(self) -> bool:
        return any(getattr(self, column) is not None for column in self.HOST_COLUMNS.values())

    def host(self) -> dict[str, Any] | None:
        """The host figures as the heartbeat named them (None when none was reported)."""
        if not self.has_host:
            return None
        return {name: getattr(self, column) for name, column in self.HOST_COLUMNS.items()}

    @property
    def disk_free_percent(self) -> Decimal | None:
        """Free disk in percent of the disk (None without both figures)."""
        return _percent(self.disk_free_bytes, self.disk_total_bytes)

    @property
    def memory_available_percent(self) -> Decimal | None:
        """Available memory in percent of the machine's (None without both figures)."""
        return _percent(self.memory_available_bytes, self.memory_total_bytes)

    def position_list(self) -> list[Any]:
        """The reported positions (``trades.state.Position``); empty when flat or not reported."""
        from trades.state import Position

        return [Position.from_json(item) for item in self.positions or ()]


def _percent(part: int | None, total: int | None) -> Decimal | None:
    return None if part is None or not total else Decimal(part) * 100 / Decimal(total)


def snapshot_fields(
    *,
    positions: list[Any] | None = None,
    equity: Decimal | None = None,
    cash: Decimal | None = None,
    host: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``BotSnapshot``'s columns from a heartbeat's checked state (see ``Bot.record_heartbeat``)."""
    from trades.state import unrealized_pnl

    fields: dict[str, Any] = {"equity": equity, "cash": cash}
    if positions is not None:
        fields.update(
            positions=[position.as_json() for position in positions],
            position_count=len(positions),
            unrealized_pnl=unrealized_pnl(positions),
        )
    for name, value in (host or {}).items():
        fields[BotSnapshot.HOST_COLUMNS[name]] = value
    return fields


class HourFigures(models.Model):
    """One bot's fills and realized P&L in one clock hour (UTC), stored once the hour has ended
    (``trades.hours``): the history the anomaly rules judge a bot's current hour against.

    ``market_open``: the bot's market was open at some time in the hour (its calendar: a 24/7
    bot's always is); closed hours are kept, so the task knows where it stopped, but left out of
    every baseline."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="hours", db_index=False)
    hour_start = models.DateTimeField(help_text="The hour's start, on the hour in UTC.")
    market_open = models.BooleanField()
    fills = models.PositiveIntegerField()
    realized_pnl = models.DecimalField(max_digits=MAX_DIGITS + 6, decimal_places=DECIMAL_PLACES)
    open_change = models.DecimalField(
        max_digits=MAX_DIGITS + 6,
        decimal_places=DECIMAL_PLACES,
        null=True,
        help_text="The change of the bot's reported unrealized P&L over the hour; empty when it did"
        " not report its positions within the hour before its start and before its end.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("bot", "hour_start"), name="hour_figures_unique_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.bot_id} {self.hour_start:%Y-%m-%d %H:%M}Z: {self.fills} fills"
