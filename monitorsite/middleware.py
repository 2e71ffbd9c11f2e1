"""Middleware of the site as a whole."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from monitorsite.errors import is_api


class APITimesInUTC:
    """Every time the API answers is in UTC (``...Z``), whatever ``TIME_ZONE`` the admin shows.

    DRF renders a date-time in the active time zone, and ``America/New_York``
    before 1883 is local mean time, ``-04:56:02``: an offset with seconds, which
    RFC 3339 (the OpenAPI document's ``date-time``) has no room for. UTC's offset
    is always whole, and the trade list was already in UTC.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api(request):
            return self.get_response(request)
        with timezone.override(dt.UTC):
            return self.get_response(request)
