"""The risk decision the bot asks for before it trades."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import TradingHalt
from trades import market, positions
from trades.serializers import HostFiguresSerializer


class StatusSerializer(serializers.Serializer):
    trading_allowed = serializers.BooleanField()
    reason = serializers.CharField()
    bot = serializers.CharField()
    checked_at = serializers.DateTimeField()
    halted_until = serializers.DateField(
        required=False, help_text="With trading_allowed false: the trading day trading resumes."
    )
    host = HostFiguresSerializer(
        allow_null=True, help_text="The host figures of the bot's latest heartbeat that had them; null: none."
    )


class StatusView(APIView):
    @extend_schema(responses=StatusSerializer)
    def get(self, request: Request) -> Response:
        now = timezone.now()
        halt = TradingHalt.objects.in_force(request.user, market.calendar_for(request.user).today(now))
        if halt is None:
            body = {"trading_allowed": True, "reason": "No risk limit is breached."}
        else:
            body = {
                "trading_allowed": False,
                "reason": f"{halt.reason}; halted until {halt.ends_on} or until an admin resumes trading",
                "halted_until": halt.ends_on,
            }
        snapshot = positions.latest_host(request.user)
        host = {"as_of": snapshot.taken_at, **(snapshot.host() or {})} if snapshot else None
        return Response({**body, "bot": request.user.name, "checked_at": now, "host": host})
