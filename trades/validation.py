"""Validation of trades posted by a bot.

A batch of 1000 trades must be checked in a few milliseconds, so the rules are
a pydantic model validated straight from the request's bytes (pydantic's core
is compiled) rather than a DRF serializer per item. Errors come back keyed by
item index and field, the shape the API promises.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Annotated, Any, NotRequired

from django.utils import timezone
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import core_schema
from typing_extensions import TypedDict

from monitor_client.wire import (
    DECIMAL_PLACES,
    EARLIEST,
    EXTERNAL_ID_MAX_LENGTH,
    MAX_ABS_PNL,
    MAX_BATCH,
    MAX_CLOCK_SKEW,
    MAX_PRICE,
    MAX_QUANTITY,
    METADATA_MAX_BYTES,
    SIDE_PATTERN,
    SIGNIFICANT_DIGITS,
    STRATEGY_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
    span_in_words,
)
from trades.jsonvalues import (
    json_field_problem,
    json_object_schema,
    json_value_ref,
    text_problem,
)
from trades.limits import DIGITS_MESSAGE, too_many_digits

# The limits themselves (batch size, clock skew, lengths, patterns, places) are the
# wire contract's, ``monitor_client.wire``, which the bot checks too.

# The bounds of every moment a bot reports (a trade's executed_at, an event's
# occurred_at), in the words the OpenAPI document and the error answers use.
NOT_RFC3339 = (
    f"Give the time in RFC 3339 with an offset, from the year {EARLIEST.year} on, e.g. 2026-01-02T15:04:05Z."
)
TOO_EARLY = f"Must be in the year {EARLIEST.year} or later."
TOO_LATE = f"Must not be more than {span_in_words(MAX_CLOCK_SKEW)} in the future."

# A period longer than this is refused: its GROUP BY would read years of trades for one answer.
MAX_PERIOD_DAYS = 3 * 366


# Rules over both dates, which JSON Schema cannot state: the document says them in words
# (and tests/fuzz_hooks.py knows these messages as such).
END_BEFORE_START = "The end ({end}) is before the start ({start})."
PERIOD_TOO_LONG = "A period is at most {days} days long."
MOMENT_BOUNDS = (
    f"From {EARLIEST:%Y-%m-%dT%H:%M:%SZ} on, and at most {span_in_words(MAX_CLOCK_SKEW)} ahead of the"
    " site's clock (a replay after an outage may come late, never from the future)."
)
# What was sent is what is stored: no control characters, and no spaces at either
# end (stripping them would silently merge " ord-1" with "ord-1").
# Unicode's White_Space outside the control characters, spelt out: ``\s`` means U+0085 to
# pydantic's Rust engine and to Python but not to an ECMA engine (a fuzzer, a generated client).
_SPACES = r"\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
EXTERNAL_ID_PATTERN = rf"^[^\x00-\x1F\x7F{_SPACES}](?:[^\x00-\x1F\x7F]*[^\x00-\x1F\x7F{_SPACES}])?$"
TEXT_PATTERN = r"^[^\x00-\x1F\x7F]*$"
# RFC 3339's date-time (the document's ``format: date-time``), which pydantic and Django
# alone would widen to "2026-01-02 15:04Z" or a "+0100" offset, with the year from
# EARLIEST's (2000) on, so that the document says that bound too. [0-9], not \d: a
# regular expression in Rust (pydantic's) reads \d as any Unicode digit.
RFC3339_DATE_TIME_PATTERN = (
    r"^(2[0-9]{3}|[3-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
# The error answer lists the problems of this many items at most, then a count.
MAX_LISTED_ITEMS = 25
# A list body with more commas than this may hold more than MAX_BATCH items, and
# is counted item by item before pydantic parses the whole of it: a 10 MB body
# of 5 million tiny items took pydantic 2 s and 500 MB just to refuse.
_COUNT_ITEMS_ABOVE_COMMAS = MAX_BATCH * 32


def _storable_metadata(value: dict[str, Any]) -> dict[str, Any]:
    problem = json_field_problem(value, max_bytes=METADATA_MAX_BYTES)
    if problem:
        raise ValueError(problem)
    return value


class ReportedMoment:
    """A moment a bot reports (``executed_at``): RFC 3339 text with an offset, then an aware
    datetime from ``EARLIEST`` on, both checked in pydantic's core, without a Python call."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.chain_schema(
            [
                core_schema.str_schema(pattern=RFC3339_DATE_TIME_PATTERN, strict=True),
                core_schema.datetime_schema(tz_constraint="aware", ge=EARLIEST),
            ]
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "pattern": RFC3339_DATE_TIME_PATTERN}


