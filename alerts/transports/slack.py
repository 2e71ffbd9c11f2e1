"""Slack: an incoming webhook (https://api.slack.com/messaging/webhooks).

One ``text`` message in Slack's mrkdwn. ``&``, ``<`` and ``>`` are escaped, as
Slack asks, so nothing a bot sent can become a link or an ``<!channel>``
mention. Slack truncates ``text`` past 40,000 characters and advises at most
4,000; we cut at 4,000.

Answers are plain text (https://api.slack.com/messaging/webhooks#handling_errors):
``invalid_payload`` and ``no_text`` (400) fail the one message; ``no_service``,
``no_service_id``, ``no_team``, ``team_disabled``, ``invalid_token`` (the
webhook was removed), ``channel_not_found``, ``channel_is_archived`` and
``action_prohibited`` hold for every alert and disable the channel. A 429
waits ``Retry-After``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from alerts.transports.base import DIGEST_ROOM, Setting, Transport, plain_text, url_value

if TYPE_CHECKING:
    from alerts.models import Alert

TEXT_LIMIT = 4000
GONE = {
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "invalid_token",
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
    "posting_to_general_channel_denied",
    "user_not_found",
}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackTransport(Transport):
    # A digest's lines fit the message; the title, fields and footer take the rest.
    text_limit = TEXT_LIMIT - DIGEST_ROOM

    @staticmethod
    def text_length(text: str) -> int:
        return len(escape(text))

    label = "Slack incoming webhook"

    SETTINGS = (
        Setting(
            "webhook_url",
            "SLACK_WEBHOOK_URL",
            "webhook URL",
            url_value,
            secret=True,
            help="The URL Slack shows (https://hooks.slack.com/services/…).",
        ),
    )

    def describe(self, response: requests.Response) -> str:
        """Slack answers its errors as plain text (``invalid_token``, ``channel_not_found``)."""
        return (response.text.strip() or response.reason or "")[:200]

    def render(self, alert: Alert) -> dict[str, object]:
        # Escaping lengthens the text, so measure what Slack will count.
        text = plain_text(alert, TEXT_LIMIT, lambda t: len(escape(t)))
        return {"text": escape(text), "unfurl_links": False, "unfurl_media": False}

    def send(self, alert: Alert) -> None:
        self.post_or_refuse(
            self.config["webhook_url"],
            json=self.render(alert),
            service="Slack",
            refused=lambda status, detail: detail in GONE or status in (401, 403, 404, 410),
            what="the webhook",
            check="the channel's webhook URL",
        )
