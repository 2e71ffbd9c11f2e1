"""Serializers for the smaller endpoints, and the shapes the API documents."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from trades.jsonvalues import DETAILS_MAX_BYTES, MAX_DEPTH, json_field_problem
from trades.models import BotEvent, EventKind, EventLevel, Side
from trades.validation import MAX_CLOCK_SKEW

HEARTBEAT_STATUS_MAX_LENGTH = 100
EVENT_MESSAGE_MAX_LENGTH = 10_000
EVENT_ID_MAX_LENGTH = 100


class DetailsField(serializers.DictField):
    """A free-form JSON object, within the rules of ``trades.jsonvalues``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            f"Free-form JSON object, at most {DETAILS_MAX_BYTES // 1024} KB, nested at most {MAX_DEPTH} deep;"
            " no NaN, Infinity, out-of-range numbers, NUL or unpaired surrogates.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        problem = json_field_problem(value, max_bytes=DETAILS_MAX_BYTES)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class AwareDateTimeField(serializers.DateTimeField):
    """A datetime that must carry its offset: a naive time is ambiguous, so refused."""

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        if timezone.is_naive(value):
            raise serializers.ValidationError("Give the time with an offset, e.g. 2026-01-02T15:04:05Z.")
        return super().enforce_timezone(value)


class TradeSerializer(serializers.Serializer):
    """A stored trade as the API returns it (documentation; reads use ``values()``)."""

    id = serializers.IntegerField()
    bot = serializers.CharField(source="bot__name")
    external_id = serializers.CharField()
    symbol = serializers.CharField()
    side = serializers.ChoiceField(choices=Side.choices)
    quantity = serializers.DecimalField(max_digits=20, decimal_places=8)
    price = serializers.DecimalField(max_digits=20, decimal_places=8)
    strategy = serializers.CharField()
    pnl = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
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


class TradeQuerySerializer(serializers.Serializer):
    symbol = serializers.CharField(required=False, max_length=32)
    strategy = serializers.CharField(required=False, allow_blank=True, max_length=100)
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    date = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=50)

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "get") and isinstance(data.get("side"), str):
            data = data.copy()
            data["side"] = data["side"].upper()
        return super().to_internal_value(data)


class SummaryQuerySerializer(serializers.Serializer):
    date = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])


# A period longer than this is refused: its GROUP BY would read years of trades for one answer.
MAX_PERIOD_DAYS = 3 * 366


class PeriodQuerySerializer(serializers.Serializer):
    start = serializers.DateField(
        required=False, input_formats=["%Y-%m-%d"], help_text="First trading day (default: 30 back)."
    )
    end = serializers.DateField(
        required=False, input_formats=["%Y-%m-%d"], help_text="Last trading day, included (default: today)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start and end and end < start:
            raise serializers.ValidationError({"end": [f"The end ({end}) is before the start ({start})."]})
        if start and end and (end - start).days > MAX_PERIOD_DAYS:
            raise serializers.ValidationError({"end": [f"A period is at most {MAX_PERIOD_DAYS} days long."]})
        return attrs


class HeartbeatSerializer(serializers.Serializer):
    # DRF's CharField refuses NUL and unpaired surrogates itself.
    status = serializers.CharField(
        required=False, allow_blank=True, max_length=HEARTBEAT_STATUS_MAX_LENGTH, default=""
    )
    details = DetailsField(required=False, default=dict)


class EventSerializer(serializers.ModelSerializer):
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

    def validate_occurred_at(self, value: dt.datetime) -> dt.datetime:
        if value > timezone.now() + MAX_CLOCK_SKEW:
            raise serializers.ValidationError("Must not be more than a day in the future.")
        return value

    def to_internal_value(self, data: Any) -> Any:
        if hasattr(data, "get"):
            data = dict(data)
            for name in ("kind", "level"):
                if isinstance(data.get(name), str):
                    data[name] = data[name].strip().lower()
        return super().to_internal_value(data)


class TradeRefSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    pnl = serializers.DecimalField(max_digits=20, decimal_places=8)
    external_id = serializers.CharField()
    executed_at = serializers.DateTimeField()


class BreakdownSerializer(serializers.Serializer):
    trades = serializers.IntegerField()
    pnl = serializers.DecimalField(max_digits=20, decimal_places=8)
    win_rate = serializers.FloatField(allow_null=True)


class DailySummarySerializer(serializers.Serializer):
    date = serializers.DateField()
    total_trades = serializers.IntegerField()
    closed_trades = serializers.IntegerField()
    total_pnl = serializers.DecimalField(max_digits=20, decimal_places=8)
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="Percent of closed trades that won.")
    best_trade = TradeRefSerializer(allow_null=True)
    worst_trade = TradeRefSerializer(allow_null=True)
    by_strategy = serializers.DictField(child=BreakdownSerializer())
    by_symbol = serializers.DictField(child=BreakdownSerializer())


class DrawdownSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=20, decimal_places=8, help_text="Peak minus trough, >= 0.")
    peak_day = serializers.DateField(allow_null=True, help_text="Null: the peak is the period's start.")
    trough_day = serializers.DateField(allow_null=True)
    recovered_day = serializers.DateField(allow_null=True, help_text="Null: still open at the period's end.")


class DayPnlSerializer(serializers.Serializer):
    date = serializers.DateField()
    pnl = serializers.DecimalField(max_digits=20, decimal_places=8)
    cumulative = serializers.DecimalField(max_digits=20, decimal_places=8)


class PerformanceSerializer(serializers.Serializer):
    total_trades = serializers.IntegerField()
    closed_trades = serializers.IntegerField()
    total_pnl = serializers.DecimalField(max_digits=20, decimal_places=8)
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    win_rate = serializers.FloatField(allow_null=True, help_text="Percent of closed trades that won.")
    average_win = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
    average_loss = serializers.DecimalField(max_digits=20, decimal_places=8, allow_null=True)
    profit_factor = serializers.FloatField(
        allow_null=True, help_text="Gross profit over gross loss; null without a losing trade."
    )
    expectancy = serializers.DecimalField(
        max_digits=20, decimal_places=8, allow_null=True, help_text="Realized P&L per closed trade."
    )
    max_drawdown = DrawdownSerializer(allow_null=True, help_text="Of the cumulative realized P&L, by day.")
    best_day = DayPnlSerializer(allow_null=True)
    worst_day = DayPnlSerializer(allow_null=True)


class PeriodSummarySerializer(PerformanceSerializer):
    start = serializers.DateField()
    end = serializers.DateField()
    days = DayPnlSerializer(many=True, help_text="Days with a closed trade, oldest first.")
    by_strategy = serializers.DictField(child=PerformanceSerializer())
    by_symbol = serializers.DictField(child=PerformanceSerializer())
