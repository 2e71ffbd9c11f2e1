"""Bot stopped: no heartbeat for longer than the threshold, in minutes of market hours.

Market hours are the bot's calendar's (``trades.market.calendar_for``): a London bot is judged
while London trades, a 24/7 bot at any hour. Outside market hours silence is expected: an open
breach stays open, and none starts. When heartbeats return the breach ends with an info notice that
the bot is reporting again.

A bot that said it shut down (a ``shutdown`` event, which ``monitor_client`` also sends when a
bot that sent heartbeats closes it) is stopped on purpose, not silent: this rule leaves it alone
until a heartbeat, a new trade or a startup says it runs again. The shutdown itself is news of
its own, told by the ``event-shutdown`` rule (info, by default) once per shutdown, in market
hours or not: a deliberate stop is worth knowing, never a critical page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar

from alerts.models import Level
from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, Notice, Recovery, Rule
from trades import market
from trades.formats import format_duration, format_market_time
from trades.models import Bot


class BotStopped(Judge):
    summary = "no heartbeat for threshold minutes in market hours"
    threshold_means = "minutes without a heartbeat, e.g. 10"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"schedule"})

    # A bot has one heartbeat grace: rules of its own replace the general ones, so the alert
    # and the cockpit's "stopped" follow the same limit.
    own_rule_replaces_general: ClassVar[bool] = True

    def breached(self, minutes: Decimal, threshold: Decimal) -> bool:
        return past_grace(minutes, threshold)

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        if bot.last_heartbeat_at is None or rule.threshold is None:
            return  # a bot that never reported cannot have stopped
        subject = f"bot-{bot.pk}"
        state = bot_heartbeat_state(bot, now, rule.threshold, today)
        if state == SHUT_DOWN:
            return  # stopped on purpose; an open breach stays open until heartbeats return
        if state == RUNNING:
            yield Recovery(subject)
            return
        if state != STOPPED:
            return  # outside market hours, or too soon after the open: an open breach stays open
        silent = format_duration(now - bot.last_heartbeat_at)
        yield Breach(
            subject=subject,
            notice=Notice(
                title=f"{bot.name} has stopped reporting",
                message=f"No heartbeat for {silent} during market hours.",
                fields=[
                    ("Bot", bot.name),
                    ("Last heartbeat", format_market_time(bot.last_heartbeat_at)),
                    ("Limit", format_duration(rule.threshold * 60)),
                ],
            ),
        )

    def recovered(self, rule: Rule, bot: Bot, since: dt.datetime, now: dt.datetime) -> Notice:
        return Notice(
            source="bot_recovered",
            level=Level.INFO,
            title=f"{bot.name} is reporting again",
            message="Heartbeats are back after the bot was reported stopped"
            f" {format_duration(now - since)} ago.",
            fields=[("Bot", bot.name), ("Last heartbeat", format_market_time(bot.last_heartbeat_at))],
        )


RUNNING, STALE, STOPPED, SHUT_DOWN = "running", "stale", "stopped", "shut down"


def bot_heartbeat_state(bot: Bot, now: dt.datetime, threshold: Decimal, today: dt.date) -> str:
    """``shut down`` for a bot that said it stopped (``Bot.stopped_at``), else what its last
    heartbeat says (``heartbeat_state``); the bot has reported at least once."""
    if bot.stopped_at is not None:
        return SHUT_DOWN
    assert bot.last_heartbeat_at is not None
    return heartbeat_state(bot.last_heartbeat_at, now, threshold, today, market.calendar_for(bot))


def heartbeat_state(
    last: dt.datetime,
    now: dt.datetime,
    threshold: Decimal,
    today: dt.date,
    calendar: market.Calendar | None = None,
) -> str:
    """What a bot's last heartbeat says at ``now``, for the rule and the cockpit alike.

    ``running``: silent no longer than ``threshold`` minutes (exactly the grace is still running).
    ``stopped``: silent longer than that within the market hours of ``today``, counted from the
    open when the silence began before it, so the bell itself is not a breach. ``stale``: silent
    past the grace, but outside market hours or too soon after the open to be stopped.

    ``calendar`` (default: the site's) says the market hours and ``today`` is its day. A 24/7
    market is always open: no midnight restarts the count. A 24/5 market opens on Monday's.
    """
    if not past_grace(minutes_between(last, now), threshold):
        return RUNNING
    calendar = calendar or market.site_calendar()
    if calendar.code == market.ALL_WEEK:
        silent_since = last
    elif calendar.code == market.WEEKDAYS:
        if not calendar.is_open(now):
            return STALE
        silent_since = max(last, calendar.start_of_day(today - dt.timedelta(days=today.weekday())))
    else:
        hours = calendar.market_hours(today)
        if hours is None or not hours[0] <= now <= hours[1]:
            return STALE
        silent_since = max(last, hours[0])
    return STOPPED if past_grace(minutes_between(silent_since, now), threshold) else STALE


def past_grace(minutes: Decimal, threshold: Decimal) -> bool:
    """Silent longer than the grace: exactly the grace is not yet a breach."""
    return minutes > threshold


def minutes_between(start: dt.datetime, end: dt.datetime) -> Decimal:
    return Decimal(str((end - start).total_seconds())) / 60
