"""Transports by channel kind, imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.module_loading import import_string

from alerts.transports.base import Outcome, Transport, TransportError

if TYPE_CHECKING:
    from alerts.models import Channel

TRANSPORTS: dict[str, str] = {
    "discord": "alerts.transports.discord.DiscordTransport",
}

__all__ = ["TRANSPORTS", "Outcome", "Transport", "TransportError", "transport_for"]


def transport_for(channel: Channel) -> Transport:
    try:
        path = TRANSPORTS[channel.kind]
    except KeyError:
        raise TransportError(f"no transport for channel kind {channel.kind!r}", permanent=True) from None
    return import_string(path)(channel)
