"""The bot API's JSON renderer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder


class UTCEncoder(JSONEncoder):
    """DRF's encoder, with every aware date-time given in UTC.

    A date-time a view answers as an object (not through a serializer field)
    keeps its own zone otherwise, and a zone's offset may have seconds
    (local mean time before 1883), which RFC 3339 cannot write.
    """

    def default(self, obj: Any) -> Any:
        if isinstance(obj, dt.datetime) and obj.utcoffset() is not None:
            obj = obj.astimezone(dt.UTC)
        return super().default(obj)


class APIJSONRenderer(JSONRenderer):
    encoder_class = UTCEncoder
