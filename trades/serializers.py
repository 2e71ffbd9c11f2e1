"""Serializers for the smaller endpoints, and the shapes the API documents."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from monitor_client.wire import (
    DECIMAL_PLACES,
    DETAILS_MAX_BYTES,
    EARLIEST,
    EVENT_ID_MAX_LENGTH,
    EVENT_MESSAGE_MAX_LENGTH,
    HEARTBEAT_STATUS_MAX_LENGTH,
    MAX_ABS_MONEY,
    MAX_CLOCK_SKEW,
    MAX_CPU_PERCENT,
    MAX_DIGITS,
    MAX_HOST_BYTES,
    MAX_LIST_LIMIT,
    MAX_PID,
    SIDE_PATTERN,
    STRATEGY_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
)
from trades import state
from trades.formats import CENT_PLACES
from trades.jsonvalues import json_field_problem
from trades.models import BotEvent, EventKind, EventLevel, Side
from trades.summary import RATIO_PLACES
from trades.validation import (
    END_BEFORE_START,
    MAX_PERIOD_DAYS,
    MOMENT_BOUNDS,
    NOT_RFC3339,
    PERIOD_TOO_LONG,
    RFC3339_DATE_TIME_PATTERN,
    TEXT_PATTERN,
    TOO_EARLY,
    TOO_LATE,
)


class DetailsField(serializers.DictField):
    """A free-form JSON object, within the rules of ``trades.jsonvalues`` (its schema: ``trades.schema``)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        problem = json_field_problem(value, max_bytes=DETAILS_MAX_BYTES)
        if problem:
            raise serializers.ValidationError(problem)
        return value


# Django's parser alone also takes "2026-01-02 15:04" or a "+0530" offset.
RFC3339_DATE_TIME = re.compile(RFC3339_DATE_TIME_PATTERN)
# RFC 3339's full-date (``format: date``): strptime's %m and %d also take one digit.
RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@extend_schema_field({"type": "string", "format": "date-time", "pattern": RFC3339_DATE_TIME_PATTERN})
class AwareDateTimeField(serializers.DateTimeField):
    """A moment a bot reports: RFC 3339 with its offset (a naive time is ambiguous, so refused),
    within the bounds of a trade's ``executed_at``: from 2000 to a day ahead of the site's clock."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", f"RFC 3339 with an offset; naive times are refused. {MOMENT_BOUNDS}")
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> dt.datetime:
        if not isinstance(value, str) or not RFC3339_DATE_TIME.fullmatch(value):
            raise serializers.ValidationError(NOT_RFC3339)
        try:
            # RFC 3339 allows "t" and "z"; Python's parser takes only "T" and "Z".
            moment = super().to_internal_value(value.upper())
        except serializers.ValidationError:
            raise serializers.ValidationError("No such date and time (such as February 30).") from None
        if moment < EARLIEST:
            raise serializers.ValidationError(TOO_EARLY)
        if moment > timezone.now() + MAX_CLOCK_SKEW:
            raise serializers.ValidationError(TOO_LATE)
        return moment

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        if timezone.is_naive(value):
            raise serializers.ValidationError("Give the time with an offset, e.g. 2026-01-02T15:04:05Z.")
        return super().enforce_timezone(value)


class TradingDayField(serializers.DateField):
    """A trading day in a query: ``YYYY-MM-DD`` exactly (any day; one without trades matches none)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(input_formats=["%Y-%m-%d"], **kwargs)

    def to_internal_value(self, value: Any) -> dt.date:
        if not isinstance(value, str) or not RFC3339_DATE.fullmatch(value):
            raise serializers.ValidationError("Give the date as YYYY-MM-DD.")
        return super().to_internal_value(value)


# A period's days lie where the market calendar (and pandas under it) is defined.
PERIOD_DAY_PATTERN = r"^(20|21)[0-9]{2}-[0-9]{2}-[0-9]{2}$"


class PeriodDayField(TradingDayField):
    """A period's first or last trading day: ``YYYY-MM-DD`` in the years 2000 to 2199."""

    def __init__(self, **kwargs: Any) -> None:
        pattern = RegexValidator(PERIOD_DAY_PATTERN, "Must be a day in the years 2000 to 2199.")
        super().__init__(validators=[pattern], **kwargs)

    def to_internal_value(self, value: Any) -> dt.date:
        day = super().to_internal_value(value)
        if not 2000 <= day.year <= 2199:
            raise serializers.ValidationError("Must be a day in the years 2000 to 2199.")
        return day


