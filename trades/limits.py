"""What a stored trade may hold, for every way in: the API's validator and the admin's forms.

The API checks these in pydantic (``trades.validation``), fast, from the
request's bytes; an operator editing a trade in the admin goes through the
model fields' validators below. Both read the same numbers, so a value the
API refuses cannot be typed into the admin either.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from trades.jsonvalues import METADATA_MAX_BYTES, json_field_problem

# Stocks trade in fractions of a share and sub-penny prices; eight places
# covers both and crypto quantities without rounding what the broker reported.
DECIMAL_PLACES = 8
MAX_DIGITS = 20
# SQLite keeps a decimal column as a 64-bit float (or integer): exact to 15
# significant digits, so more is refused rather than silently rounded.
SIGNIFICANT_DIGITS = 15
# Larger than any real order or P&L of the bots this site serves; a value past
# these is a unit or parsing bug in the bot, not a trade.
MAX_QUANTITY = Decimal("1e9")
MAX_PRICE = Decimal("1e7")
MAX_ABS_PNL = Decimal("1e11")

DIGITS_MESSAGE = (
    f"At most {SIGNIFICANT_DIGITS} significant digits, {DECIMAL_PLACES} of them after the point"
    " (what the database stores exactly)."
)


def too_many_digits(value: Decimal) -> bool:
    return len(value.normalize().as_tuple().digits) > SIGNIFICANT_DIGITS


# Error codes of their own: a ModelForm shows its field's own message instead
# of ours for a code it knows ("invalid", "max_digits", "min_value").


@deconstructible
class StorableDecimal:
    """A model field validator: finite, within ``-limit``..``limit`` (or above zero), and
    exactly storable (``SIGNIFICANT_DIGITS``)."""

    def __init__(self, limit: Decimal, *, positive: bool) -> None:
        self.limit = limit
        self.positive = positive

    def __call__(self, value: Decimal | None) -> None:
        if value is None:
            return
        if not value.is_finite():
            raise ValidationError("Must be a finite number.", code="not_finite")
        if self.positive and value <= 0:
            raise ValidationError("Must be greater than 0.", code="not_positive")
        if abs(value) > self.limit:
            raise ValidationError(f"Must be at most {self.limit:,f} in size.", code="too_large")
        if too_many_digits(value):
            raise ValidationError(DIGITS_MESSAGE, code="not_exact")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorableDecimal) and (self.limit, self.positive) == (
            other.limit,
            other.positive,
        )


def validate_metadata(value: Any) -> None:
    """A trade's ``metadata`` as edited in the admin: the API's rules for JSON fields."""
    if not isinstance(value, dict):
        raise ValidationError("Must be a JSON object.", code="not_object")
    problem = json_field_problem(value, max_bytes=METADATA_MAX_BYTES)
    if problem:
        raise ValidationError(problem, code="unstorable")