def storable_number_schema(limit: Decimal, *, positive: bool) -> dict[str, Any]:
    """The JSON schema of a quantity, price or P&L: exactly the numbers the validator takes.

    At most ``DECIMAL_PLACES`` after the point and ``SIGNIFICANT_DIGITS`` in all,
    within ``limit``: a number with d places is on the grid of multiples of 10^-d
    and, to keep 15 digits, below 10^(15 - d). One branch per d, from 8 places
    down to the one whose bound reaches the limit.
    """
    branches = []
    for places in range(DECIMAL_PLACES, -1, -1):
        bound = Decimal(10) ** (SIGNIFICANT_DIGITS - places)
        branch: dict[str, Any] = {"type": "number", "multipleOf": float(Decimal(10) ** -places)}
        if bound >= limit:
            branch["maximum"] = float(limit)
        else:
            branch["exclusiveMaximum"] = float(bound)
        if positive:
            branch["exclusiveMinimum"] = 0
        elif bound >= limit:
            branch["minimum"] = -float(limit)
        else:
            branch["exclusiveMinimum"] = -float(bound)
        branches.append(branch)
        if bound >= limit:
            break
    return {"anyOf": branches} if len(branches) > 1 else branches[0]


NOT_A_NUMBER = "Must be a JSON number, not a string."


class StorableNumber:
    """A quantity, price or P&L: a JSON number (pydantic alone takes "1.5" and true for a
    Decimal), within ``limit``, at most ``DECIMAL_PLACES`` after the point; published as
    ``storable_number_schema``. All checked in pydantic's core, without a Python call.

    The 15 significant digits are checked after validation (``_check_digits``).
    """

    def __init__(self, limit: Decimal, *, positive: bool) -> None:
        self.limit = limit
        self.positive = positive

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        number = core_schema.union_schema(
            [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True, allow_inf_nan=False)]
        )
        bounds = {"gt": Decimal(0)} if self.positive else {"ge": -self.limit}
        decimal = core_schema.decimal_schema(
            le=self.limit, decimal_places=DECIMAL_PLACES, allow_inf_nan=False, **bounds
        )
        return core_schema.chain_schema([number, decimal])

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {**storable_number_schema(self.limit, positive=self.positive), "description": DIGITS_MESSAGE}


Quantity = Annotated[Decimal, StorableNumber(MAX_QUANTITY, positive=True)]
Price = Annotated[Decimal, StorableNumber(MAX_PRICE, positive=True)]
Pnl = Annotated[Decimal, StorableNumber(MAX_ABS_PNL, positive=False)]
# Where metadata's schema refers to the document's JSON value (see ``trade_schema``).
_JSON_VALUE_MARK = {"x-json-value": True}
# No whitespace is stripped: what the document's patterns and lengths say of the text
# sent holds of it as sent (" msft " would pass a length check only once stripped).
_TEXT_CONFIG = ConfigDict(extra="forbid")


# A TypedDict rather than a model: pydantic's core then builds plain dicts
# without a Python call per item, which makes a batch of 1000 several times
# cheaper to check. Its docstring and field descriptions are published as the
# request schema of POST /api/v1/trades/ (see ``trade_schema``).
class TradeIn(TypedDict):
    """One trade as the bot sends it; a repeat of an external_id already stored for the bot is not stored."""

    __pydantic_config__ = _TEXT_CONFIG  # type: ignore[misc]

    external_id: Annotated[
        str,
        StringConstraints(
            strip_whitespace=False,
            min_length=1,
            max_length=EXTERNAL_ID_MAX_LENGTH,
            pattern=EXTERNAL_ID_PATTERN,
        ),
        Field(
            description="The bot's own id for this fill; unique per bot. Stored exactly as sent:"
            " no spaces at either end, no control characters."
        ),
    ]
    symbol: Annotated[
        str,
        StringConstraints(to_upper=True, max_length=SYMBOL_MAX_LENGTH, pattern=SYMBOL_PATTERN),
        Field(description="ASCII letters, digits and . : / _ -; stored upper case."),
    ]
    side: Annotated[
        str,
        StringConstraints(to_upper=True, pattern=SIDE_PATTERN),
        Field(description="BUY or SELL, in any case."),
    ]
    quantity: Quantity
    price: Price
    strategy: NotRequired[
        Annotated[
            str,
            StringConstraints(max_length=STRATEGY_MAX_LENGTH, pattern=TEXT_PATTERN),
            Field(description='Default "". No control characters.'),
        ]
    ]
    pnl: NotRequired[Pnl | None]
    # RFC 3339 text only, not a bare number of seconds.
    executed_at: NotRequired[
        Annotated[
            dt.datetime,
            ReportedMoment(),
            Field(
                description=f"RFC 3339 with an offset; naive times are refused; default now. {MOMENT_BOUNDS}"
            ),
        ]
    ]
    metadata: NotRequired[
        Annotated[
            dict[str, Any],
            AfterValidator(_storable_metadata),
            WithJsonSchema(json_object_schema(METADATA_MAX_BYTES, value=_JSON_VALUE_MARK), mode="validation"),
        ]
    ]


