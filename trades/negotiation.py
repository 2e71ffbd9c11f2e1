"""Content negotiation of the bot API: DRF's, with a short way for the usual request."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

# Accept headers that take JSON as it is (a bot's client, curl and http.client send one of these,
# or none, which DRF reads as */*). An empty one is not among them: DRF answers it with 406.
_TAKES_JSON = frozenset(("*/*", "application/json"))


class APIContentNegotiation(DefaultContentNegotiation):
    """A view that renders JSON alone, asked for JSON (or anything) and no ``?format=``, renders
    it without DRF parsing and ranking the Accept header: what DRF's negotiation answers in that
    case, a tenth of a single trade's CPU cheaper. Anything else goes through DRF's own (a 406
    for an Accept that excludes JSON, a 404 for another format)."""

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        if (
            len(renderers) == 1
            and renderers[0].media_type == "application/json"
            and not format_suffix
            and request.META.get("HTTP_ACCEPT", "*/*") in _TAKES_JSON
            and not request._request.GET.get(self.settings.URL_FORMAT_OVERRIDE)
        ):
            return renderers[0], "application/json"
        return super().select_renderer(request, renderers, format_suffix)
