"""The bot's state as a heartbeat carries it, posted through the real API at a chosen moment:
the cockpit's, the admin's, the summaries' and the dashboard's tests share these."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

from rest_framework.test import APIClient

from trades.models import Bot

GB = 1024**3
MB = 1024**2


def client_for(bot: Bot) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bot.issue_key()[1]}")
    return client


def position(symbol: str, quantity: float, avg_price: float, market_price: float) -> dict[str, Any]:
    return {"symbol": symbol, "quantity": quantity, "avg_price": avg_price, "market_price": market_price}


def post_state(client: APIClient, at: dt.datetime, **state: Any) -> None:
    """A heartbeat at ``at`` carrying ``state`` (positions, equity, cash, host), as the bot sends it."""
    body = {"status": "trading", **state}
    with mock.patch("django.utils.timezone.now", return_value=at):
        response = client.post("/api/v1/heartbeat/", body, format="json")
    assert response.status_code in (200, 201), response.content


def host(
    *,
    disk_free: int = 25 * GB,
    disk_total: int = 50 * GB,
    memory_available: int = 1 * GB,
    memory_total: int = 2 * GB,
    started_at: dt.datetime | None = None,
    pid: int = 4242,
) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "pid": pid,
        "rss_bytes": 120 * MB,
        "cpu_percent": 3.5,
        "memory_available_bytes": memory_available,
        "memory_total_bytes": memory_total,
        "disk_free_bytes": disk_free,
        "disk_total_bytes": disk_total,
    }
    if started_at is not None:
        figures["started_at"] = started_at.isoformat()
    return figures
