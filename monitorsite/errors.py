"""Error answers outside the views: JSON under /api/, Django's pages elsewhere.

A client of the API reads JSON; an HTML error page (an unknown path, a body
Django refused before any view ran, a server error) would be misread as a
malformed answer, or worse, parsed as something it is not.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "Permission denied."}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api(request):
        return JsonResponse(
            {"detail": f"No endpoint at {request.path}; see /api/schema/ for the API's paths."}, status=404
        )
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if is_api(request):
        return JsonResponse(
            {"detail": "The site failed to answer this request; nothing of it may have been stored."},
            status=500,
        )
    return defaults.server_error(request)
