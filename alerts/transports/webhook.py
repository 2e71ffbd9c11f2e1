"""A generic JSON webhook, for anything else (a home-automation hub, a pager bridge).

The body (``Content-Type: application/json``)::

    {"id": 42, "level": "critical", "title": "...", "message": "...",
     "fields": [{"name": "...", "value": "..."}], "source": "daily_loss",
     "bot": "alpha", "created_at": "2026-01-15T15:00:00+00:00"}

Headers: ``X-Monitor-Alert`` (the alert's id: a receiver can drop a repeat,
as delivery is at least once), ``X-Monitor-Timestamp`` (Unix seconds) and,
with a secret, ``X-Monitor-Signature: sha256=<hex>``: the HMAC-SHA256, keyed
by the secret, of ``<timestamp>.<raw body>``. Signing the timestamp with the
body lets a receiver refuse a replayed request (see docs/ALERTS.md). The
message is cut to 32,000 characters; 401/403/404/410 disable the channel,
429 waits ``Retry-After``, 5xx is retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import TYPE_CHECKING, Any

from alerts.transports.base import Setting, Transport, cut, url_value

if TYPE_CHECKING:
    from alerts.models import Alert

MESSAGE_LIMIT = 32_000
SIGNATURE_HEADER = "X-Monitor-Signature"
TIMESTAMP_HEADER = "X-Monitor-Timestamp"
ALERT_HEADER = "X-Monitor-Alert"


def signing_secret(value: str) -> str:
    value = str(value).strip()
    if len(value) < 16:
        raise ValueError("must be at least 16 characters (a random string both sides know)")
    return value


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``<timestamp>.<body>``: what a receiver recomputes to verify."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookTransport(Transport):
    # The digest is the message field alone.
    text_limit = MESSAGE_LIMIT

    label = "JSON webhook"
    SETTINGS = (
        Setting("url", "ALERT_WEBHOOK_URL", "URL", url_value, secret=True),
        Setting(
            "secret",
            "ALERT_WEBHOOK_SECRET",
            "signing secret",
            signing_secret,
            secret=True,
            required=False,
            help="Signs each body (HMAC-SHA256) so the receiver can verify it came from the site.",
        ),
    )

    def render(self, alert: Alert) -> dict[str, Any]:
        return {
            "id": alert.pk,
            "level": alert.level,
            "title": alert.title,
            "message": cut(alert.message or "", MESSAGE_LIMIT, len),
            "fields": [{"name": str(n), "value": str(v)} for n, v in (alert.fields or [])],
            "source": alert.source,
            "bot": alert.bot.name if alert.bot_id else None,
            "created_at": alert.created_at.isoformat(),
        }

    def send(self, alert: Alert) -> None:
        body = json.dumps(self.render(alert), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            ALERT_HEADER: str(alert.pk),
            TIMESTAMP_HEADER: timestamp,
        }
        if self.config.get("secret"):
            headers[SIGNATURE_HEADER] = signature(self.config["secret"], timestamp, body)
        self.post_or_refuse(
            self.config["url"],
            service="the webhook",
            refused=lambda status, detail: status in (401, 403, 404, 410),
            what="us",
            check="its URL and secret",
            data=body,
            headers=headers,
        )
