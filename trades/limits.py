"""What a stored trade may hold, for every way in: the API's validator and the admin's forms.

The API checks these in pydantic (``trades.validation``), fast, from the
request's bytes; an operator editing a trade in the admin goes through the
model fields' validators below. Both read the same numbers, those of the wire
contract (``monitor_client.wire``), so a value the API refuses cannot be typed
into the admin either.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from monitor_client.wire import DECIMAL_PLACES, METADATA_MAX_BYTES, SIGNIFICANT_DIGITS
from trades.jsonvalues import json_field_problem

# The numbers themselves (places, digits, bounds) are the wire contract's
# (``monitor_client.wire``), which the bot checks too.

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