class WholeNumberField(serializers.IntegerField):
    """An integer written as one (DRF's own also takes "5.0" and " 5")."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not re.fullmatch(r"-?[0-9]+", data, re.ASCII):
            self.fail("invalid")
        if isinstance(data, (bool, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictTextSerializer(serializers.Serializer):
    """Text fields take text only: DRF's ``CharField`` would store ``"message": 0`` as ``"0"``,
    which the OpenAPI document (``type: string``) refuses. Every ``CharField`` of a subclass,
    present or future, is held to it."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {
                name: ["Not a valid string."]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and not field.read_only
                and name in data
                and not isinstance(data[name], str)
                and not (data[name] is None and field.allow_null)
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class QuerySerializer(serializers.Serializer):
    """Query parameters, read strictly: an empty ``?symbol=`` is a 400 naming it, not "no filter".

    DRF reads a form-like ``QueryDict`` leniently (an empty value of an optional
    field counts as absent), so the query is validated as a plain dict.
    """

    @classmethod
    def of(cls, query: Any) -> QuerySerializer:
        """The serializer of ``request.query_params`` (a repeated parameter counts once, the last)."""
        return cls(data=query.dict() if hasattr(query, "dict") else dict(query))


class TradeSerializer(serializers.Serializer):
    """A stored trade as the API returns it (documentation; reads use ``values()``)."""

    id = serializers.IntegerField()
    bot = serializers.CharField(source="bot__name")
    external_id = serializers.CharField()
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    price = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    strategy = serializers.CharField()
    pnl = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, allow_null=True)
    executed_at = serializers.DateTimeField()
    trading_day = serializers.DateField()
    metadata = serializers.JSONField()
    received_at = serializers.DateTimeField()


class TradeListSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    results = TradeSerializer(many=True)


class IngestResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="One id per trade sent, in order."
    )


def _pattern(pattern: str, message: str) -> RegexValidator:
    # The validator the OpenAPI document publishes as the parameter's ``pattern``.
    return RegexValidator(pattern, message)


class TradeQuerySerializer(QuerySerializer):
    # The patterns a trade's fields are held to (trades.validation): a filter no
    # trade can match is a mistake worth a 400, and the document says so.
    symbol = serializers.CharField(
        required=False,
        max_length=SYMBOL_MAX_LENGTH,
        trim_whitespace=False,
        validators=[
            _pattern(SYMBOL_PATTERN, "Must be ASCII letters, digits and . : / _ - (a letter or digit first).")
        ],
        help_text="A symbol, in any case.",
    )
    strategy = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=STRATEGY_MAX_LENGTH,
        trim_whitespace=False,
        validators=[_pattern(TEXT_PATTERN, "Must not contain control characters.")],
        help_text='Empty: trades without a strategy ("").',
    )
    side = serializers.CharField(
        required=False,
        trim_whitespace=False,
        validators=[_pattern(SIDE_PATTERN, "Must be BUY or SELL.")],
        help_text="BUY or SELL, in any case.",
    )
    date = TradingDayField(required=False, help_text="A trading day, YYYY-MM-DD.")
    limit = WholeNumberField(required=False, min_value=1, max_value=MAX_LIST_LIMIT, default=50)

    def validate_side(self, value: str) -> str:
        return value.upper()


class SummaryQuerySerializer(QuerySerializer):
    date = TradingDayField(
        required=False,
        help_text="A trading day, YYYY-MM-DD. Default: today in MARKET_TIMEZONE.",
    )


