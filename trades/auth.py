"""Bearer-key authentication for the bot API.

Keys are ``djangorestframework-api-key`` keys (a prefix for the lookup and a
SHA-512 hash of the whole key), each tied to one bot. A write key may post
trades, heartbeats and events; a read-only key may only read.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from trades.models import Bot, BotKey

KEYWORD = "Bearer"


class BotKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Bot, BotKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        key = key.strip()
        if keyword.lower() != KEYWORD.lower() or not key:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.")
        try:
            bot_key = BotKey.objects.get_from_key(key)
        except BotKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.") from None
        if bot_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        return bot_key.bot, bot_key

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'


class HasBotKey(permissions.BasePermission):
    """Any valid key may read; only a bot's write key may change anything."""

    message = "This key is read-only; writing needs the bot's write key."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = request.auth
        if not isinstance(key, BotKey):
            return False
        return request.method in permissions.SAFE_METHODS or key.can_write
