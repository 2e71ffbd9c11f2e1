"""A web process trusts a key it verified for ``KEY_CACHE_SECONDS`` (trades/auth.py): a key revoked,
or its bot made inactive, by another process is refused from that bound on; a change saved in this
process counts at once; a wrong secret, an expiry and a request's own changes never ride on the cache.

"Another process" is a queryset ``update``, which sends no signal, as a change made by another web
process reaches this one: only through the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import make_trade
from trades.auth import KEY_CACHE_SECONDS, VERIFIED_KEYS, VerifiedKeys
from trades.models import Bot, BotKey

URL = "/api/v1/trades/"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(VERIFIED_KEYS, "clock", fake)
    VERIFIED_KEYS.clear()
    yield fake
    VERIFIED_KEYS.clear()


def status(api: APIClient) -> int:
    return api.get(URL).status_code


def post_trade(api: APIClient) -> Any:
    return api.post(URL, make_trade(), format="json")


@pytest.mark.parametrize(
    "change_elsewhere",
    [
        pytest.param(lambda bot: BotKey.objects.filter(bot=bot).update(revoked=True), id="key revoked"),
        pytest.param(
            lambda bot: Bot.objects.filter(pk=bot.pk).update(is_active=False), id="bot made inactive"
        ),
    ],
)
def test_a_key_revoked_elsewhere_is_refused_from_the_bound_on(
    bot: Bot, api: APIClient, clock: Clock, change_elsewhere: Callable[[Bot], object]
) -> None:
    assert status(api) == 200  # verified at clock.now
    verified = clock.now
    change_elsewhere(bot)
    clock.now = verified + KEY_CACHE_SECONDS - 0.001
    assert status(api) == 200  # still trusted: within the documented bound
    clock.now = verified + KEY_CACHE_SECONDS
    assert status(api) == 401  # the bound reached: looked up again, refused
    assert post_trade(api).status_code == 401


def test_a_key_revoked_or_deleted_in_this_process_is_refused_at_once(
    bot: Bot, write_key: str, read_key: str, clock: Clock
) -> None:
    write, read = APIClient(), APIClient()
    write.credentials(HTTP_AUTHORIZATION=f"Bearer {write_key}")
    read.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key}")
    assert status(write) == status(read) == 200
    key = BotKey.objects.get(bot=bot, read_only=False)
    key.revoked = True
    key.save()  # as the admin does
    assert status(write) == 401
    BotKey.objects.get(bot=bot, read_only=True).delete()
    assert status(read) == 401


def test_a_bot_made_inactive_in_this_process_is_refused_at_once(
    bot: Bot, api: APIClient, clock: Clock
) -> None:
    assert status(api) == 200
    bot.is_active = False
    bot.save()
    assert status(api) == 401


def test_a_wrong_secret_never_matches_a_trusted_key(bot: Bot, write_key: str, clock: Clock) -> None:
    other_prefix = bot.issue_key()[1].partition(".")[0]  # before: a key saved empties the cache
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {write_key}")
    assert status(api) == 200
    prefix, _, secret = write_key.partition(".")
    for wrong in (f"{prefix}.{secret[:-1]}", f"{prefix}.{secret}x", prefix, f"{other_prefix}.{secret}"):
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {wrong}")
        assert status(api) == 401, wrong
    assert len(VERIFIED_KEYS) == 1  # only the real key was kept


def test_a_trusted_key_is_refused_the_moment_it_expires(
    bot: Bot, api: APIClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires = timezone.now() + dt.timedelta(hours=1)
    BotKey.objects.filter(bot=bot).update(expiry_date=expires)
    assert status(api) == 200  # verified, expiry_date with it
    monkeypatch.setattr(timezone, "now", lambda: expires)
    assert status(api) == 200  # at its expiry date: not yet expired (the library's rule)
    monkeypatch.setattr(timezone, "now", lambda: expires + dt.timedelta(microseconds=1))
    assert status(api) == 401  # past it, while the cache still trusts the key
    assert "expired" in post_trade(api).json()["detail"]


def test_each_request_gets_its_own_key_and_bot(bot: Bot, write_key: str) -> None:
    keys = VerifiedKeys(seconds=5, size=4)
    keys.put(write_key, BotKey.objects.get_from_key(write_key))
    first, second = keys.get(write_key), keys.get(write_key)
    assert first is not None and second is not None
    assert first is not second and first.bot is not second.bot
    first.bot.stopped_at = timezone.now()  # as a request's record_shutdown sets its instance
    first.bot.name = "changed"
    third = keys.get(write_key)
    assert third is not None and third.bot.stopped_at is None and third.bot.name == "alpha"
    assert third.bot_id == bot.pk and third.pk == first.pk


def test_the_cache_holds_at_most_its_size(bot: Bot) -> None:
    keys = VerifiedKeys(seconds=5, size=3)
    issued = [bot.issue_key()[1] for _ in range(4)]
    for key in issued[:3]:
        keys.put(key, BotKey.objects.get_from_key(key))
    assert len(keys) == 3 and all(keys.get(key) is not None for key in issued[:3])
    keys.put(issued[3], BotKey.objects.get_from_key(issued[3]))  # one past the size: emptied first
    assert len(keys) == 1 and keys.get(issued[3]) is not None and keys.get(issued[0]) is None


def test_the_plain_key_is_not_kept(bot: Bot, write_key: str) -> None:
    keys = VerifiedKeys(seconds=5, size=4)
    keys.put(write_key, BotKey.objects.get_from_key(write_key))
    assert all(write_key.encode() not in digest for digest in keys._entries)
    assert all(len(digest) == 32 for digest in keys._entries)