_one = TypeAdapter(TradeIn)
_many = TypeAdapter(Annotated[list[TradeIn], Field(max_length=MAX_BATCH)])
_DECIMAL_FIELDS = ("quantity", "price", "pnl")
# Bytes that can be part of a JSON number's digits, all mapped to "0"; the rest to " ".
_DIGIT_RUNS = bytes(48 if (48 <= i <= 57 or i == 46) else 32 for i in range(256))


def trade_schema() -> dict[str, Any]:
    """The JSON schema of a request body: one trade, or a list of 1 to ``MAX_BATCH`` trades.

    Made from the validator itself, so the published schema cannot drift from the rules.
    """
    one = _one.json_schema()
    one["properties"]["metadata"]["additionalProperties"] = json_value_ref()
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
    if is_list and body.count(b",") > _COUNT_ITEMS_ABOVE_COMMAS:
        if _count_items(stripped, MAX_BATCH) > MAX_BATCH:
            raise _too_many()
    try:
        parsed = _many.validate_json(body) if is_list else [_one.validate_json(body)]
    except ValidationError as exc:
        if exc.error_count() == 1 and exc.errors()[0]["type"] == "too_long":
            raise _too_many() from None
        raise TradeDataError("Invalid trade data; nothing was stored.", _errors(exc, is_list, body)) from None
    if not parsed:
        raise TradeDataError("The batch is empty.", {"body": ["Send at least one trade."]})
    _check_digits(body, parsed, is_list)
    return _with_defaults(parsed, is_list), is_list


def _too_many() -> TradeDataError:
    return TradeDataError(
        f"A batch holds at most {MAX_BATCH} trades.",
        {"body": [f"Got more than {MAX_BATCH} trades; split them into batches of {MAX_BATCH}."]},
    )


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _count_items(body: bytes, limit: int) -> int:
    """The items of a JSON list body, counted no further than ``limit + 1``.

    Each item is parsed on its own by the standard library's C scanner, so the
    work stops after ``limit + 1`` items however long the list is. A body that is
    not a well-formed list gives the count so far; pydantic then reports it.
    """
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return 0
    index = _WHITESPACE.match(text, 1).end()  # type: ignore[union-attr]
    count = 0
    while index < len(text) and text[index] != "]":
        try:
            _, index = _DECODER.raw_decode(text, index)
        except (ValueError, RecursionError):
            return count
        count += 1
        if count > limit:
            return count
        index = _WHITESPACE.match(text, index).end()  # type: ignore[union-attr]
        if text[index : index + 1] != ",":
            break
        index = _WHITESPACE.match(text, index + 1).end()  # type: ignore[union-attr]
    return count


