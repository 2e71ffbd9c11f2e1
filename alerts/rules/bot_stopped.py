"""Bot stopped: no heartbeat for longer than the threshold, in minutes of market hours.

Outside market hours silence is expected: an open breach stays open, and none starts.
When heartbeats return the breach ends with an info notice that the bot is reporting again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar

from alerts.models import Level
from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, Notice, Recovery, Rule
from trades import market
from trades.models import Bot
from trades.tables import format_market_time, format_number


class BotStopped(Judge):
    summary = "no heartbeat for threshold minutes in market hours"
    threshold_means = "minutes without a heartbeat, e.g. 10"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"schedule"})

    def breached(self, minutes: Decimal, threshold: Decimal) -> bool:
        return minutes > threshold

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        if bot.last_heartbeat_at is None or rule.threshold is None:
            return  # a bot that never reported cannot have stopped
        subject = f"bot-{bot.pk}"
        if not self.breached(minutes_between(bot.last_heartbeat_at, now), rule.threshold):
            yield Recovery(subject)
            return
        hours = market.market_hours(today)
        if hours is None or not hours[0] <= now <= hours[1]:
            return
        # Silent since before the open: count from the open, so the bell itself is not a breach.
        silent_since = max(bot.last_heartbeat_at, hours[0])
        if not self.breached(minutes_between(silent_since, now), rule.threshold):
            return
        yield Breach(
            subject=subject,
            notice=Notice(
                title=f"{bot.name} has stopped reporting",
                message=f"No heartbeat for {duration(now - bot.last_heartbeat_at)} during market hours.",
                fields=[
                    ("Bot", bot.name),
                    ("Last heartbeat", format_market_time(bot.last_heartbeat_at)),
                    ("Limit", f"{format_number(rule.threshold)} min"),
                ],
            ),
        )

    def recovered(self, rule: Rule, bot: Bot, since: dt.datetime, now: dt.datetime) -> Notice:
        return Notice(
            source="bot_recovered",
            level=Level.INFO,
            title=f"{bot.name} is reporting again",
            message=f"Heartbeats are back after the bot was reported stopped {duration(now - since)} ago.",
            fields=[("Bot", bot.name), ("Last heartbeat", format_market_time(bot.last_heartbeat_at))],
        )


def minutes_between(start: dt.datetime, end: dt.datetime) -> Decimal:
    return Decimal(str((end - start).total_seconds())) / 60


def duration(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
