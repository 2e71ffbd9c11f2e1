"""Task-cluster work on trades and bots."""

from __future__ import annotations

from typing import Any

from trades.models import BotEvent


def record_event(bot_id: int, kind: str, level: str = "info", message: str = "", details: Any = None) -> int:
    """Store a bot event from a worker, for events raised by the site's own checks rather than the bot."""
    event = BotEvent.objects.create(
        bot_id=bot_id, kind=kind, level=level, message=message, details=details or {}
    )
    return event.pk


def thin_snapshots() -> str:
    """The scheduled thinning of the bots' state snapshots (``trades.thinning``)."""
    from trades.thinning import thin_snapshots as thin

    return str(thin())


def record_hours() -> str:
    """The scheduled keeping of each bot's hourly figures (``trades.hours``)."""
    from trades.hours import record_hours as record

    return str(record())
