"""How the OpenAPI document (drf-spectacular) describes the bot API: its key and its error answers.

Every endpoint can answer errors that no view declares: the key is checked
before the view runs (401, 403), the web server refuses an oversized body
(413), DRF refuses an unknown ``?format=`` (404) or an ``Accept`` it cannot
serve (406), and Django refuses a bad ``Host`` (400). ``document_error_answers``
adds them to every operation of the document, so an endpoint added later is
documented as completely without a line of its own.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension

from monitor_client.wire import DETAILS_MAX_BYTES
from trades.jsonvalues import (
    NO_NUL_PATTERN,
    json_object_schema,
    json_value_schemas,
)

ERROR_COMPONENT = "Error"
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})

_MESSAGES = {"type": "array", "items": {"type": "string"}}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer of the API: a readable `detail`, and for invalid input `errors`"
    " naming each field (for a batch of trades: item index, then field).",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in one sentence."},
        "errors": {
            "type": "object",
            "description": "Invalid input only: field (or `body`, or a batch item's index) to its"
            " messages, or to an object of field to messages.",
            "additionalProperties": {
                "anyOf": [
                    _MESSAGES,
                    {"type": "object", "additionalProperties": _MESSAGES},
                ]
            },
        },
    },
    "required": ["detail"],
}


class BotKeyScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer <key>``, the key ``manage.py create_bot`` prints once."""

    target_class = "trades.auth.BotKeyAuthentication"
    name = "botKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A bot's key, as `Authorization: Bearer <key>`. A write key may post trades, heartbeats"
                " and events; a read-only key may only read. `manage.py create_bot NAME` prints one."
            ),
        }


class TextFieldScheme(OpenApiSerializerFieldExtension):
    """DRF's ``CharField`` refuses a NUL character (``ProhibitNullCharactersValidator``); the
    document says so with a pattern, unless the field's own pattern already does."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        # A field's own pattern is added after this mapping (and refuses control characters).
        has_pattern = any(isinstance(v, RegexValidator) for v in self.target.validators)
        kind = schema.get("type")
        # A field that may be null is typed ["string", "null"]; JSON Schema applies a pattern to strings only.
        text = kind == "string" or (isinstance(kind, list) and "string" in kind)
        if direction == "request" and text and not has_pattern:
            schema["pattern"] = NO_NUL_PATTERN
        return schema


class DetailsFieldScheme(OpenApiSerializerFieldExtension):
    """A heartbeat's or an event's ``details``: the free-form JSON the validator takes."""

    target_class = "trades.serializers.DetailsField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return json_object_schema(DETAILS_MAX_BYTES)


_BLANK = {"type": "string", "maxLength": 0}


def _blank_or_pattern(node: Any) -> None:
    """drf-spectacular writes a text field that may be blank and has a pattern as
    ``oneOf: [pattern, ""]``, which refuses ``""`` whenever the pattern takes it too.

    Where the pattern takes ``""`` the branch alone says it all; elsewhere ``anyOf``
    says what is meant.
    """
    if isinstance(node, dict):
        branches = node.get("oneOf")
        if isinstance(branches, list) and _BLANK in branches:
            others = [branch for branch in branches if branch != _BLANK]
            pattern = others[0].get("pattern") if len(others) == 1 else None
            if pattern is not None and not others[0].get("minLength") and re.search(pattern, ""):
                del node["oneOf"]
                node.update(others[0])
            else:
                node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _blank_or_pattern(value)
    elif isinstance(node, list):
        for value in node:
            _blank_or_pattern(value)


def _unique_types(node: Any) -> None:
    """drf-spectacular 0.30 writes a nullable field of a model serializer whose model field is
    nullable too as ``type: [string, null, null]``, which JSON Schema refuses (unique items)."""
    if isinstance(node, dict):
        types = node.get("type")
        if isinstance(types, list):
            node["type"] = list(dict.fromkeys(types))
        for value in node.values():
            _unique_types(value)
    elif isinstance(node, list):
        for value in node:
            _unique_types(value)


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
        **extra,
    }


def error_answers(method: str, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The error answers ``operation`` can give besides its own, by status code."""
    keyed = bool(operation.get("security"))
    writes = method in WRITE_METHODS
    answers = {
        "400": _error(
            "Invalid input: `errors` names each field (or `body`, the body as a whole). Nothing was stored."
            if writes or operation.get("parameters")
            else "A malformed request (such as an unknown `Host`)."
        ),
        "404": _error("An unknown `?format=`: the API answers JSON only."),
        "406": _error("The `Accept` header allows no JSON."),
        "413": _error("The body is larger than the web server takes (16 MB); nothing was read."),
    }
    if keyed:
        answers["401"] = _error(
            "No key, a malformed `Authorization` header, or an unknown, revoked or expired key, or a"
            " deactivated bot.",
            headers={
                "WWW-Authenticate": {
                    "schema": {"type": "string"},
                    "description": 'Always `Bearer realm="api"`.',
                }
            },
        )
    if keyed and writes:
        answers["403"] = _error("A read-only key: writing needs the bot's write key.")
    if writes:
        answers["415"] = _error("A body that is not `application/json`.")
    return answers


def _body_required(operation: dict[str, Any]) -> None:
    """A request body is required unless its schema is an object with no required field.

    drf-spectacular decides this for a serializer, not for a schema given as a dict
    (the trades endpoint's), which it leaves optional: an empty body is then a 400
    the document did not foresee.
    """
    body = operation.get("requestBody")
    if not body or "required" in body:
        return
    schema = body.get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" not in schema and not (schema.get("type") == "object" and not schema.get("required")):
        body["required"] = True


def document_error_answers(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation lists every error it can answer.

    An operation's own description of a code (the trades endpoint's 400) wins.
    """
    _blank_or_pattern(result)
    _unique_types(result)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_COMPONENT] = ERROR_SCHEMA
    schemas.update(json_value_schemas())
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            _body_required(operation)
            responses = operation.setdefault("responses", {})
            for code, answer in error_answers(method, operation).items():
                responses.setdefault(code, answer)
                responses[code].setdefault("content", answer["content"])
            operation["responses"] = dict(sorted(responses.items()))
    return result
