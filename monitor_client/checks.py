"""The bot's values made into what the site takes, checked on the bot's own thread.

A trade or an event the site would refuse forever is the bot's bug, so it raises
``ValueError`` at once, naming the field, instead of failing in the shipper for good
later. The rules are the wire contract's (``monitor_client.wire``), which the site
checks too. Sizes the site bounds (a price above ``MAX_PRICE``, metadata over
``METADATA_MAX_BYTES``) are left to it: the shipper parks such a record.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from monitor_client.wire import (
    DECIMAL_PLACES,
    EARLIEST,
    EVENT_KINDS,
    EVENT_LEVELS,
    EVENT_MESSAGE_MAX_LENGTH,
    EXTERNAL_ID_MAX_LENGTH,
    HEARTBEAT_STATUS_MAX_LENGTH,
    MAX_ABS_MONEY,
    MAX_CLOCK_SKEW,
    MAX_POSITIONS,
    MAX_PRICE,
    MAX_QUANTITY,
    POSITION_FIELDS,
    SIDES,
    SIGNIFICANT_DIGITS,
    STRATEGY_MAX_LENGTH,
    SYMBOL_MAX_LENGTH,
    SYMBOL_PATTERN,
    decimal_places,
    significant_digits,
    span_in_words,
)

# The usual spellings found without a call; any other case goes through upper().
_SIDES = {spelling: side for side in SIDES for spelling in (side, side.lower(), side.title())}
_SYMBOL = re.compile(SYMBOL_PATTERN)
_EVENT_KINDS = frozenset(EVENT_KINDS)
_EVENT_LEVELS = frozenset(EVENT_LEVELS)
_UTC = dt.UTC
_now = dt.datetime.now
_encode_string = json.encoder.encode_basestring_ascii  # the C encoder json.dumps uses for a str


def _json_default(value: Any) -> Any:
    """Metadata and event details: common non-JSON values become strings, not errors."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# One encoder made once: json.dumps with any option builds a new one per call (3x slower).
_encoder = json.JSONEncoder(default=_json_default, separators=(",", ":"), allow_nan=False)
_dumps = _encoder.encode


def _number(name: str, value: Any, *, positive: bool) -> str:
    """The value as an exact JSON number (Decimal digits are kept as given)."""
    kind = type(value)
    if kind is int:
        text = str(value)
    elif kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
        # A float's binary noise (0.1 + 0.2) is not precision: keep the places and the
        # significant digits the site stores. A float within both is unchanged by this.
        value = round(value, DECIMAL_PLACES)
        text = repr(value)  # the shortest text that reads back as the same float
        if len(text) > SIGNIFICANT_DIGITS and significant_digits(text) > SIGNIFICANT_DIGITS:
            # A text of 15 digits reads back as a float whose shortest text is as short.
            text = repr(float(f"{value:.{SIGNIFICANT_DIGITS}g}"))
    elif kind is Decimal:
        if not value.is_finite():
            raise ValueError(f"{name} must be a finite number; got {value}.")
        text = str(value)
    elif kind is bool or isinstance(value, str) or not hasattr(value, "__float__"):
        raise ValueError(f"{name} must be a number (int, float or Decimal); got {value!r}.")
    else:  # numpy and other numeric types: through their exact decimal text
        value = Decimal(str(value))
        return _number(name, value, positive=positive)
    if positive and value <= 0:
        raise ValueError(f"{name} must be greater than 0; got {text}.")
    if kind is not int and decimal_places(text) > DECIMAL_PLACES:  # an int has none: no call
        raise ValueError(f"{name} has more than {DECIMAL_PLACES} decimal places; got {text}.")
    # A text no longer than 15 characters holds no more than 15 digits: no call for the usual number.
    if len(text) > SIGNIFICANT_DIGITS and significant_digits(text) > SIGNIFICANT_DIGITS:
        raise ValueError(f"{name} has more than {SIGNIFICANT_DIGITS} significant digits; got {text}.")
    return text


def _aware_time(name: str, value: dt.datetime) -> str:
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{name} must be a datetime; got {value!r}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)); got {value}.")
    if value < EARLIEST or value > _now(_UTC) + MAX_CLOCK_SKEW:
        raise ValueError(
            f"{name} must be between {EARLIEST.year} and {span_in_words(MAX_CLOCK_SKEW)} from now;"
            f" got {value.isoformat()}."
        )
    return value.isoformat()


