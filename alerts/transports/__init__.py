"""Transports by channel kind: the one list of kinds, each class imported on first use.

Adding a kind: its module here, one line in ``TRANSPORTS``, its test with a
loopback stand-in. The admin, the YAML format, the environment variables of
the default channel and the secret masking all follow from the module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from alerts.outbound import Outcome, hide
from alerts.transports.base import ConfigError, Setting, Transport, TransportError

if TYPE_CHECKING:
    from alerts.models import Channel

TRANSPORTS: dict[str, str] = {
    "discord": "alerts.transports.discord.DiscordTransport",
    "telegram": "alerts.transports.telegram.TelegramTransport",
    "ntfy": "alerts.transports.ntfy.NtfyTransport",
    "slack": "alerts.transports.slack.SlackTransport",
    "email": "alerts.transports.email.EmailTransport",
    "webhook": "alerts.transports.webhook.WebhookTransport",
}

__all__ = [
    "TRANSPORTS",
    "ConfigError",
    "Outcome",
    "Setting",
    "Transport",
    "TransportError",
    "environment_settings",
    "hide",
    "kind_choices",
    "transport_class",
    "transport_for",
]


def transport_class(kind: str) -> type[Transport]:
    try:
        path = TRANSPORTS[kind]
    except KeyError:
        raise TransportError(f"no transport for channel kind {kind!r}", permanent=True) from None
    return import_string(path)


def transport_for(channel: Channel) -> Transport:
    return transport_class(channel.kind)(channel)


def kind_choices() -> list[tuple[str, str]]:
    """The channel kinds, for the model field's choices (a callable: a new kind needs no migration)."""
    return [(kind, transport_class(kind).label or kind) for kind in TRANSPORTS]


def environment_settings(read: Callable[[str, Callable[[str], Any]], Any]) -> dict[str, Any]:
    """Every transport's environment variable, read by ``read(name, check)``, by name.

    ``monitorsite/settings.py`` passes a reader that turns a failed check into
    one line naming the variable, so a malformed value stops start-up.
    """
    values: dict[str, Any] = {}
    for kind in TRANSPORTS:
        for setting in transport_class(kind).SETTINGS:
            value = read(setting.env, setting.check)
            values[setting.env] = setting.default if value is None else value
    return values
