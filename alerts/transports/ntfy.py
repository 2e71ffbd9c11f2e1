"""ntfy: publish to a topic (https://docs.ntfy.sh/publish/), public ntfy.sh or self-hosted.

The body is the message; ``Title``, ``Priority`` and ``Tags`` go in headers.
Limits: a body over 4,096 bytes (the server's default ``message-size-limit``)
is turned into an attachment, so we cut the message to 4,096 UTF-8 bytes;
the title to 250 characters. A non-ASCII title or tag is sent RFC 2047
encoded (``=?UTF-8?B?…?=``), which ntfy decodes since 2.4.0: HTTP headers
carry latin-1 only.

Priority from the level: critical → 5 (urgent), warning → 4 (high), info → 3
(default). The topic name is the access control on a public server (anyone who
knows it can read it), so the URL is a secret, like the optional access token.
Answers are JSON ``{"code", "http", "error"}``; 401/403 (a wrong or missing
token) and 404 hold for every alert and disable the channel; 429 waits
``Retry-After`` when given, else backs off.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from alerts.transports.base import (
    DIGEST_ROOM,
    Setting,
    Transport,
    cut,
    plain_text,
    url_value,
    utf8_len,
)

if TYPE_CHECKING:
    from alerts.models import Alert

MESSAGE_LIMIT = 4096  # bytes
TITLE_LIMIT = 250
PRIORITY = {"critical": "5", "warning": "4", "info": "3"}
TAGS = {"critical": "rotating_light", "warning": "warning", "info": "bell"}


def topic_url(value: str) -> str:
    value = url_value(value)
    if value.split("://", 1)[1].count("/") < 1:
        raise ValueError("must be the topic's full URL, e.g. https://ntfy.sh/your-topic")
    return value


def token(value: str) -> str:
    value = str(value).strip()
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be an access token (tk_…) without spaces")
    return value


def header(text: str) -> str:
    """``text`` as an HTTP header value: ASCII as it is, anything else RFC 2047 encoded."""
    if text.isascii():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


class NtfyTransport(Transport):
    # A digest's lines fit the message; the title, fields and footer take the rest.
    text_limit = MESSAGE_LIMIT - DIGEST_ROOM
    text_length = staticmethod(utf8_len)

    label = "ntfy topic"
    error_key = "error"
    SETTINGS = (
        Setting(
            "url",
            "NTFY_URL",
            "topic URL",
            topic_url,
            secret=True,
            help="The topic's full URL, e.g. https://ntfy.sh/your-topic.",
        ),
        Setting("token", "NTFY_TOKEN", "access token", token, secret=True, required=False),
    )

    def headers(self, alert: Alert) -> dict[str, str]:
        headers = {
            "Title": header(cut(alert.title, TITLE_LIMIT, len)),
            "Priority": PRIORITY.get(alert.level, "3"),
            # ntfy shows a tag that names an emoji as that emoji: the level's, then the source.
            "Tags": header(",".join(t for t in (TAGS.get(alert.level, "bell"), alert.source[:40]) if t)),
            "Content-Type": "text/plain; charset=utf-8",
        }
        if self.config.get("token"):
            headers["Authorization"] = f"Bearer {self.config['token']}"
        return headers

    def render(self, alert: Alert) -> bytes:
        # The title travels in its header; the body is the rest.
        return plain_text(alert, MESSAGE_LIMIT, utf8_len, title=False).encode("utf-8") or b" "

    def send(self, alert: Alert) -> None:
        self.post_or_refuse(
            self.config["url"],
            data=self.render(alert),
            headers=self.headers(alert),
            service="ntfy",
            refused=lambda status, detail: status in (401, 403, 404),
            what="the topic",
            check="the topic URL and access token",
        )
