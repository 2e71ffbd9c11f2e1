"""Bearer-key authentication for the bot API.

Keys are ``djangorestframework-api-key`` keys (a prefix for the lookup and a
SHA-512 hash of the whole key), each tied to one bot. A write key may post
trades, heartbeats and events; a read-only key may only read.

A web process keeps each key it has verified for ``KEY_CACHE_SECONDS`` (with its
bot), so a busy bot's requests do not each look the key up: that look-up was a
quarter of a single trade's CPU. The bound: a key revoked, or its bot made
inactive, in another process (the admin served by another web process, a
queryset ``update``) is refused within ``KEY_CACHE_SECONDS``; in the process that
saved or deleted the key or the bot, at once (every save or delete of either
empties that process's cache). A key's ``expiry_date`` is checked on every
request, cached or not.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from trades.models import Bot, BotKey

KEYWORD = "Bearer"

#: How long a web process trusts a key it has verified before it asks the database again: the
#: longest a key revoked (or a bot made inactive) elsewhere keeps working in this process.
KEY_CACHE_SECONDS = 5.0
#: Keys kept at most; one more empties the cache (a process serves a handful of bots).
KEY_CACHE_SIZE = 256


class VerifiedKeys:
    """Keys this process verified within ``seconds``, by the SHA-256 of the whole key.

    Only a key the database and its hash check accepted is kept, under the digest
    of everything the client sent: a key with the right prefix and a wrong
    secret never matches an entry. The plain key is not kept. Each request gets
    its own copy of the key and its bot, so what one request changes on them
    (``Bot.record_heartbeat`` updates its instance) stays in that request.
    """

    def __init__(self, seconds: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.size = size
        self.clock = clock
        self._entries: dict[bytes, tuple[float, BotKey]] = {}

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    def get(self, key: str) -> BotKey | None:
        """A copy of the key verified as ``key`` less than ``seconds`` ago, else None."""
        digest = self._digest(key)
        entry = self._entries.get(digest)
        if entry is None:
            return None
        verified_at, bot_key = entry
        if self.clock() - verified_at >= self.seconds:
            self._entries.pop(digest, None)
            return None
        return _copy_of(bot_key)

    def put(self, key: str, bot_key: BotKey) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[self._digest(key)] = (self.clock(), _copy_of(bot_key))

    def clear(self, *args: Any, **kwargs: Any) -> None:
        """Forget every key (also a signal receiver: a key or a bot was saved or deleted)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _copy_of(bot_key: BotKey) -> BotKey:
    """The key and its bot as new instances (same field values)."""
    key = _clone(bot_key)
    key._state.fields_cache["bot"] = _clone(bot_key.bot)
    return key


def _clone(instance: Any) -> Any:
    """A new instance with ``instance``'s field values, as a saved row (what ``copy.copy`` of a model
    makes, without its round trip through pickling's protocol: it ran on every request)."""
    clone = object.__new__(type(instance))
    clone.__dict__.update(instance.__dict__)
    clone._state = copy.copy(instance._state)
    clone._state.fields_cache = {}
    return clone


VERIFIED_KEYS = VerifiedKeys(KEY_CACHE_SECONDS, KEY_CACHE_SIZE)


class BotKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Bot, BotKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        key = key.strip()
        if keyword.lower() != KEYWORD.lower() or not key:
            raise exceptions.AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.")
        bot_key = VERIFIED_KEYS.get(key)
        if bot_key is None:
            try:
                bot_key = BotKey.objects.get_from_key(key)
            except BotKey.DoesNotExist:
                raise exceptions.AuthenticationFailed("Unknown or revoked API key.") from None
            VERIFIED_KEYS.put(key, bot_key)
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
