"""How the OpenAPI document (drf-spectacular) describes the bot API's authentication."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
