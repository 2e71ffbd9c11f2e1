"""Fixtures for the alerts tests: a loopback Discord webhook and a channel pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alerts.models import Channel
from tests.discord_server import DiscordServer


@pytest.fixture
def discord() -> Iterator[DiscordServer]:
    server = DiscordServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fast_http(settings: Any) -> Any:
    """Short timeouts and waits, so fault tests take seconds."""
    settings.ALERT_HTTP_TIMEOUT = 1.0
    settings.ALERT_HTTP_MAX_WAIT = 2.0
    settings.ALERT_HTTP_ATTEMPTS = 3
    return settings


@pytest.fixture
def channel(db: Any, discord: DiscordServer, fast_http: Any) -> Channel:
    """The channel the migration creates, pointed at the loopback webhook."""
    channel = Channel.objects.get(name="discord")
    channel.config = {"webhook_url": discord.url}
    channel.save()
    return channel
