"""The site's URLs: each app's API under /api/v1/, the schema and docs, the admin."""

from django.contrib import admin
from django.urls import include, path
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

api_v1 = [
    *trades.urls.urlpatterns,
    *alerts.urls.urlpatterns,
    path("health/", views.HealthView.as_view(), name="health"),
]

public = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", **public), name="api-redoc"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]
