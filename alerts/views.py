"""The risk decision the bot asks for before it trades."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class StatusSerializer(serializers.Serializer):
    trading_allowed = serializers.BooleanField()
    reason = serializers.CharField()
    bot = serializers.CharField()
    checked_at = serializers.DateTimeField()


class StatusView(APIView):
    @extend_schema(responses=StatusSerializer)
    def get(self, request: Request) -> Response:
        return Response(
            {
                "trading_allowed": True,
                "reason": "No risk rule is configured to stop trading.",
                "bot": request.user.name,
                "checked_at": timezone.now(),
            }
        )
