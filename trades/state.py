"""The bot's state a heartbeat carries: its open positions, its account and the host it runs on.

All of it is optional. ``positions`` absent means "not reported", an empty list "flat".
The rules are the wire contract's (``monitor_client.wire``), which the bot's client checks
too; what JSON Schema can say of them is published in the OpenAPI document
(``positions_schema``), the rest is said here in words (``DUPLICATE_SYMBOL``,
``VALUE_TOO_LARGE``, ``ABOVE_TOTAL``) and held to by the fuzzer's hooks.

Numbers arrive as JSON numbers (floats, as the heartbeat's parser reads them). A float
written with at most 15 significant digits reads back exactly as its shortest ``repr``,
so ``Decimal(repr(value))`` is the number the bot wrote.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from monitor_client.wire import (
    DECIMAL_PLACES,
    MAX_ABS_MONEY,
    MAX_POSITIONS,
    MAX_PRICE,
    MAX_QUANTITY,
    POSITION_FIELDS,
    SIGNIFICANT_DIGITS,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
    decimal_places,
    significant_digits,
)
from trades.limits import DIGITS_MESSAGE

NOT_A_NUMBER = "Must be a JSON number."
NOT_FINITE = "Must be a finite number."
PLACES = f"At most {DECIMAL_PLACES} places after the point."
DUPLICATE_SYMBOL = "The symbol appears more than once; report one entry per symbol."
VALUE_TOO_LARGE = (
    f"quantity x price is above {MAX_ABS_MONEY:,f}, more than any account holds (a unit or parsing bug?)."
)
TOTAL_TOO_LARGE = f"The positions' unrealized P&L together is above {MAX_ABS_MONEY:,f} in size."
ABOVE_TOTAL = "Must not be more than the total it is part of."
SYMBOL_RULE = "Must be ASCII letters, digits and . : / _ - (a letter or digit first)."

_SYMBOL = re.compile(SYMBOL_PATTERN, re.ASCII)
_PLACES = Decimal(1).scaleb(-DECIMAL_PLACES)


class StateError(ValueError):
    """What is wrong: ``{"3.quantity": ["..."]}`` for positions (a position's index and field, as
    the API's error document has room for), ``["..."]`` for a value."""

    def __init__(self, errors: Any) -> None:
        super().__init__(errors)
        self.errors = errors


def number(value: Any, limit: Decimal, *, positive: bool) -> Decimal:
    """A JSON number as the Decimal the bot wrote; ``StateError`` with one message when it is not
    one of the numbers a trade's fields take (finite, places, digits, within ``limit``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StateError([NOT_A_NUMBER])
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StateError([NOT_FINITE])
        text = repr(value)
    else:
        text = str(value)
    if len(text) > 400:  # an integer of thousands of digits: far past every limit, not worth a Decimal
        raise StateError([f"Must be at most {limit:,f} in size."])
    if decimal_places(text) > DECIMAL_PLACES:
        raise StateError([PLACES])
    if significant_digits(text) > SIGNIFICANT_DIGITS:
        raise StateError([DIGITS_MESSAGE])
    result = Decimal(text)
    if positive and result <= 0:
        raise StateError(["Must be greater than 0."])
    if abs(result) > limit:
        raise StateError([f"Must be at most {limit:,f} in size."])
    return result


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    market_price: Decimal

    @property
    def unrealized_pnl(self) -> Decimal:
        """quantity x (market - average): a long gains as the price rises, a short as it falls."""
        return to_places(self.quantity * (self.market_price - self.avg_price))

    def as_json(self) -> dict[str, Any]:
        """As stored in the snapshot: numbers as JSON numbers (exact: at most 15 digits each)."""
        return {
            "symbol": self.symbol,
            "quantity": _json_number(self.quantity),
            "avg_price": _json_number(self.avg_price),
            "market_price": _json_number(self.market_price),
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Position:
        """A stored position (``as_json``) as it was reported."""
        return cls(
            item["symbol"],
            Decimal(repr(item["quantity"]) if isinstance(item["quantity"], float) else item["quantity"]),
            Decimal(repr(item["avg_price"]) if isinstance(item["avg_price"], float) else item["avg_price"]),
            Decimal(
                repr(item["market_price"])
                if isinstance(item["market_price"], float)
                else item["market_price"]
            ),
        )


def to_places(value: Decimal) -> Decimal:
    """Money to the places the database keeps."""
    return value.quantize(_PLACES, rounding=ROUND_HALF_EVEN)


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def parse_positions(value: Any) -> list[Position]:
    """The reported positions, each checked; ``StateError`` naming each bad entry's fields."""
    if not isinstance(value, list):
        raise StateError(["Must be a list of positions (an empty list when flat)."])
    if len(value) > MAX_POSITIONS:
        raise StateError([f"At most {MAX_POSITIONS} positions, got {len(value)}."])
    errors: dict[str, Any] = {}
    positions: list[Position] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        found: dict[str, list[str]] = {}
        if not isinstance(item, dict):
            errors[f"{index}"] = ["Must be an object with " + ", ".join(POSITION_FIELDS) + "."]
            continue
        for name in item:
            if name not in POSITION_FIELDS:
                found[str(name)[:50]] = ["Unknown field; a position has " + ", ".join(POSITION_FIELDS) + "."]
        for name in POSITION_FIELDS:
            if name not in item:
                found[name] = ["This field is required."]
        symbol = item.get("symbol")
        if "symbol" in item:
            if not isinstance(symbol, str):
                found["symbol"] = ["Not a valid string."]
            elif len(symbol) > SYMBOL_MAX_LENGTH:
                found["symbol"] = [f"At most {SYMBOL_MAX_LENGTH} characters."]
            elif not _SYMBOL.fullmatch(symbol):
                found["symbol"] = [SYMBOL_RULE]
            elif symbol.upper() in seen:
                found["symbol"] = [DUPLICATE_SYMBOL]
            else:
                seen.add(symbol.upper())
        numbers: dict[str, Decimal] = {}
        for name, limit, positive in (
            ("quantity", MAX_QUANTITY, False),
            ("avg_price", MAX_PRICE, True),
            ("market_price", MAX_PRICE, True),
        ):
            if name in item:
                try:
                    numbers[name] = number(item[name], limit, positive=positive)
                except StateError as exc:
                    found[name] = exc.errors
        if not found:
            quantity = numbers["quantity"]
            if (
                max(abs(quantity * numbers["avg_price"]), abs(quantity * numbers["market_price"]))
                > MAX_ABS_MONEY
            ):
                found["quantity"] = [VALUE_TOO_LARGE]
        if found:
            errors.update((f"{index}.{name}", messages) for name, messages in found.items())
            continue
        positions.append(
            Position(symbol.upper(), numbers["quantity"], numbers["avg_price"], numbers["market_price"])
        )
    if errors:
        raise StateError(errors)
    total = sum((position.unrealized_pnl for position in positions), Decimal(0))
    if abs(total) > MAX_ABS_MONEY:
        raise StateError([TOTAL_TOO_LARGE])
    return positions


def unrealized_pnl(positions: list[Position]) -> Decimal:
    return sum((position.unrealized_pnl for position in positions), Decimal(0))


def _number_schema(limit: Decimal, *, positive: bool) -> dict[str, Any]:
    from trades.validation import storable_number_schema

    return {**storable_number_schema(limit, positive=positive), "description": DIGITS_MESSAGE}


def positions_schema() -> dict[str, Any]:
    """The JSON schema of ``positions`` (the rules JSON Schema cannot state are in its description)."""
    return {
        "type": "array",
        "maxItems": MAX_POSITIONS,
        "description": "The bot's open positions, one per symbol; an empty list when flat, absent when"
        " not reported. A position's quantity x price is at most "
        f"{MAX_ABS_MONEY:,f} in size.",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": list(POSITION_FIELDS),
            "properties": {
                "symbol": {
                    "type": "string",
                    "maxLength": SYMBOL_MAX_LENGTH,
                    "pattern": SYMBOL_PATTERN,
                    "description": "ASCII letters, digits and . : / _ -; upper-cased. Once per list.",
                },
                "quantity": {
                    **_number_schema(MAX_QUANTITY, positive=False),
                    "description": "Signed: negative for a short. " + DIGITS_MESSAGE,
                },
                "avg_price": _number_schema(MAX_PRICE, positive=True),
                "market_price": _number_schema(MAX_PRICE, positive=True),
            },
        },
    }


def money_schema() -> dict[str, Any]:
    return _number_schema(MAX_ABS_MONEY, positive=False)
