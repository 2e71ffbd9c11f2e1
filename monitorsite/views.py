"""The site's own endpoints: health, answered from every app's registered checks, and the favicon."""

from __future__ import annotations

from typing import Any

from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest, HttpResponseRedirect
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from monitorsite import health
from monitorsite.registry import run_health_checks


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """``/favicon.ico``: the static icon, so no page leaves a 404 line in the log."""
    return HttpResponseRedirect(staticfiles_storage.url("monitorsite/favicon.svg"))


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ok", "starting", "degraded", "unavailable"],
        help_text="unavailable (503): a vital component failed; degraded (200): a warning;"
        " starting (200): the task cluster started less than a minute ago and has not reported yet.",
    )
    components = serializers.DictField(help_text="Each check's report: ok, vital, reason, figures.")
    warnings = serializers.ListField(child=serializers.CharField())


class HealthView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, auth=[])
    def get(self, request: Request) -> Response:
        state, components = run_health_checks()
        if state == "ok" and any(part.get("starting") for part in components.values()):
            state = "starting"
        warnings = [
            f"{name}: {part.get('reason') or 'failing'}"
            for name, part in components.items()
            if not part["ok"]
        ]
        response = Response(
            {"status": state, "components": components, "warnings": warnings},
            status=status.HTTP_503_SERVICE_UNAVAILABLE if state == "unavailable" else status.HTTP_200_OK,
            headers={"Cache-Control": "no-store"},
        )
        # A probe polls this every few seconds: log a change of state once
        # (health.report), not an ERROR line for every 503 (Django's default).
        health.report(state, components)
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
