"""Telegram: the Bot API's ``sendMessage`` to one chat, as plain text.

Limits (https://core.telegram.org/bots/api#sendmessage): text 1-4096
characters after entity parsing. We send no ``parse_mode``, so nothing in an
alert is read as markup, and count UTF-16 code units (as Telegram counts
entity offsets), which is never less than the characters it counts.

Answers (https://core.telegram.org/bots/api#making-requests): a JSON body
``{"ok": false, "error_code", "description", "parameters"}``; a 429 carries
``parameters.retry_after`` (seconds). 401 (a revoked token), 403 (the bot was
blocked or removed), 404 (a malformed token) and "chat not found" hold for
every alert, so they disable the channel; a group upgraded to a supergroup
answers ``parameters.migrate_to_chat_id``, named in the reason.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import requests

from alerts import outbound
from alerts.transports.base import (
    DIGEST_ROOM,
    Setting,
    Transport,
    TransportError,
    json_body,
    plain_text,
    url_value,
    utf16_len,
)

if TYPE_CHECKING:
    from alerts.models import Alert

TEXT_LIMIT = 4096
API_URL = "https://api.telegram.org"


def bot_token(value: str) -> str:
    value = str(value).strip()
    if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", value):
        raise ValueError("must be the token @BotFather gave (digits, a colon, then the key)")
    return value


def chat_id(value: str) -> str:
    value = str(value).strip()
    if not re.fullmatch(r"-?\d+|@[A-Za-z][A-Za-z0-9_]{3,}", value):
        raise ValueError("must be a numeric chat id (groups start with -) or @channelname")
    return value


def command_users(value: str) -> tuple[int, ...]:
    """``TELEGRAM_COMMAND_USERS``: Telegram user ids, comma separated (a user's id is a positive
    number; a chat's or group's is not a user)."""
    ids = []
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        if not re.fullmatch(r"[1-9]\d{0,15}", item):
            raise ValueError(
                "must be Telegram user ids (positive numbers, as @userinfobot tells them), comma separated"
            )
        ids.append(int(item))
    if not ids:
        raise ValueError("must name at least one Telegram user id")
    return tuple(dict.fromkeys(ids))


def retry_after(response: requests.Response) -> float | None:
    """``parameters.retry_after`` of a 429, else the ``Retry-After`` header."""
    wait = (json_body(response).get("parameters") or {}).get("retry_after")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool):
        return max(0.0, float(wait))
    return outbound.header_retry_after(response)


class TelegramTransport(Transport):
    # A digest's lines fit the message; the title, fields and footer take the rest.
    text_limit = TEXT_LIMIT - DIGEST_ROOM
    text_length = staticmethod(utf16_len)

    label = "Telegram bot"
    error_key = "description"
    SETTINGS = (
        Setting("bot_token", "TELEGRAM_BOT_TOKEN", "bot token", bot_token, secret=True),
        Setting("chat_id", "TELEGRAM_CHAT_ID", "chat id", chat_id),
        Setting(
            "api_url",
            "TELEGRAM_API_URL",
            "Bot API URL",
            url_value,
            required=False,
            default=API_URL,
            help="A local Bot API server, if you run one.",
        ),
    )

    def destination(self) -> str:
        return f"chat {self.config['chat_id']}" if self.config.get("chat_id") else ""

    def render(self, alert: Alert) -> dict[str, Any]:
        return {
            "chat_id": self.config["chat_id"],
            "text": plain_text(alert, TEXT_LIMIT, utf16_len),
            "disable_web_page_preview": True,
        }

    def send(self, alert: Alert) -> None:
        url = f"{self.config['api_url']}/bot{self.config['bot_token']}/sendMessage"
        response = self.post(url, json=self.render(alert), retry_after=retry_after)
        body = json_body(response)
        if response.ok and body.get("ok", True):
            return
        status = response.status_code
        detail = self.outcomes[-1].error if self.outcomes else ""
        migrated = (body.get("parameters") or {}).get("migrate_to_chat_id")
        if migrated:
            raise TransportError(
                f"Telegram: the group became a supergroup; set the chat id to {migrated}",
                disables_channel=True,
                status_code=status,
            )
        if status in (401, 403, 404) or "chat not found" in detail.lower():
            raise TransportError(
                f"Telegram refused the bot or chat (HTTP {status} from {self.host}: {detail}); "
                "check the bot token and chat id, and that the bot is in the chat",
                disables_channel=True,
                status_code=status,
            )
        raise TransportError(
            f"Telegram ({self.host}) answered HTTP {status}: {detail}", permanent=True, status_code=status
        )