def trade_json(
    external_id: str,
    symbol: str,
    side: str,
    quantity: int | float | Decimal,
    price: int | float | Decimal,
    strategy: str,
    pnl: int | float | Decimal | None,
    executed_at: dt.datetime | None,
    metadata: dict[str, Any],
) -> bytes:
    """One trade as the site's ``POST /api/v1/trades/`` takes it; ``executed_at`` defaults to now (UTC).

    Written as text rather than through ``json.dumps`` of a dict: the numbers are
    already exact JSON text, and this runs on the bot's thread for every fill.
    """
    if type(external_id) is not str or not 0 < len(external_id) <= EXTERNAL_ID_MAX_LENGTH:
        raise ValueError(
            f"external_id must be a string of 1 to {EXTERNAL_ID_MAX_LENGTH} characters; got {external_id!r}."
        )
    if type(symbol) is not str or len(symbol) > SYMBOL_MAX_LENGTH or not _SYMBOL.fullmatch(symbol):
        raise ValueError(
            f"symbol must be 1 to {SYMBOL_MAX_LENGTH} ASCII letters, digits and . : / _ -"
            f" (a letter or digit first); got {symbol!r}."
        )
    normal_side = (_SIDES.get(side) or _SIDES.get(side.strip().upper())) if isinstance(side, str) else None
    if normal_side is None:
        raise ValueError(f"side must be BUY or SELL; got {side!r}.")
    if type(strategy) is not str or len(strategy) > STRATEGY_MAX_LENGTH:
        raise ValueError(
            f"strategy must be a string of at most {STRATEGY_MAX_LENGTH} characters; got {strategy!r}."
        )
    moment = _now(_UTC).isoformat() if executed_at is None else _aware_time("executed_at", executed_at)
    return (
        f'{{"external_id":{_encode_string(external_id)},"symbol":{_encode_string(symbol)},'
        f'"side":"{normal_side}","quantity":{_number("quantity", quantity, positive=True)},'
        f'"price":{_number("price", price, positive=True)},"strategy":{_encode_string(strategy)},'
        f'"pnl":{"null" if pnl is None else _number("pnl", pnl, positive=False)},'
        f'"executed_at":"{moment}","metadata":{_dumps(metadata) if metadata else "{}"}}}'
    ).encode()


def event_json(kind: str, level: str, message: str, details: dict[str, Any]) -> bytes:
    """One event as ``POST /api/v1/events/`` takes it, with a fresh ``event_id`` that is
    spooled with it (``Monitor.event`` says why)."""
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    level = level.strip().lower() if isinstance(level, str) else level
    if kind not in _EVENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(sorted(EVENT_KINDS))}; got {kind!r}.")
    if level not in _EVENT_LEVELS:
        raise ValueError(f"level must be one of {', '.join(EVENT_LEVELS)}; got {level!r}.")
    body = {
        "event_id": uuid.uuid4().hex,
        "kind": kind,
        "level": level,
        "message": str(message)[:EVENT_MESSAGE_MAX_LENGTH],
        "details": details,
        "occurred_at": _now(_UTC).isoformat(),
    }
    return _dumps(body).encode()


def heartbeat_body(status: str, details: dict[str, Any]) -> dict[str, Any]:
    """A heartbeat as ``POST /api/v1/heartbeat/`` takes it: the status cut to what the site
    stores, the details through the same encoder as metadata (so a Decimal or a datetime
    is a string here, not an error in the shipper)."""
    return {"status": str(status)[:HEARTBEAT_STATUS_MAX_LENGTH], "details": json.loads(_dumps(details))}


# The bounds as floats, each exactly its Decimal (1e9, 1e7, 1e11): a comparison with a Decimal
# costs a conversion per number.
_FLOAT_BOUNDS = {limit: float(limit) for limit in (MAX_QUANTITY, MAX_PRICE, MAX_ABS_MONEY)}
assert all(Decimal(bound) == limit for limit, bound in _FLOAT_BOUNDS.items())


def _bounded(name: str, value: Any, limit: Decimal, *, positive: bool) -> int | float:
    """A position's or the account's number as the heartbeat's JSON carries it, held to a
    trade's rules (finite, places, significant digits) and within ``limit`` (inclusive, as
    the site's). A heartbeat the site refuses is lost whole, so a bound is checked here too.

    Returned as an int or a float: a number of at most 15 significant digits is exactly the
    float's shortest text, so ``json.dumps`` writes the digits checked here."""
    text = _number(name, value, positive=positive)
    number = int(text) if type(value) is int else float(text)
    bound = _FLOAT_BOUNDS[limit]  # exact: an int or a float compares with it exactly
    if not -bound <= number <= bound:
        low = "above 0" if positive else f"at least {-limit:,f}"
        raise ValueError(f"{name} must be {low} and at most {limit:,f}; got {text}.")
    return number


def _symbol(name: str, symbol: Any) -> str:
    if type(symbol) is not str or len(symbol) > SYMBOL_MAX_LENGTH or not _SYMBOL.fullmatch(symbol):
        raise ValueError(
            f"{name} must be 1 to {SYMBOL_MAX_LENGTH} ASCII letters, digits and . : / _ -"
            f" (a letter or digit first); got {symbol!r}."
        )
    return symbol.upper()


_POSITION_KEYS = frozenset(POSITION_FIELDS)
_POSITION_SHAPE = (
    "a dict with the keys symbol, quantity, avg_price and market_price, or a tuple"
    " (symbol, quantity, avg_price, market_price)"
)


