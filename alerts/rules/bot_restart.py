"""Bot restart: the bot's process changed (a new ``pid`` or ``started_at`` in its host figures)
without a ``shutdown`` event in between: it died (killed for memory, a crash, a reboot) and
came back, and said nothing. A restart after a shutdown is a planned one and says nothing.

The moment of a restart is when the site first heard of the new process (its first snapshot
with host figures), compared with the snapshot before it that had host figures. A shutdown
counts when the bot says it happened after that snapshot (less ``Bot.HEARTBEAT_IN_FLIGHT``,
for a heartbeat sent just before the shutdown that arrived after it) and no later than the
new process's first snapshot. (A shutdown that a restarted bot replays from its spool only
after its new process's first heartbeat was judged comes too late to keep the warning back.)

No flapping: the subject is the bot, breached while its last restart is less than the
rule's cooldown old (an hour when the cooldown is 0). One restart alerts once; a bot that
keeps restarting (a crash loop) alerts at the first restart and then at most once per
cooldown, each time with the newest restart; once it has run a whole cooldown without
one, the breach ends (silently) and the next restart alerts again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import ClassVar

from django.db.models import Q

from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, NewState, Notice, Recovery, Rule
from trades.formats import format_market_time
from trades.models import Bot, BotEvent, BotSnapshot, EventKind

WINDOW_WITHOUT_COOLDOWN = dt.timedelta(hours=1)


def process_snapshots(bot: Bot) -> Q:
    """Snapshots that say which process the bot is: a pid or a start time."""
    return Q(bot=bot) & (Q(host_pid__isnull=False) | Q(host_started_at__isnull=False))


def same_process(snapshot: BotSnapshot) -> Q:
    return Q(host_pid=snapshot.host_pid, host_started_at=snapshot.host_started_at)


def identity(snapshot: BotSnapshot) -> tuple[int | None, dt.datetime | None]:
    return snapshot.host_pid, snapshot.host_started_at


def last_restart(bot: Bot, since: dt.datetime) -> tuple[BotSnapshot, BotSnapshot] | None:
    """The bot's newest process change first heard of at or after ``since``, as (the last snapshot
    of the old process, the first of the new); None when there is none (or it followed a shutdown).

    Three indexed reads, whatever the heartbeat rate: the newest process snapshot, the first of
    the same process since ``since``, and the process snapshot just before that one."""
    snapshots = BotSnapshot.objects.filter(process_snapshots(bot))
    latest = snapshots.filter(taken_at__gte=since).order_by("-taken_at", "-id").first()
    if latest is None:
        return None
    first = snapshots.filter(same_process(latest), taken_at__gte=since).order_by("taken_at", "id").first()
    assert first is not None  # ``latest`` is one
    earlier = Q(taken_at__lt=first.taken_at) | Q(taken_at=first.taken_at, id__lt=first.pk)
    before = snapshots.filter(earlier).order_by("-taken_at", "-id").first()
    if before is None or identity(before) == identity(first):
        return None  # the first process heard of, or it ran before ``since``
    shutdown = BotEvent.objects.filter(
        bot=bot,
        kind=EventKind.SHUTDOWN,
        occurred_at__gt=before.taken_at - Bot.HEARTBEAT_IN_FLIGHT,
        occurred_at__lte=first.taken_at,
    )
    if shutdown.exists():
        return None
    return before, first


def more_than_one_process(bot: Bot, since: dt.datetime) -> bool:
    """Whether the bot's snapshots since ``since`` name more than one process."""
    snapshots = BotSnapshot.objects.filter(process_snapshots(bot), taken_at__gte=since)
    latest = snapshots.order_by("-taken_at", "-id").first()
    return latest is not None and snapshots.exclude(same_process(latest)).exists()


def window(rule: Rule) -> dt.timedelta:
    """How long after a restart the bot's breach lasts: the cooldown (an hour when it is 0)."""
    return dt.timedelta(minutes=rule.cooldown_minutes) if rule.cooldown_minutes else WINDOW_WITHOUT_COOLDOWN


class BotRestart(Judge):
    summary = "a new process without a shutdown event first"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"state", "schedule"})

    def on_state(self, rule: Rule, state: NewState, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        return self.judge_bot(rule, state.bot, now, memo)

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        return self.judge_bot(rule, bot, now, memo)

    def judge_bot(self, rule: Rule, bot: Bot, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        subject = f"bot-{bot.pk}:restart"
        since = now - window(rule)
        # Strictly within the window: a restart exactly a cooldown old is over, so it never repeats.
        key = ("last_restart", bot.pk, since)
        if key not in memo:
            memo[key] = last_restart(bot, since + dt.timedelta(microseconds=1))
        found: tuple[BotSnapshot, BotSnapshot] | None = memo[key]
        if found is None:
            # Over only when the window heard of one process alone: a late heartbeat of the old
            # process (or two processes sharing a key) is no recovery, or each change would
            # start a new breach and alert again within the cooldown.
            if not more_than_one_process(bot, since + dt.timedelta(microseconds=1)):
                yield Recovery(subject)
            return
        old, new = found
        yield Breach(
            subject=subject,
            notice=Notice(
                title=f"{bot.name} restarted",
                message=f"A new process (pid {new.host_pid or '-'}, started"
                f" {format_market_time(new.host_started_at)}) reported at"
                f" {format_market_time(new.taken_at)}, with no shutdown event after the last"
                f" heartbeat of the one before (pid {old.host_pid or '-'}, last heard of at"
                f" {format_market_time(old.taken_at)}). It died and came back without a word:"
                " killed for memory, a crash or the machine restarting.",
                fields=[
                    ("Bot", bot.name),
                    ("New process", f"pid {new.host_pid or '-'}"),
                    ("Started", format_market_time(new.host_started_at)),
                    ("Previous process", f"pid {old.host_pid or '-'}"),
                    ("Last heard of", format_market_time(old.taken_at)),
                ],
            ),
        )
