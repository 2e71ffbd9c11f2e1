"""The wire contract between a bot and the site: every limit and name both sides check.

The bot's ``Monitor`` checks a trade or an event against these before it spools it,
so a mistake raises on the bot's own thread; the site's validator, serializers, models
and OpenAPI document take the same values. One module, imported by both, so the two
cannot drift (``tests/test_wire_contract.py`` holds them together at each boundary).
It needs nothing but the standard library: the bot installs no Django.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

# --- a batch of trades -------------------------------------------------------
# Trades per POST /api/v1/trades/ (and the most GET /api/v1/trades/?limit= lists).
MAX_BATCH = 1000
MAX_LIST_LIMIT = 1000
# A request body the site reads at all (Django's DATA_UPLOAD_MAX_MEMORY_SIZE).
MAX_BODY_BYTES = 10 * 1024 * 1024

# --- a trade's fields ----------------------------------------------------------
EXTERNAL_ID_MAX_LENGTH = 100
SYMBOL_MAX_LENGTH = 32
STRATEGY_MAX_LENGTH = 100
SIDES = ("BUY", "SELL")
# Both cases: the site checks the pattern before it upper-cases the value. No inline
# (?i) flag: the pattern is published in the OpenAPI document, whose regular
# expressions (ECMA-262) have no inline flags.
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.:/_-]*$"
SIDE_PATTERN = r"^([Bb][Uu][Yy]|[Ss][Ee][Ll][Ll])$"

# Stocks trade in fractions of a share and sub-penny prices; eight places covers both
# and crypto quantities without rounding what the broker reported.
DECIMAL_PLACES = 8
MAX_DIGITS = 20  # the database column's precision
# SQLite keeps a decimal column as a 64-bit float (or integer): exact to 15 significant
# digits, so more is refused rather than silently rounded.
SIGNIFICANT_DIGITS = 15
# Larger than any real order or P&L of the bots this site serves; a value past these
# is a unit or parsing bug in the bot, not a trade.
MAX_QUANTITY = Decimal("1e9")
MAX_PRICE = Decimal("1e7")
MAX_ABS_PNL = Decimal("1e11")

# --- moments a bot reports (a trade's executed_at, an event's occurred_at) --------
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Fills may arrive late (a replay after an outage), never from the far future.
MAX_CLOCK_SKEW = dt.timedelta(days=1)

# --- events and heartbeats -------------------------------------------------------
# In this order in the site's choices (and so in its migrations).
EVENT_KINDS = (
    "startup",
    "shutdown",
    "market_open",
    "market_close",
    "connection_retry",
    "connection_lost",
    "data_quality",
    "crash",
    "db_write_failure",
    "risk_limit",
    "custom",
)
EVENT_LEVELS = ("info", "warning", "critical")
EVENT_ID_MAX_LENGTH = 100
EVENT_MESSAGE_MAX_LENGTH = 10_000
HEARTBEAT_STATUS_MAX_LENGTH = 100

# --- the bot's state, carried by a heartbeat (all optional) -----------------------
# ``positions``: a list of {symbol, quantity, avg_price, market_price}; quantity signed
# (negative: short), an empty list means flat, an absent one "not reported". Each
# number is held to the trade's rules (places, significant digits); a symbol appears
# once. Quantities and prices within a trade's bounds (``MAX_QUANTITY``, ``MAX_PRICE``;
# a quantity may be 0 or negative here, a price is above 0).
MAX_POSITIONS = 500
POSITION_FIELDS = ("symbol", "quantity", "avg_price", "market_price")
# ``equity`` and ``cash``: the account's values as the bot knows them, signed (a margin
# account's cash may be below 0), within a P&L's bound.
MAX_ABS_MONEY = MAX_ABS_PNL
# ``host``: the machine and process the bot runs on. Each figure optional; a figure
# the bot's platform does not give is left out, not sent as 0.
HOST_FIELDS = (
    "pid",
    "started_at",
    "rss_bytes",
    "cpu_percent",
    "memory_available_bytes",
    "memory_total_bytes",
    "disk_free_bytes",
    "disk_total_bytes",
)
MAX_PID = 2**31 - 1  # a pid_t; Linux's own limit (pid_max) is lower
MAX_HOST_BYTES = 2**60  # an exbibyte: more memory or disk than any machine a bot runs on
# A process's CPU over its cores (psutil: 100 per busy core), up to 1,024 cores.
MAX_CPU_PERCENT = 102_400

# --- free-form JSON (a trade's metadata, a heartbeat's or an event's details) ------
# Stored size limits in bytes (as the JSON column holds them: ``json.dumps``).
METADATA_MAX_BYTES = 4 * 1024
DETAILS_MAX_BYTES = 16 * 1024


def decimal_places(text: str) -> int:
    """The places after the point of a number written as ``text`` ("1.50" has 1, "1e-9" 9)."""
    mantissa, _, exponent = text.lower().partition("e")
    fraction = mantissa.partition(".")[2].rstrip("0")
    return max(0, len(fraction) - int(exponent or 0))


def significant_digits(text: str) -> int:
    """The significant digits of a number written as ``text`` ("0.0120" has 2, "1200" 2):
    what ``Decimal(text).normalize()`` keeps, without building a Decimal."""
    mantissa = text.lower().partition("e")[0].lstrip("+-")
    digits = mantissa.replace(".", "").lstrip("0").rstrip("0")
    return max(1, len(digits))


def span_in_words(span: dt.timedelta) -> str:
    """``MAX_CLOCK_SKEW`` as both sides' messages say it: "a day", "2 days", "an hour"."""
    if span % dt.timedelta(days=1):
        hours = span / dt.timedelta(hours=1)
        return "an hour" if hours == 1 else f"{hours:g} hours"
    return "a day" if span.days == 1 else f"{span.days} days"
