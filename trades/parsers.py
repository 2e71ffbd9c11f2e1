"""The request body parser of the bot API's small endpoints (heartbeat, events)."""

from __future__ import annotations

import codecs
import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BotJSONParser(JSONParser):
    """DRF's JSON parser, but a value the field rules refuse reaches the field, and depth is a 400.

    ``NaN`` and ``Infinity`` are read as floats (DRF's strict mode refused them
    with an error that named no field; ``trades.jsonvalues`` now names it), and a
    body nested past Python's recursion limit is a 400 instead of a
    ``RecursionError`` (a 500).
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json.load(codecs.getreader(encoding)(stream), parse_constant=float)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
