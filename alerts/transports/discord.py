"""Discord webhooks: one embed per alert, always inside Discord's documented limits.

Limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
content 2000; per embed title 256, description 4096, 25 fields, field name 256,
field value 1024, footer 2048, author name 256; 6000 characters over all embeds
of a message; 10 embeds. Discord counts JavaScript string length (UTF-16 code
units), so an emoji may count twice; we measure the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from alerts import outbound
from alerts.transports.base import Setting, Transport, TransportError, cut, url_value, utf16_len

if TYPE_CHECKING:
    from alerts.models import Alert

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
EMBED_TOTAL_LIMIT = 6000
EMBEDS_LIMIT = 10

STYLE = {
    "info": ("🔔", 0x3498DB),  # blue
    "warning": ("⚠️", 0xE67E22),  # orange
    "critical": ("🚨", 0xE74C3C),  # red
}
EMPTY = "\u200b"  # Discord refuses an empty field name or value


def embed_length(embed: dict[str, Any]) -> int:
    """What Discord counts toward the 6000-character total."""
    total = utf16_len(embed.get("title", "")) + utf16_len(embed.get("description", ""))
    total += sum(utf16_len(f["name"]) + utf16_len(f["value"]) for f in embed.get("fields", []))
    total += utf16_len(embed.get("footer", {}).get("text", ""))
    total += utf16_len(embed.get("author", {}).get("name", ""))
    return total


def fit_embed(embed: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``embed`` cut to every per-part limit and to the total.

    Over the total, the description gives way first, then fields from the
    end: the title and the first fields carry what matters most.
    """
    embed = dict(embed)
    if "title" in embed:
        embed["title"] = cut(embed["title"], TITLE_LIMIT)
    if "description" in embed:
        embed["description"] = cut(embed["description"], DESCRIPTION_LIMIT)
    if "footer" in embed:
        embed["footer"] = {**embed["footer"], "text": cut(embed["footer"]["text"], FOOTER_LIMIT)}
    if "author" in embed:
        embed["author"] = {**embed["author"], "name": cut(embed["author"]["name"], AUTHOR_LIMIT)}
    fields = [
        {
            **field,
            "name": cut(str(field["name"]), FIELD_NAME_LIMIT) or EMPTY,
            "value": cut(str(field["value"]), FIELD_VALUE_LIMIT) or EMPTY,
        }
        for field in embed.get("fields", [])[:FIELDS_LIMIT]
    ]
    if fields or "fields" in embed:
        embed["fields"] = fields
    excess = embed_length(embed) - EMBED_TOTAL_LIMIT
    if excess > 0 and embed.get("description"):
        keep = max(0, utf16_len(embed["description"]) - excess)
        embed["description"] = cut(embed["description"], keep)
        if not embed["description"]:
            del embed["description"]
    while embed_length(embed) > EMBED_TOTAL_LIMIT and embed.get("fields"):
        embed["fields"] = embed["fields"][:-1]
    return embed


def fit_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The whole message inside the limits: content, at most 10 embeds, 6000 over all of them."""
    payload = dict(payload)
    if "content" in payload:
        payload["content"] = cut(payload["content"], CONTENT_LIMIT)
    embeds = [fit_embed(e) for e in payload.get("embeds", [])[:EMBEDS_LIMIT]]
    while len(embeds) > 1 and sum(embed_length(e) for e in embeds) > EMBED_TOTAL_LIMIT:
        embeds.pop()
    payload["embeds"] = embeds
    return payload


def render(alert: Alert) -> dict[str, Any]:
    """The webhook message for one alert: one embed, mentions switched off."""
    emoji, colour = STYLE.get(alert.level, STYLE["info"])
    embed: dict[str, Any] = {
        "title": f"{emoji} {alert.title}",
        "color": colour,
        "timestamp": alert.created_at.isoformat(),
        "footer": {"text": f"{alert.level} · {alert.source} · alert #{alert.pk}"},
    }
    if alert.message:
        embed["description"] = alert.message
    fields = [
        {"name": str(name), "value": str(value), "inline": len(str(value)) <= 40}
        for name, value in (alert.fields or [])
    ]
    if fields:
        embed["fields"] = fields
    # Alert text may quote what a bot sent: no @everyone or role pings, ever.
    return fit_message({"embeds": [embed], "allowed_mentions": {"parse": []}})


def retry_after(response: requests.Response) -> float | None:
    """Discord's wait on a 429: the JSON body's ``retry_after`` (float seconds), else ``Retry-After``."""
    try:
        body = response.json()
        if isinstance(body, dict) and body.get("retry_after") is not None:
            return max(0.0, float(body["retry_after"]))
    except (ValueError, TypeError):
        pass
    return outbound.header_retry_after(response)


class DiscordTransport(Transport):
    # The message is the embed's description; the digest's title and one field stay far
    # inside the 6000 over the whole embed.
    text_limit = DESCRIPTION_LIMIT
    text_length = staticmethod(utf16_len)

    label = "Discord webhook"
    error_key = "message"
    SETTINGS = (
        Setting(
            "webhook_url",
            "DISCORD_WEBHOOK_URL",
            "webhook URL",
            url_value,
            secret=True,
            help="The URL Discord shows (https://discord.com/api/webhooks/…).",
        ),
    )

    def send(self, alert: Alert) -> None:
        url = self.config["webhook_url"]
        if not url:
            raise TransportError("no webhook URL: set DISCORD_WEBHOOK_URL or enter one on the channel")
        # wait=true: Discord answers 200 once the message is stored, not 204 before.
        self.post_or_refuse(
            url,
            json=render(alert),
            params={"wait": "true"},
            retry_after=retry_after,
            service="Discord",
            refused=lambda status, detail: status in (401, 403, 404),
            what="the webhook",
            check="the channel's webhook URL",
        )
