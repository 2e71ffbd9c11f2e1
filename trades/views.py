"""The bot API: thin views over the model layer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitor_client.wire import MAX_BATCH
from trades import market, positions
from trades.formats import format_size
from trades.ingest import insert_fields
from trades.models import BotEvent, BotSnapshot, Trade
from trades.serializers import (
    DailySummarySerializer,
    EventSerializer,
    HeartbeatSerializer,
    IngestResultSerializer,
    PeriodQuerySerializer,
    PeriodSummarySerializer,
    PositionsSerializer,
    SummaryQuerySerializer,
    TradeListSerializer,
    TradeQuerySerializer,
)
from trades.validation import TradeDataError, parse_trades, trade_schema

# What a trade answers with: its stored fields, the bot by name (added per row).
LISTED_FIELDS = ("id", *(field.name for field in insert_fields(Trade) if field.name != "bot"))


def _bad_request(detail: str, errors: dict[str, Any]) -> Response:
    return Response({"detail": detail, "errors": errors}, status=status.HTTP_400_BAD_REQUEST)


def _too_large() -> Response:
    limit = format_size(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return _bad_request(
        "The request body is too large; nothing was stored.",
        {"body": [f"Send at most {limit} per request; split the batch."]},
    )


class BotWriteView(APIView):
    """The body rules every write endpoint shares: JSON only (else 415), a bounded size (else 400).

    The Content-Type is checked whether or not the view parses the body through
    DRF (the trades view validates the raw bytes), once the key has been checked.
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # DRF's parser reads the stream itself, past Django's size check on request.body.
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestDataTooBig()
        if request.method == "POST" and _has_body(request):
            content_type = request._request.content_type
            if content_type != "application/json":
                raise exceptions.UnsupportedMediaType(
                    content_type or "(none)",
                    detail=f"Send the body as application/json, not {content_type or 'no Content-Type'}.",
                )

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            return _too_large()
        return super().handle_exception(exc)


def _has_body(request: Request) -> bool:
    meta = request.META
    return meta.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in meta


class TradesView(BotWriteView):
    @extend_schema(
        request={"application/json": trade_schema()},
        responses={
            201: IngestResultSerializer,
            200: OpenApiResponse(IngestResultSerializer, description="Every trade was already stored."),
            400: OpenApiResponse(
                description="Invalid input; errors keyed by item index and field (the first 25 items"
                " with errors, then a count under `body`). Nothing was stored."
            ),
        },
        description=f"One trade object, or a list of up to {MAX_BATCH}."
        " All or nothing; idempotent by external_id.",
    )
    def post(self, request: Request) -> Response:
        # The raw bytes go straight to the validator: parsing 1000 trades into
        # Python objects first and validating them after would double the work.
        try:
            trades, _ = parse_trades(request.body)
        except RequestDataTooBig:
            return _too_large()
        except TradeDataError as exc:
            return _bad_request(exc.detail, exc.errors)
        result = Trade.objects.record_batch(request.user, trades)
        return Response(
            {"created": result.created, "duplicates": result.duplicates, "ids": result.ids},
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )

    @extend_schema(parameters=[TradeQuerySerializer], responses=TradeListSerializer)
    def get(self, request: Request) -> Response:
        query = TradeQuerySerializer.of(request.query_params)
        if not query.is_valid():
            return _bad_request("Invalid query parameters.", query.errors)
        params = query.validated_data
        trades = (
            Trade.objects.for_bot(request.user)
            .matching(
                symbol=params.get("symbol"),
                strategy=params.get("strategy"),
                side=params.get("side"),
                day=params.get("date"),
            )
            .newest_first()
            .values(*LISTED_FIELDS)[: params["limit"]]
        )
        bot_name = request.user.name
        results = [{**row, "bot": bot_name} for row in trades]
        return Response({"limit": params["limit"], "results": results})


class DailySummaryView(APIView):
    @extend_schema(parameters=[SummaryQuerySerializer], responses=DailySummarySerializer)
    def get(self, request: Request) -> Response:
        query = SummaryQuerySerializer.of(request.query_params)
        if not query.is_valid():
            return _bad_request("Invalid query parameters.", query.errors)
        day = query.validated_data.get("date") or market.calendar_for(request.user).today()
        return Response(positions.daily_summary(request.user, day).as_dict())


class PeriodSummaryView(APIView):
    @extend_schema(
        parameters=[PeriodQuerySerializer],
        responses={
            200: PeriodSummarySerializer,
            400: OpenApiResponse(description="A malformed date, or an end before the start; by field."),
        },
        description="Performance over trading days `start` to `end`, both included (default: the last"
        " 30 trading days, up to today): P&L, win rate, averages, profit factor, expectancy, maximum"
        " drawdown of the cumulative realized P&L, best and worst day, by strategy and by symbol.",
    )
    def get(self, request: Request) -> Response:
        query = PeriodQuerySerializer.of(request.query_params)
        if not query.is_valid():
            return _bad_request("Invalid query parameters.", query.errors)
        calendar = market.calendar_for(request.user)
        start, end = calendar.period(query.validated_data.get("start"), query.validated_data.get("end"))
        return Response(positions.period_summary(request.user, start, end).as_dict())


class HeartbeatView(BotWriteView):
    @extend_schema(request=HeartbeatSerializer, responses={200: HeartbeatSerializer})
    def post(self, request: Request) -> Response:
        body = HeartbeatSerializer(data=request.data if request.body else {})
        if not body.is_valid():
            return _bad_request("Invalid heartbeat.", body.errors)
        received_at = request.user.record_heartbeat(**body.validated_data)
        return Response(
            {
                "status": body.validated_data["status"],
                "details": body.validated_data["details"],
                "received_at": received_at,
            }
        )


class PositionsView(APIView):
    @extend_schema(
        responses=PositionsSerializer,
        description="The bot's open positions as its latest heartbeat reported them, with their unrealized"
        " P&L, and today's P&L with them marked to market (`day_pnl`); the account's equity and cash.",
    )
    def get(self, request: Request) -> Response:
        bot = request.user
        latest = BotSnapshot.objects.latest_with_positions(bot)
        day = market.calendar_for(bot).today()
        realized = Trade.objects.for_bot(bot).realized_pnl(day)
        today = positions.day_pnl(bot, day, realized)
        account = positions.latest_account(bot)
        listed = None
        if latest is not None:
            listed = [
                {
                    "symbol": position.symbol,
                    "quantity": position.quantity,
                    "avg_price": position.avg_price,
                    "market_price": position.market_price,
                    "unrealized_pnl": position.unrealized_pnl,
                }
                for position in latest.position_list()
            ]
        return Response(
            {
                "as_of": latest.taken_at if latest else None,
                "positions": listed,
                "unrealized_pnl": latest.unrealized_pnl if latest else None,
                "realized_pnl": realized,
                "day_pnl": today.total if today else None,
                "open_pnl": today.open_part if today else None,
                "equity": account.equity if account else None,
                "cash": account.cash if account else None,
                "account_as_of": account.taken_at if account else None,
            }
        )


class EventsView(BotWriteView):
    @extend_schema(
        request=EventSerializer,
        responses={
            201: EventSerializer,
            200: OpenApiResponse(
                EventSerializer, description="A repeat of a stored event_id: nothing stored."
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = EventSerializer(data=request.data)
        if not body.is_valid():
            return _bad_request("Invalid event.", body.errors)
        event, created = BotEvent.objects.record(request.user, **body.validated_data)
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(EventSerializer(event).data, status=answer)
