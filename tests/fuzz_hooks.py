"""schemathesis hooks for ``tests/test_openapi_fuzz.py``, loaded by ``SCHEMATHESIS_HOOKS``.

The document says in words what JSON Schema cannot: a reported moment lies between
``EARLIEST`` and a day ahead of the site's clock (``MOMENT_BOUNDS``). The fuzzer
reads schemas, not words, so its ``date-time`` values are drawn within those bounds;
everything else it draws from the document alone, and its negative cases still send
date-times that are not RFC 3339 at all.
"""

from __future__ import annotations

import datetime as dt

import schemathesis
from hypothesis import strategies as st

from trades.validation import EARLIEST, MAX_CLOCK_SKEW

# Offsets reach ±14 hours; a moment this far inside the bounds stays inside whatever its offset.
_MARGIN = dt.timedelta(days=1)


def _rfc3339(moment: dt.datetime, offset_minutes: int) -> str:
    local = moment.astimezone(dt.timezone(dt.timedelta(minutes=offset_minutes)))
    return local.isoformat().replace("+00:00", "Z")


_moments = st.datetimes(
    min_value=(EARLIEST + _MARGIN).replace(tzinfo=None),
    max_value=(dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW - _MARGIN).replace(tzinfo=None),
    timezones=st.just(dt.UTC),
)
schemathesis.openapi.format(
    "date-time",
    st.builds(_rfc3339, _moments, st.integers(min_value=-14 * 60, max_value=14 * 60)),
)
