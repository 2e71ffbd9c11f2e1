"""Rules for the free-form JSON a bot sends: trades' ``metadata``, heartbeat and event ``details``.

Every such field is stored in a JSON column, shown in the admin and sent back in
answers, so it must be JSON that every one of those can hold: no NaN or
infinity (Python's parser turns ``1e400`` into infinity), integers within
SQLite's 64 bits, text without NUL or unpaired UTF-16 surrogates (``"\\ud800"``
cannot be encoded as UTF-8, so writing the answer failed after the row was
saved), nesting no deeper than ``MAX_DEPTH``, and a stored size of a few
kilobytes (a 9 MB heartbeat once made every request of its bot slow).
"""

from __future__ import annotations

import json
from typing import Any

# The stored size limits (METADATA_MAX_BYTES, DETAILS_MAX_BYTES) are the wire contract's:
# ``monitor_client.wire``.
# Containers inside containers: {"a": {"b": [1]}} is 3 deep.
MAX_DEPTH = 8
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
TOO_LARGE = "At most {limit} KB of JSON (got {size:.1f} KB)."
# The OpenAPI document's components for a JSON value inside such a field (one per level).
JSON_VALUE_COMPONENT = "JSONValue"
NO_NUL_PATTERN = r"^[^\x00]*$"
OUT_OF_RANGE = (
    f"Numbers must lie within ±{INT_MAX} (64 bits); NaN, Infinity and numbers out of range"
    " (such as 1e400) are not allowed."
)


def json_value_ref(level: int = 2) -> dict[str, Any]:
    """A reference to the document's schema of a value ``level`` deep (the field itself is 1)."""
    return {"$ref": f"#/components/schemas/{JSON_VALUE_COMPONENT}{level}"}


def json_value_schemas(max_depth: int = MAX_DEPTH) -> dict[str, dict[str, Any]]:
    """The OpenAPI components of a value inside a free-form field, by level, as ``json_field_problem``
    takes it: text without NUL, numbers within 64 bits, a container only up to ``max_depth`` deep.

    Size is said in words: JSON Schema has no keyword for it.
    """
    schemas = {}
    for level in range(2, max_depth + 2):
        branches: list[dict[str, Any]] = [
            {"type": "null"},
            {"type": "boolean"},
            {"type": "number", "minimum": INT_MIN, "maximum": INT_MAX},
            {"type": "string", "pattern": NO_NUL_PATTERN},
        ]
        if level <= max_depth:
            inner = json_value_ref(level + 1)
            branches.append({"type": "array", "items": inner})
            branches.append(
                {
                    "type": "object",
                    "propertyNames": {"pattern": NO_NUL_PATTERN},
                    "additionalProperties": inner,
                }
            )
        schemas[f"{JSON_VALUE_COMPONENT}{level}"] = {
            "description": f"A JSON value {level} levels deep in a free-form field.",
            "anyOf": branches,
        }
    return schemas


def json_object_schema(
    max_bytes: int, max_depth: int = MAX_DEPTH, *, value: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON schema of a free-form field (``metadata``, ``details``): an object of JSON values.

    ``value`` stands in for the reference to ``JSON_VALUE_COMPONENT`` where a
    ``$ref`` cannot be written yet (pydantic resolves every ``$ref`` it is given).
    """
    return {
        "type": "object",
        "propertyNames": {"pattern": NO_NUL_PATTERN},
        "additionalProperties": value or json_value_ref(),
        "description": f"Free-form JSON object, at most {max_bytes // 1024} KB of JSON, nested at most"
        f" {max_depth} deep; no NUL or unpaired surrogate in text, numbers within ±{INT_MAX}.",
    }


def json_field_problem(value: Any, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored as a JSON field, or None when it can."""
    if _plainly_fine(value, max_bytes):
        return None
    try:
        size = len(json.dumps(value))
    except (RecursionError, ValueError, TypeError):
        return f"Must be plain JSON nested at most {max_depth} deep."
    if size > max_bytes:
        return TOO_LARGE.format(limit=max_bytes // 1024, size=size / 1024)
    # Iterative, so that depth costs no Python recursion.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                return f"Nested deeper than {max_depth} levels."
            for key, child in item.items():
                problem = text_problem(key) if isinstance(key, str) else "Keys must be text."
                if problem:
                    return f"Key {_shown(key)}: {problem}"
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                return f"Nested deeper than {max_depth} levels."
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, (int, float)):
            # One range for every number, whole or not: the document's ``minimum`` and
            # ``maximum`` cannot tell 1e20 from 100000000000000000000.
            # (NaN compares false, infinities fall outside.)
            if not INT_MIN <= item <= INT_MAX:
                return OUT_OF_RANGE
        else:
            return f"Unsupported value of type {type(item).__name__}."
    return None


def _plainly_fine(value: Any, max_bytes: int) -> bool:
    """A quick yes for the usual case, a flat object of short ASCII text and numbers (else: check fully).

    Checked once per trade of a batch of 1000: the full check (a ``json.dumps``
    and a walk) cost 13 ms a batch, this about 2.
    """
    if type(value) is not dict:
        return False
    # Each character takes at most 6 bytes as JSON (\u0000); 12 covers quotes, colon, comma.
    budget = max_bytes - 2
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            text = key + item
        elif kind is bool or item is None:
            text = key
        elif kind is int:
            if not INT_MIN <= item <= INT_MAX:
                return False
            text = key
            budget -= 20
        elif kind is float:
            if not INT_MIN <= item <= INT_MAX:
                return False
            text = key
            budget -= 24
        else:
            return False
        if not text.isascii() or "\x00" in text:
            return False
        budget -= 6 * len(text) + 12
        if budget < 0:
            return False
    return True


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored and sent back as UTF-8 text, or None."""
    if "\x00" in text:
        return "Must not contain NUL characters (\\u0000)."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "Contains an unpaired UTF-16 surrogate (such as \\ud800), which is not text."
    return None


def _shown(key: Any) -> str:
    return json.dumps(str(key)[:40])