def _check_digits(body: bytes, parsed: list[dict[str, Any]], is_list: bool) -> None:
    """Refuse a quantity, price or P&L with more digits than the database stores exactly.

    A value with more than 15 significant digits, sent as a string or a JSON
    number, has a run of more than 15 digits (and a point) in the body; no run,
    no check, which keeps the usual batch free of 3000 Python calls. pydantic
    reads a JSON number through a 64-bit float, so ``0.30000000000000001``
    arrives as 0.3: with such a run, the body is read again with exact decimals
    and a number that changed on the way in is refused too.
    """
    if b"0" * (SIGNIFICANT_DIGITS + 1) not in body.translate(_DIGIT_RUNS):
        return
    exact = json.loads(body, parse_float=Decimal)
    items = exact if is_list else [exact]
    errors: dict[str, Any] = {}
    for index, (sent, trade) in enumerate(zip(items, parsed, strict=True)):
        for name in _DECIMAL_FIELDS:
            value, literal = trade.get(name), sent.get(name)
            rounded = isinstance(literal, Decimal) and literal != value
            if value is not None and (rounded or too_many_digits(value)):
                target = errors.setdefault(str(index), {}) if is_list else errors
                target[name] = [DIGITS_MESSAGE]
    if errors:
        raise TradeDataError("Invalid trade data; nothing was stored.", errors)


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
            target["executed_at"] = [TOO_LATE]
    if errors:
        raise TradeDataError("Invalid trade data; nothing was stored.", errors)
    return parsed


def _errors(exc: ValidationError, is_list: bool, body: bytes) -> dict[str, Any]:
    """Turn pydantic's errors into ``{index: {field: [message]}}`` (or ``{field: [...]}``).

    Only the first ``MAX_LISTED_ITEMS`` items with errors are listed; ``body``
    says how many more there are, so a bad batch never gets a huge answer.
    """
    errors: dict[str, Any] = {}
    unlisted: set[int] = set()
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        if error["type"] == "json_invalid":
            located = _locate_json_problem(body, is_list)
            if located:
                return located
            errors.setdefault("body", []).append(f"Not valid JSON: {error['msg']}")
            continue
        target = errors
        if is_list:
            if not loc or not isinstance(loc[0], int):
                errors.setdefault("body", []).append(_message(error))
                continue
            index = loc.pop(0)
            key = str(index)
            if key not in errors and len(errors) - ("body" in errors) >= MAX_LISTED_ITEMS:
                unlisted.add(index)
                continue
            target = errors.setdefault(key, {})
        field = str(loc[0]) if loc else "body"
        messages = target.setdefault(field, [])
        message = _message(error)
        if len(messages) < 3 and message not in messages:
            messages.append(message)
    if unlisted:
        errors.setdefault("body", []).append(
            f"{len(unlisted)} more items have errors; only the first {MAX_LISTED_ITEMS} are listed."
        )
    return errors


def _locate_json_problem(body: bytes, is_list: bool) -> dict[str, Any] | None:
    """The field holding what pydantic's JSON parser refused, where the standard library can tell.

    pydantic refuses unpaired surrogates (``"\\ud800"``) and nesting deeper than
    its limit while parsing, where it knows a line and column but not the field.
    Python's parser accepts both, so the field rules can then name the field.
    """
    if len(body) > 2 * 1024 * 1024:
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    items = value if is_list and isinstance(value, list) else [value]
    for index, item in enumerate(items[:MAX_BATCH]):
        if not isinstance(item, dict):
            continue
        for name, field_value in item.items():
            if isinstance(field_value, str):
                problem = text_problem(field_value)
            elif name == "metadata":
                problem = json_field_problem(field_value, max_bytes=METADATA_MAX_BYTES)
            else:
                problem = None
            if problem:
                return {str(index): {name: [problem]}} if is_list else {name: [problem]}
    return None


def _message(error: Any) -> str:
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if error["type"] == "missing":
        return "This field is required."
    if error["type"] == "greater_than_equal" and error["loc"][-1:] == ("executed_at",):
        return TOO_EARLY
    if error["type"] == "string_pattern_mismatch":
        field = error["loc"][-1:]
        if field == ("side",):
            return "Must be BUY or SELL."
        if field == ("external_id",):
            return "Must not start or end with spaces or contain control characters; it is stored as sent."
        if field == ("symbol",):
            return "Must be ASCII letters, digits and . : / _ - (starting with a letter or digit)."
        if field == ("strategy",):
            return "Must not contain control characters."
        if field == ("executed_at",):
            return NOT_RFC3339
    # A number field's union (int or float) names its member last, the field before it.
    if (
        error["type"] in ("int_type", "float_type")
        and len(error["loc"]) >= 2
        and error["loc"][-2] in _DECIMAL_FIELDS
    ):
        return NOT_A_NUMBER
    if error["type"] in ("model_type", "list_type", "dict_type") and len(error["loc"]) <= 1:
        return "Expected a trade object or a list of trade objects."
    return msg