class PeriodQuerySerializer(QuerySerializer):
    start = PeriodDayField(required=False, help_text="First trading day, YYYY-MM-DD (default: 30 back).")
    end = PeriodDayField(
        required=False,
        help_text="Last trading day, included, YYYY-MM-DD (default: today). "
        f"Not before `start`, and at most {MAX_PERIOD_DAYS} days after it.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start and end and end < start:
            raise serializers.ValidationError({"end": [END_BEFORE_START.format(end=end, start=start)]})
        if start and end and (end - start).days > MAX_PERIOD_DAYS:
            raise serializers.ValidationError({"end": [PERIOD_TOO_LONG.format(days=MAX_PERIOD_DAYS)]})
        return attrs


@extend_schema_field(state.positions_schema())
class PositionsField(serializers.Field):
    """The bot's open positions (``trades.state``): errors by position and field."""

    def to_internal_value(self, data: Any) -> list[state.Position]:
        try:
            return state.parse_positions(data)
        except state.StateError as exc:
            raise serializers.ValidationError(exc.errors) from None

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(state.money_schema())
class StateMoneyField(serializers.Field):
    """An account's value (equity, cash): a JSON number, signed, within ``MAX_ABS_MONEY``."""

    def to_internal_value(self, data: Any) -> Decimal:
        try:
            return state.number(data, MAX_ABS_MONEY, positive=False)
        except state.StateError as exc:
            raise serializers.ValidationError(exc.errors) from None

    def to_representation(self, value: Any) -> Any:
        return value


class StrictNumberField(serializers.FloatField):
    """A JSON number (DRF's own also takes "1.5" and true), finite."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise serializers.ValidationError(state.NOT_A_NUMBER)
        if isinstance(data, float) and not math.isfinite(data):
            raise serializers.ValidationError(state.NOT_FINITE)
        return super().to_internal_value(data)


class JSONWholeNumberField(WholeNumberField):
    """A whole number in JSON: ``5`` or, as JSON Schema's ``integer`` has it, ``5.0``."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, float) and math.isfinite(data) and data.is_integer():
            data = int(data)
        return super().to_internal_value(data)


def _bytes(help_text: str) -> JSONWholeNumberField:
    return JSONWholeNumberField(required=False, min_value=0, max_value=MAX_HOST_BYTES, help_text=help_text)


class HostSerializer(serializers.Serializer):
    """The machine and process the bot runs on, each figure optional (left out when the bot's
    platform does not give it). Other keys are ignored: the client gathers these figures by
    itself, and a newer client's new figure must not make an older site refuse its heartbeats."""

    pid = JSONWholeNumberField(
        required=False, min_value=1, max_value=MAX_PID, help_text="The bot's process id."
    )
    started_at = AwareDateTimeField(
        required=False, help_text="When the bot's process started. " + MOMENT_BOUNDS
    )
    rss_bytes = _bytes("The bot process's resident memory.")
    cpu_percent = StrictNumberField(
        required=False,
        min_value=0,
        max_value=MAX_CPU_PERCENT,
        help_text="The bot process's CPU since the previous heartbeat, 100 per busy core.",
    )
    memory_available_bytes = _bytes("The machine's memory available to new work.")
    memory_total_bytes = _bytes("The machine's memory.")
    disk_free_bytes = _bytes("Free space on the disk of the bot's working folder.")
    disk_total_bytes = _bytes("The size of that disk.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = {}
        for part, whole in (
            ("memory_available_bytes", "memory_total_bytes"),
            ("disk_free_bytes", "disk_total_bytes"),
        ):
            if part in attrs and whole in attrs and attrs[part] > attrs[whole]:
                errors[part] = [state.ABOVE_TOTAL]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class HeartbeatSerializer(StrictTextSerializer):
    """A heartbeat: the bot is alive; what it is doing (``status``) and anything else (``details``),
    and, optionally, its state: open positions, the account's equity and cash, the host's figures.
    A heartbeat with any of these is kept as a snapshot of the bot's state."""

    # DRF's CharField refuses NUL and unpaired surrogates itself.
    status = serializers.CharField(
        required=False, allow_blank=True, max_length=HEARTBEAT_STATUS_MAX_LENGTH, default=""
    )
    details = DetailsField(required=False, default=dict)
    positions = PositionsField(required=False, allow_null=True, write_only=True)
    equity = StateMoneyField(
        required=False,
        allow_null=True,
        write_only=True,
        help_text="The account's equity as the bot knows it.",
    )
    cash = StateMoneyField(
        required=False, allow_null=True, write_only=True, help_text="The account's cash as the bot knows it."
    )
    host = HostSerializer(required=False, allow_null=True, write_only=True)
    received_at = serializers.DateTimeField(read_only=True)


class EventSerializer(StrictTextSerializer, serializers.ModelSerializer):
    """Something that happened to the bot: a start, a lost connection, a crash."""

    event_id = serializers.CharField(
        required=False,
        allow_null=True,
        min_length=1,
        max_length=EVENT_ID_MAX_LENGTH,
        help_text="Optional; the bot's own id for this event, unique per bot (like a trade's external_id). "
        "A repeat answers 200 with the stored event and stores and alerts nothing; "
        "send the same id when retrying an event.",
    )
    kind = serializers.ChoiceField(choices=EventKind.choices)
    level = serializers.ChoiceField(choices=EventLevel.choices, default=EventLevel.INFO)
    message = serializers.CharField(allow_blank=True, required=False, max_length=EVENT_MESSAGE_MAX_LENGTH)
    details = DetailsField(required=False, default=dict)
    occurred_at = AwareDateTimeField(required=False)

    class Meta:
        model = BotEvent
        fields = ("id", "event_id", "kind", "level", "message", "details", "occurred_at", "received_at")
        read_only_fields = ("id", "received_at")

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "get"):
            data = dict(data)
            for name in ("kind", "level"):
                if isinstance(data.get(name), str):
                    data[name] = data[name].strip().lower()
        return super().to_internal_value(data)


def _money(help_text: str, *, allow_null: bool = True) -> serializers.DecimalField:
    return serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, allow_null=allow_null, help_text=help_text
    )