def positions_list(positions: Any) -> list[dict[str, Any]]:
    """The bot's open positions as the heartbeat's ``positions`` carries them.

    Each one a dict with the keys of ``wire.POSITION_FIELDS`` or a tuple of those four
    values in that order; ``quantity`` signed (negative: short; 0 is taken), prices above
    0. At most ``MAX_POSITIONS``, each symbol once (its letters' case aside: the symbol is
    sent upper-cased, as the site stores a trade's). A mistake raises ``ValueError``
    naming the position and its field.
    """
    if isinstance(positions, str | bytes | Mapping) or not hasattr(positions, "__iter__"):
        raise ValueError(
            f"positions must be a list, each position {_POSITION_SHAPE}; got {positions!r:.200}."
        )
    items = positions if isinstance(positions, list | tuple) else list(positions)
    if len(items) > MAX_POSITIONS:
        raise ValueError(f"positions holds {len(items)} positions; at most {MAX_POSITIONS} are taken.")
    seen: dict[str, int] = {}
    sent = []
    unrealized = 0.0
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            if item.keys() != _POSITION_KEYS:
                missing = ", ".join(f for f in POSITION_FIELDS if f not in item)
                extra = ", ".join(sorted(map(str, item.keys() - _POSITION_KEYS)))
                raise ValueError(
                    f"positions[{index}] must be {_POSITION_SHAPE};"
                    + (f" missing {missing};" if missing else "")
                    + (f" unknown {extra};" if extra else "")
                    + f" got {item!r:.200}."
                )
            symbol, quantity, avg_price, market_price = (item[field] for field in POSITION_FIELDS)
        elif isinstance(item, tuple | list) and len(item) == len(POSITION_FIELDS):
            symbol, quantity, avg_price, market_price = item
        else:
            raise ValueError(f"positions[{index}] must be {_POSITION_SHAPE}; got {item!r:.200}.")
        symbol = _symbol(f"positions[{index}].symbol", symbol)
        if symbol in seen:
            raise ValueError(
                f"positions[{index}].symbol {symbol} is positions[{seen[symbol]}]'s too: each symbol once."
            )
        seen[symbol] = index
        position = {
            "symbol": symbol,
            "quantity": _bounded(
                f"positions[{index}].quantity ({symbol})", quantity, MAX_QUANTITY, positive=False
            ),
            "avg_price": _bounded(
                f"positions[{index}].avg_price ({symbol})", avg_price, MAX_PRICE, positive=True
            ),
            "market_price": _bounded(
                f"positions[{index}].market_price ({symbol})", market_price, MAX_PRICE, positive=True
            ),
        }
        # What the site holds a position's value to (and the positions' unrealized P&L together):
        # a heartbeat it refused would be lost, and the bot would look silent. In floats, and
        # exactly (in decimals) only near the bound, where a float's rounding could decide.
        size, avg, market = position["quantity"], position["avg_price"], position["market_price"]
        if _past_money_bound(
            max(abs(size * avg), abs(size * market)),
            lambda s=size, a=avg, m=market: max(abs(_exact(s) * _exact(a)), abs(_exact(s) * _exact(m))),
        ):
            raise ValueError(
                f"positions[{index}].quantity ({symbol}) x its price is above {MAX_ABS_MONEY:,f},"
                f" more than any account holds; got {size} at {max(avg, market)}."
            )
        unrealized += size * (market - avg)
        sent.append(position)
    if _past_money_bound(
        abs(unrealized),
        lambda: abs(
            sum(
                (_exact(p["quantity"]) * (_exact(p["market_price"]) - _exact(p["avg_price"])) for p in sent),
                Decimal(0),
            )
        ),
    ):
        raise ValueError(
            f"positions' unrealized P&L together is above {MAX_ABS_MONEY:,f}; got {unrealized:,.2f}."
        )
    return sent


_MONEY_BOUND = float(MAX_ABS_MONEY)


def _exact(number: int | float) -> Decimal:
    """The decimal a checked number (at most 15 significant digits) was written as."""
    return Decimal(repr(number))


def _past_money_bound(approximate: float, exact: Callable[[], Decimal]) -> bool:
    """Whether a money figure is above ``MAX_ABS_MONEY``: ``approximate`` (in floats) decides
    unless it is within a float's rounding of the bound, where ``exact`` does."""
    if approximate > _MONEY_BOUND * (1 + 1e-9):
        return True
    if approximate < _MONEY_BOUND * (1 - 1e-9):
        return False
    return exact() > MAX_ABS_MONEY


def bot_state(positions: Any, equity: Any, cash: Any) -> dict[str, Any]:
    """What a heartbeat says of the bot's account: the keys given (None: not reported)."""
    state: dict[str, Any] = {}
    if positions is not None:
        state["positions"] = positions_list(positions)
    if equity is not None:
        state["equity"] = _bounded("equity", equity, MAX_ABS_MONEY, positive=False)
    if cash is not None:
        state["cash"] = _bounded("cash", cash, MAX_ABS_MONEY, positive=False)
    return state
