"""Fixtures for the channel tests: a loopback stand-in per service and a channel pointing at each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from alerts.delivery import deliver_pending
from alerts.evaluation import raise_alert
from alerts.models import Alert, Channel
from tests import ntfy_server, smtp_server, telegram_server, webhook_receiver
from tests.alert_fixtures import discord, fast_http  # noqa: F401  (re-exported fixtures)
from tests.ntfy_server import NtfyServer
from tests.slack_server import SlackServer
from tests.smtp_server import SmtpServer
from tests.telegram_server import TelegramServer
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


@pytest.fixture
def ntfy() -> Iterator[NtfyServer]:
    server = NtfyServer().start()
    yield server
    server.stop()


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp(settings: Any) -> Iterator[SmtpServer]:
    """A local SMTP server with a login, and Django's e-mail settings pointing at it."""
    server = SmtpServer(users={smtp_server.USER: smtp_server.PASSWORD}).start()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = smtp_server.USER, smtp_server.PASSWORD
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "monitor@example.com"
    yield server
    server.stop()


def telegram_config(server: TelegramServer) -> dict[str, Any]:
    return {"bot_token": telegram_server.TOKEN, "chat_id": telegram_server.CHAT_ID, "api_url": server.api_url}


def ntfy_config(server: NtfyServer) -> dict[str, Any]:
    return {"url": server.url, "token": ntfy_server.TOKEN}


def slack_config(server: SlackServer) -> dict[str, Any]:
    return {"webhook_url": server.url}


def webhook_config(server: WebhookReceiver) -> dict[str, Any]:
    return {"url": server.url, "secret": webhook_receiver.SECRET}


def make_channel(name: str, kind: str, config: dict[str, Any], **options: Any) -> Channel:
    return Channel.objects.create(name=name, kind=kind, config=config, **options)


def send(level: str = "warning", now: dt.datetime | None = None, **overrides: Any) -> list[Alert]:
    """Raise one alert and run one delivery pass; the alerts as they are afterwards."""
    values: dict[str, Any] = {"source": "test", "level": level, "title": "Daily loss", "message": "P&L -600"}
    values.update(overrides)
    alerts = raise_alert(now=now, **values)
    deliver_pending(now=now)
    for alert in alerts:
        alert.refresh_from_db()
    return alerts


def all_text() -> list[str]:
    """Every text the site wrote about alerts: alert rows, delivery attempts, channel reasons."""
    from alerts.models import DeliveryAttempt

    texts = [
        " ".join(map(str, row))
        for row in Alert.objects.values_list("title", "message", "fields", "last_error")
    ]
    texts += list(DeliveryAttempt.objects.values_list("error", flat=True))
    texts += list(Channel.objects.values_list("disabled_reason", flat=True))
    texts += list(Channel.objects.values_list("last_error", flat=True))
    return texts
