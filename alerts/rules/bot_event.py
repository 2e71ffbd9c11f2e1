"""Bot event: the bot reported an event of the rule's kind (``crash``, ``connection_lost``, ...).

Every event alerts, one alert each, at the rule's level; a rule's cooldown, when it has
one, is the least time between two alerts of one bot.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import ClassVar

from alerts.rules.base import Breach, Finding, Judge, Moment, Notice, Rule
from trades.formats import format_market_time
from trades.models import BotEvent


class ReportedEvent(Judge):
    summary = "an event of the chosen kind"
    takes_event_kind = True
    default_cooldown_minutes = 0
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"event"})

    def on_event(self, rule: Rule, event: BotEvent, now: dt.datetime) -> Iterator[Finding]:
        fields: list[tuple[str, object]] = [
            ("Bot", event.bot.name),
            ("Event", event.kind),
            ("Reported level", event.level),
            ("Occurred", format_market_time(event.occurred_at)),
        ]
        if event.details:
            fields.append(("Details", json.dumps(event.details, default=str, sort_keys=True)))
        notice = Notice(
            source=f"event:{event.kind}",
            title=f"{event.bot.name}: {event.get_kind_display()}",
            message=event.message,
            fields=fields,
        )
        yield Breach(
            subject=f"bot-{event.bot_id}", notice=notice, alert_subject=f"event-{event.pk}", each_time=True
        )
