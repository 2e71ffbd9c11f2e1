"""schemathesis hooks for ``tests/test_openapi_fuzz.py``, loaded by ``SCHEMATHESIS_HOOKS``.

The document says in words what JSON Schema cannot: a reported moment lies between
``EARLIEST`` and a day ahead of the site's clock (``MOMENT_BOUNDS``), and free-form
JSON holds a few KB at most; a period's end is not before its start nor years after it;
the bot's positions name each symbol once and stay within an account's value, and a
host's memory available and disk free are not above their totals.
The fuzzer reads schemas, not words, so:

- its ``date-time`` values are drawn within those bounds (its negative cases still
  send date-times that are not RFC 3339 at all);
- a schema-valid request refused *only* for one of those rules, by its own message,
  is not counted as a failure. Any other message, or any other check, still fails.

Everything else it draws from the document alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import schemathesis
from hypothesis import strategies as st

from monitor_client.wire import EARLIEST, MAX_CLOCK_SKEW
from trades.jsonvalues import TOO_LARGE
from trades.state import ABOVE_TOTAL, DUPLICATE_SYMBOL, TOTAL_TOO_LARGE, VALUE_TOO_LARGE
from trades.validation import END_BEFORE_START, PERIOD_TOO_LONG, TOO_EARLY, TOO_LATE

# The answers of the rules the document states only in words (trades.jsonvalues, trades.validation).
_TOO_LARGE = re.escape(TOO_LARGE).replace(r"\{limit\}", r"\d+").replace(r"\{size:\.1f\}", r"[0-9.]+")
_END_BEFORE_START = (
    re.escape(END_BEFORE_START).replace(r"\{end\}", r"[0-9-]+").replace(r"\{start\}", r"[0-9-]+")
)
_PERIOD_TOO_LONG = re.escape(PERIOD_TOO_LONG).replace(r"\{days\}", r"\d+")
# The bot's state (trades.state): a symbol once per list, a position's value and the positions'
# unrealized P&L within an account's, a part (memory available, disk free) not above its total.
_STATE_RULES = "|".join(
    re.escape(rule) for rule in (DUPLICATE_SYMBOL, VALUE_TOO_LARGE, TOTAL_TOO_LARGE, ABOVE_TOTAL)
)
_RULES_IN_WORDS = re.compile(
    rf"^(?:{re.escape(TOO_EARLY)}|{re.escape(TOO_LATE)}|{_TOO_LARGE}|{_END_BEFORE_START}|{_PERIOD_TOO_LONG}"
    rf"|{_STATE_RULES})$"
)

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


def _messages(errors: Any) -> list[Any]:
    if isinstance(errors, dict):
        return [message for value in errors.values() for message in _messages(value)]
    if isinstance(errors, list):
        return errors
    return [errors]


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but a schema-valid request refused (ST202) for a rule stated in words."""
    if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
        return True
    try:
        messages = _messages(json.loads(response.content)["errors"])
    except (ValueError, KeyError, TypeError):
        return True
    return not (messages and all(isinstance(m, str) and _RULES_IN_WORDS.match(m) for m in messages))