WIN_RATE_MEANS = "Percent of closed trades that won, two decimals (a ratio to four places); null without one."


class TradeRefSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    pnl = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    external_id = serializers.CharField()
    executed_at = serializers.DateTimeField()


class BreakdownSerializer(serializers.Serializer):
    trades = serializers.IntegerField()
    pnl = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    win_rate = serializers.FloatField(allow_null=True, help_text=WIN_RATE_MEANS)


# trades.summary.Totals, where the daily summary and a period's performance both begin. A comment,
# not a docstring: the schema would show a docstring as each summary's description.
class TotalsSerializer(serializers.Serializer):
    total_trades = serializers.IntegerField()
    closed_trades = serializers.IntegerField()
    total_pnl = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text=WIN_RATE_MEANS)


class DailySummarySerializer(TotalsSerializer):
    date = serializers.DateField()
    best_trade = TradeRefSerializer(allow_null=True)
    worst_trade = TradeRefSerializer(allow_null=True)
    by_strategy = serializers.DictField(child=BreakdownSerializer())
    by_symbol = serializers.DictField(child=BreakdownSerializer())
    day_pnl = _money(
        "The day's P&L with open positions marked to market at the day's last heartbeat that"
        " reported positions (as `GET /api/v1/positions/` works out `day_pnl`): `total_pnl` + `open_pnl`."
        " Null when the bot reported no positions that day.",
    )
    open_pnl = _money(
        "The part of `day_pnl` the open positions make. Null with `day_pnl`.",
    )
    day_pnl_as_of = serializers.DateTimeField(
        allow_null=True, help_text="When the heartbeat `day_pnl` is marked at arrived. Null with `day_pnl`."
    )


class DrawdownSerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=MAX_DIGITS,
        decimal_places=DECIMAL_PLACES,
        help_text="Peak minus trough of the cumulative realized P&L, >= 0 (a sum of stored P&L: exact).",
    )
    peak_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the trade that reached the peak was executed. Null: the peak is the period's"
        " start (zero, before its first closed trade), or the P&L never fell.",
    )
    peak_day = serializers.DateField(allow_null=True, help_text="The trading day of `peak_at`.")
    trough_at = serializers.DateTimeField(
        allow_null=True, help_text="When the trade at the bottom was executed. Null: the P&L never fell."
    )
    trough_day = serializers.DateField(allow_null=True, help_text="The trading day of `trough_at`.")
    recovered_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the first trade after the bottom brought the P&L back to the peak. Null: not"
        " recovered by the period's end.",
    )
    recovered_day = serializers.DateField(allow_null=True, help_text="The trading day of `recovered_at`.")


class DayPnlSerializer(serializers.Serializer):
    date = serializers.DateField()
    pnl = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)
    cumulative = serializers.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES)


def _cents(help_text: str) -> serializers.DecimalField:
    """Money derived by a division (``trades.formats.to_cent``): to the cent."""
    return serializers.DecimalField(
        max_digits=MAX_DIGITS, decimal_places=CENT_PLACES, allow_null=True, help_text=help_text
    )


