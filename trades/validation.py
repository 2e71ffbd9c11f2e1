"""Validation of trades posted by a bot.

A batch of 1000 trades must be checked in a few milliseconds, so the rules are
a pydantic model validated straight from the request's bytes (pydantic's core
is compiled) rather than a DRF serializer per item. Errors come back keyed by
item index and field, the shape the API promises.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, NotRequired

from django.utils import timezone
from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

from trades.models import DECIMAL_PLACES

MAX_BATCH = 1000
# Larger than any real order or P&L of the bots this site serves; a value past
# these is a unit or parsing bug in the bot, not a trade.
MAX_QUANTITY = Decimal("1e9")
MAX_PRICE = Decimal("1e7")
MAX_ABS_PNL = Decimal("1e11")
# Fills may arrive late (a replay after an outage), never from the far future.
MAX_CLOCK_SKEW = dt.timedelta(days=1)
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Both cases: pydantic checks the pattern before it upper-cases the value. No
# inline (?i) flag: the pattern is published in the OpenAPI document, whose
# regular expressions (ECMA-262) have no inline flags.
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.:/_-]*$"
SIDE_PATTERN = r"^([Bb][Uu][Yy]|[Ss][Ee][Ll][Ll])$"


Positive = Annotated[Decimal, Field(gt=0, decimal_places=DECIMAL_PLACES, allow_inf_nan=False)]


# A TypedDict rather than a model: pydantic's core then builds plain dicts
# without a Python call per item, which makes a batch of 1000 several times
# cheaper to check. Its docstring and field descriptions are published as the
# request schema of POST /api/v1/trades/ (see ``trade_schema``).
class TradeIn(TypedDict):
    """One trade as the bot sends it; a repeat of an external_id already stored for the bot is not stored."""

    __pydantic_config__ = ConfigDict(extra="forbid", str_strip_whitespace=True)  # type: ignore[misc]

    external_id: Annotated[
        str,
        StringConstraints(min_length=1, max_length=100),
        Field(description="The bot's own id for this fill; unique per bot."),
    ]
    symbol: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_upper=True, max_length=32, pattern=SYMBOL_PATTERN),
        Field(description="Stored upper case."),
    ]
    side: Annotated[
        str,
        StringConstraints(strip_whitespace=True, to_upper=True, pattern=SIDE_PATTERN),
        Field(description="BUY or SELL, in any case."),
    ]
    quantity: Annotated[Positive, Field(le=MAX_QUANTITY)]
    price: Annotated[Positive, Field(le=MAX_PRICE)]
    strategy: NotRequired[Annotated[str, StringConstraints(max_length=100), Field(description='Default "".')]]
    pnl: NotRequired[
        Annotated[
            Decimal,
            Field(ge=-MAX_ABS_PNL, le=MAX_ABS_PNL, decimal_places=DECIMAL_PLACES, allow_inf_nan=False),
        ]
        | None
    ]
    # strict: an ISO 8601 string only, not a bare number of seconds.
    executed_at: NotRequired[
        Annotated[
            AwareDatetime,
            Field(
                strict=True,
                ge=EARLIEST,
                description="ISO 8601 with an offset; naive times are refused. Default: now.",
            ),
        ]
    ]
    metadata: NotRequired[dict[str, Any]]


_one = TypeAdapter(TradeIn)
_many = TypeAdapter(list[TradeIn])


def trade_schema() -> dict[str, Any]:
    """The JSON schema of a request body: one trade, or a list of 1 to ``MAX_BATCH`` trades.

    Made from the validator itself, so the published schema cannot drift from the rules.
    """
    one = _one.json_schema()
    many = {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_BATCH}
    return {"oneOf": [one, many]}


class TradeDataError(Exception):
    """The posted trades are invalid; ``errors`` is the 400 body's ``errors``."""

    def __init__(self, detail: str, errors: dict[str, Any]):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


def parse_trades(body: bytes) -> tuple[list[dict[str, Any]], bool]:
    """Validate a request body holding one trade or a list of them.

    Returns the trades as dicts ready for ``Trade.objects.record_batch`` (with
    ``executed_at`` filled in) and whether the body was a list. Raises
    ``TradeDataError`` on any problem, so that nothing of a bad batch is stored.
    """
    stripped = body.lstrip()
    if not stripped:
        raise TradeDataError("The request body is empty.", {"body": ["Send a trade or a list of trades."]})
    is_list = stripped[:1] == b"["
    try:
        parsed = _many.validate_json(body) if is_list else [_one.validate_json(body)]
    except ValidationError as exc:
        raise TradeDataError("Invalid trade data; nothing was stored.", _errors(exc, is_list)) from None
    if not parsed:
        raise TradeDataError("The batch is empty.", {"body": ["Send at least one trade."]})
    if len(parsed) > MAX_BATCH:
        raise TradeDataError(
            f"A batch holds at most {MAX_BATCH} trades.",
            {"body": [f"Got {len(parsed)} trades; split them into batches of {MAX_BATCH}."]},
        )
    return _with_defaults(parsed, is_list), is_list


def _with_defaults(parsed: list[dict[str, Any]], is_list: bool) -> list[dict[str, Any]]:
    """Fill in the optional fields and check what the schema cannot: a time too far ahead of ours.

    Times keep the offset they were sent with; storing converts them to UTC.
    """
    now = timezone.now()
    latest = now + MAX_CLOCK_SKEW
    errors: dict[str, Any] = {}
    for index, trade in enumerate(parsed):
        if "strategy" not in trade:
            trade["strategy"] = ""
        if "pnl" not in trade:
            trade["pnl"] = None
        if "metadata" not in trade:
            trade["metadata"] = {}
        moment = trade.get("executed_at")
        if moment is None:
            trade["executed_at"] = now
        elif moment > latest:
            target = errors.setdefault(str(index), {}) if is_list else errors
            target["executed_at"] = ["Must not be more than a day in the future."]
    if errors:
        raise TradeDataError("Invalid trade data; nothing was stored.", errors)
    return parsed


def _errors(exc: ValidationError, is_list: bool) -> dict[str, Any]:
    """Turn pydantic's errors into ``{index: {field: [message]}}`` (or ``{field: [...]}``)."""
    errors: dict[str, Any] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        if error["type"] == "json_invalid":
            errors.setdefault("body", []).append(f"Not valid JSON: {error['msg']}")
            continue
        target = errors
        if is_list:
            if not loc or not isinstance(loc[0], int):
                errors.setdefault("body", []).append(_message(error))
                continue
            target = errors.setdefault(str(loc.pop(0)), {})
        field = str(loc[0]) if loc else "body"
        target.setdefault(field, []).append(_message(error))
    return errors


def _message(error: Any) -> str:
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if error["type"] == "missing":
        return "This field is required."
    if error["type"] == "greater_than_equal" and error["loc"][-1:] == ("executed_at",):
        return "Must be in the year 2000 or later."
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1:] == ("side",):
        return "Must be BUY or SELL."
    if error["type"] in ("model_type", "list_type", "dict_type") and len(error["loc"]) <= 1:
        return "Expected a trade object or a list of trade objects."
    return msg
