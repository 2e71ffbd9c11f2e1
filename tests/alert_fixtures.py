"""Fixtures for the alerts tests: a loopback Discord webhook and a channel pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from alerts.models import Channel
from tests.discord_server import DiscordServer
from tests.telegram_server import TelegramServer


@pytest.fixture
def discord() -> Iterator[DiscordServer]:
    server = DiscordServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
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


# Every rule of the judges (alerts/rules/), tried the same way through the admin's forms
# and the YAML import: kind, threshold ("" = none), event kind, per_trade, the field refused.
RULE_CASES: list[tuple[str, str, str, bool, str | None]] = [
    ("max_daily_loss", "", "", False, "threshold"),  # the halt-everything bug: no threshold
    ("max_daily_loss", "0", "", False, "threshold"),  # a loss limit of 0 halts a bot with no trades
    ("max_daily_loss", "-0.01", "", False, None),
    ("daily_loss", "500", "", False, "threshold"),  # the sign forgotten
    ("daily_loss", "", "", False, "threshold"),
    ("daily_loss", "-500", "", False, None),
    ("daily_loss", "-500", "crash", False, "event_kind"),
    ("daily_loss", "-500", "", True, "per_trade"),
    ("trade_frequency", "-5", "", False, "threshold"),
    ("trade_frequency", "0", "", False, "threshold"),
    ("trade_frequency", "2.5", "", False, "threshold"),
    ("trade_frequency", "1", "", False, None),
    ("position_size", "0", "", False, "threshold"),
    ("position_size", "", "", True, "threshold"),
    ("position_size", "0.01", "", True, None),
    ("bot_stopped", "0", "", False, "threshold"),
    ("bot_stopped", "", "", False, "threshold"),
    ("bot_stopped", "1", "", False, None),
    ("bot_event", "", "", False, "event_kind"),
    ("bot_event", "5", "crash", False, "threshold"),
    ("bot_event", "", "crash", False, None),
    ("host_disk", "0", "", False, "threshold"),  # a percent: above 0 ...
    ("host_disk", "100", "", False, "threshold"),  # ... and below 100
    ("host_disk", "", "", False, "threshold"),
    ("host_disk", "10", "", True, "per_trade"),
    ("host_disk", "10", "", False, None),
    ("host_memory", "-5", "", False, "threshold"),
    ("host_memory", "99.99", "", False, None),
    ("host_memory", "0.01", "", False, None),
    ("bot_restart", "5", "", False, "threshold"),
    ("bot_restart", "", "crash", False, "event_kind"),
    ("bot_restart", "", "", False, None),
    ("trade_rate_anomaly", "", "", False, "threshold"),
    ("trade_rate_anomaly", "0", "", False, "threshold"),  # a score: above 0 ...
    ("trade_rate_anomaly", "50.01", "", False, "threshold"),  # ... and at most 50
    ("trade_rate_anomaly", "6", "", True, "per_trade"),
    ("trade_rate_anomaly", "50", "", False, None),
    ("pnl_anomaly", "-6", "", False, "threshold"),
    ("pnl_anomaly", "6", "crash", False, "event_kind"),
    ("pnl_anomaly", "0.01", "", False, None),
]