class PerformanceSerializer(TotalsSerializer):
    average_win = _cents("Gross profit over wins, to the cent; null without a win.")
    average_loss = _cents("Gross loss over losses (negative), to the cent; null without a loss.")
    profit_factor = serializers.FloatField(
        allow_null=True,
        help_text=f"Gross profit over gross loss, to {RATIO_PLACES} places; null without a losing trade.",
    )
    expectancy = _cents("Realized P&L per closed trade, to the cent; null without a closed trade.")
    max_drawdown = DrawdownSerializer(
        allow_null=True,
        help_text="The deepest fall of the cumulative realized P&L, trade by trade;"
        " null without a closed trade.",
    )
    best_day = DayPnlSerializer(allow_null=True)
    worst_day = DayPnlSerializer(allow_null=True)


class DayCloseSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="The trading day (in MARKET_TIMEZONE).")
    as_of = serializers.DateTimeField(help_text="When the day's last heartbeat that gave these arrived.")
    equity = _money(
        "The last equity the bot reported that day; null: none reported that day.",
    )
    cash = _money(
        "The cash reported with that equity; null: not reported.",
    )
    day_pnl = _money(
        "The day's closing P&L with open positions marked to market (as the daily summary's"
        " `day_pnl`); null: no positions reported that day.",
    )
    open_pnl = _money(
        "The part of `day_pnl` the open positions make; null with `day_pnl`.",
    )


class PeriodSummarySerializer(PerformanceSerializer):
    start = serializers.DateField()
    end = serializers.DateField()
    days = DayPnlSerializer(many=True, help_text="Days with a closed trade, oldest first.")
    by_strategy = serializers.DictField(child=PerformanceSerializer())
    by_symbol = serializers.DictField(child=PerformanceSerializer())
    closes = DayCloseSerializer(
        many=True,
        help_text="The equity curve and each day's P&L with open positions: one entry per trading day on"
        " which the bot's heartbeats reported its positions, equity or cash, oldest first. Empty when"
        " they never did in the period.",
    )
    by_strategy_days = serializers.DictField(
        child=DayPnlSerializer(many=True),
        help_text="Each strategy's days with a closed trade, oldest first, with that strategy's own"
        " cumulative realized P&L (as `days` for the whole): the lines of the strategies side by side."
        " The same names as `by_strategy`; a strategy with opening fills alone has an empty list.",
    )


class OpenPositionSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    quantity = _money("Signed: negative for a short.", allow_null=False)
    avg_price = _money("The average entry price.", allow_null=False)
    market_price = _money("The price the bot marked it at.", allow_null=False)
    unrealized_pnl = _money("quantity x (market_price - avg_price).", allow_null=False)


class HostFiguresSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(help_text="When the heartbeat that carried them arrived.")
    pid = serializers.IntegerField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    rss_bytes = serializers.IntegerField(allow_null=True)
    cpu_percent = serializers.FloatField(allow_null=True)
    memory_available_bytes = serializers.IntegerField(allow_null=True)
    memory_total_bytes = serializers.IntegerField(allow_null=True)
    disk_free_bytes = serializers.IntegerField(allow_null=True)
    disk_total_bytes = serializers.IntegerField(allow_null=True)


class PositionsSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        allow_null=True, help_text="When the latest heartbeat that reported positions arrived; null: never."
    )
    positions = OpenPositionSerializer(
        many=True, allow_null=True, help_text="Empty: flat. Null: the bot has not reported its positions."
    )
    unrealized_pnl = _money("The positions' unrealized P&L together; null when not reported.")
    realized_pnl = _money("Today's realized P&L (the trading day in MARKET_TIMEZONE).", allow_null=False)
    day_pnl = _money(
        "Today's P&L with open positions marked to market: realized P&L + the positions' unrealized P&L"
        " now - their unrealized P&L in the last snapshot before the trading day began (0 without one)."
        " Null when the bot has reported no positions today."
    )
    open_pnl = _money("The part of day_pnl the open positions make (day_pnl - realized_pnl).")
    equity = _money("The account's equity in the latest heartbeat that reported it.")
    cash = _money("The account's cash in the latest heartbeat that reported it.")
    account_as_of = serializers.DateTimeField(
        allow_null=True, help_text="When equity and cash were reported."
    )
