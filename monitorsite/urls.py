"""The site's URLs: each app's API under /api/v1/, the schema and docs, the admin."""

from typing import Any

from django.contrib import admin
from django.urls import URLPattern, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)
from rest_framework.permissions import AllowAny

import alerts.urls
import trades.urls
from monitorsite import views
from monitorsite.metrics import metrics_view

api_v1 = [
    *trades.urls.urlpatterns,
    *alerts.urls.urlpatterns,
    path("health/", views.HealthView.as_view(), name="health"),
]


def _also_without_trailing_slash(patterns: list[URLPattern]) -> list[URLPattern]:
    """Each endpoint also at its path without the final slash.

    Django would answer ``POST /api/v1/trades`` with a 301 to the slashed path,
    and a client following it re-sends a GET: the trade is lost behind a 200.
    """
    twins = [
        path(str(pattern.pattern)[:-1], pattern.callback)
        for pattern in patterns
        if str(pattern.pattern).endswith("/")
    ]
    return [*patterns, *twins]


def documented_endpoints(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: the OpenAPI document lists each endpoint once, slashed."""
    return [endpoint for endpoint in endpoints if endpoint[0].endswith("/")]


api_v1 = _also_without_trailing_slash(api_v1)

public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", **public), name="api-redoc"),
    path("admin/", admin.site.urls),
    # Prometheus' own path, outside the API: only with METRICS_TOKEN, as its Bearer token.
    path("metrics", metrics_view, name="metrics"),
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    # Pages without the admin's <link rel="icon"> (the API docs, a browser's own guess) ask here.
    path("favicon.ico", views.favicon, name="favicon"),
]

handler400 = "monitorsite.errors.bad_request"
handler403 = "monitorsite.errors.permission_denied"
handler404 = "monitorsite.errors.not_found"
handler500 = "monitorsite.errors.server_error"
