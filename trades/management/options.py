"""What the trades commands' shared options mean: ``--bot`` picks one bot's trades, ``--send`` hands
a summary to whoever sends summaries (the alerts app); trades knows no channel."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.dispatch import Signal

from trades.models import Bot, Trade


def chosen_bot(name: str | None) -> Bot | None:
    """The bot ``--bot`` names, None without the option; an unknown name stops the command."""
    if not name:
        return None
    bot = Bot.objects.filter(name=name).first()
    if bot is None:
        raise CommandError(f"No bot named {name!r}.")
    return bot


def send_through_alerts(hook: Signal, what: str, **details: Any) -> str:
    """Send ``hook`` (a summary request the alerts app listens for) with ``details``; the lines its
    receivers answer, saying what they did. A command's error when nobody listens or a receiver fails."""
    answers = hook.send_robust(sender=Trade, **details)
    if not answers:
        raise CommandError("--send needs the alerts app, which is not installed.")
    for _, answer in answers:
        if isinstance(answer, Exception):
            raise CommandError(f"sending the {what} failed: {answer}")
    return "\n".join(str(answer) for _, answer in answers)
