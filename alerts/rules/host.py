"""The host a bot runs on: its disk and its memory, as the bot's heartbeats report them.

Judged per bot on its newest snapshot with the figure judged (disk or memory),
after heartbeats that carried the bot's state and on the schedule. Figures older than
``FRESH`` are not judged either way: a silent bot is the bot-stopped rule's news, and an
old breach neither repeats nor ends while nothing new is known.

``host_disk``: critical when the free space of the disk of the bot's working folder is
below the threshold, a percent of the disk (default 10); and, as a subject of its own so
both can be open at once, a warning when at the rate the free space fell over the last day
of snapshots the disk fills within ``HORIZON`` (24 hours). ``host_memory``: a warning when
the machine's available memory is below the threshold percent of its memory.

Boundaries: exactly the threshold is not below it (10.00% free under a 10% rule is no
breach); filling in exactly 24 hours is within 24 hours.

No flapping: a breach ends only when the figure is clearly back, at or above
``recovery_level`` (the threshold plus 2 points, 12% for 10%, or halfway to 100% for a
threshold above 96%), and the disk's forecast when it fills no sooner than twice the
horizon (48 hours) or stops falling. Between the threshold and that level an open breach
stays open without repeating, so a figure hovering at the threshold alerts once, and then
at most once per cooldown while it is below. Ending a breach says nothing; the next
breach alerts again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import ClassVar

from alerts.models import Level
from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, NewState, Notice, Recovery, Rule
from trades.formats import format_duration, format_market_time, format_rate, format_size
from trades.models import Bot, BotSnapshot

FRESH = dt.timedelta(minutes=30)
HORIZON = dt.timedelta(hours=24)
# The least history the disk's rate is read from: two snapshots seconds apart say nothing.
MIN_RATE_SPAN = dt.timedelta(hours=1)
RECOVERY_POINTS = Decimal(2)
HUNDRED = Decimal(100)
MICROSECOND = dt.timedelta(microseconds=1)


def host_snapshot(bot: Bot, figure: str, now: dt.datetime, memo: Memo) -> BotSnapshot | None:
    """The bot's newest snapshot that reported ``figure`` (a column), taken within ``FRESH`` of now;
    one query per bot and figure in a pass, reading no further back than that."""
    key = ("host_snapshot", bot.pk, figure, now)
    if key not in memo:
        memo[key] = (
            BotSnapshot.objects.filter(bot=bot, taken_at__gte=now - FRESH, **{f"{figure}__isnull": False})
            .order_by("-taken_at", "-id")
            .first()
        )
    return memo[key]


def percent_of(part: int, whole: int) -> Decimal:
    return Decimal(part) * HUNDRED / Decimal(whole)


def below(part: int, whole: int, percent: Decimal) -> bool:
    """``part`` is less than ``percent`` of ``whole``, exactly (no rounding: 10.00% is not below 10)."""
    return Decimal(part) * HUNDRED < percent * Decimal(whole)


def recovery_level(threshold: Decimal) -> Decimal:
    """The percent at or above which a breach of ``threshold`` is over."""
    return threshold + min(RECOVERY_POINTS, (HUNDRED - threshold) / 2)


class HostRule(Judge):
    """A member judges one figure of the host against a percent."""

    default_cooldown_minutes = 60
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"state", "schedule"})

    def threshold_problem(self, threshold: Decimal) -> str:
        if not 0 < threshold < 100:
            return f"Must be a percent above 0 and below 100 ({self.threshold_means}), got {threshold}."
        return ""

    def on_state(self, rule: Rule, state: NewState, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        return self.judge_host(rule, state.bot, now, memo)

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        return self.judge_host(rule, bot, now, memo)

    def judge_host(self, rule: Rule, bot: Bot, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        raise NotImplementedError

    def judge_percent(
        self, subject: str, part: int | None, whole: int | None, threshold: Decimal, notice: Notice
    ) -> Iterator[Finding]:
        if part is None or not whole:
            return
        if below(part, whole, threshold):
            yield Breach(subject=subject, notice=notice)
        elif not below(part, whole, recovery_level(threshold)):
            yield Recovery(subject)


class HostDisk(HostRule):
    summary = "disk free below the threshold percent, or filling within 24 hours"
    threshold_means = "percent of the disk free, e.g. 10"

    def judge_host(self, rule: Rule, bot: Bot, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        snapshot = host_snapshot(bot, "disk_free_bytes", now, memo)
        if snapshot is None or rule.threshold is None:
            return
        free, total = snapshot.disk_free_bytes, snapshot.disk_total_bytes
        if free is None or not total:
            return
        percent = format_rate(percent_of(free, total))
        notice = Notice(
            title=f"{bot.name}'s host: disk {percent} free ({format_size(free)} of {format_size(total)})",
            message="Free space on the disk of the bot's working folder is below"
            f" {format_rate(rule.threshold)} of the disk. A full disk stops the bot without a word.",
            fields=[
                ("Bot", bot.name),
                ("Disk free", f"{format_size(free)} ({percent})"),
                ("Disk size", format_size(total)),
                ("Limit", format_rate(rule.threshold)),
                ("As of", format_market_time(snapshot.taken_at)),
            ],
        )
        yield from self.judge_percent(f"bot-{bot.pk}:disk", free, total, rule.threshold, notice)
        yield from self.judge_filling(bot, snapshot)

    def judge_filling(self, bot: Bot, latest: BotSnapshot) -> Iterator[Finding]:
        """The warning that the disk fills within ``HORIZON`` at the rate it fell over the last day."""
        subject = f"bot-{bot.pk}:disk-filling"
        first = (
            BotSnapshot.objects.filter(
                bot=bot,
                taken_at__gte=latest.taken_at - HORIZON,
                disk_free_bytes__isnull=False,
                disk_total_bytes=latest.disk_total_bytes,
            )
            .order_by("taken_at", "id")
            .only("taken_at", "disk_free_bytes")
            .first()
        )
        assert latest.disk_free_bytes is not None and latest.disk_total_bytes is not None
        if first is None or first.disk_free_bytes is None:
            return
        span = latest.taken_at - first.taken_at
        if span < MIN_RATE_SPAN:
            return  # too little history to tell a rate: neither a breach nor its end
        fell = first.disk_free_bytes - latest.disk_free_bytes
        free = latest.disk_free_bytes
        # Full within the horizon: free / (fell / span) <= horizon, in whole microseconds (exact).
        span_us, horizon_us = span // MICROSECOND, HORIZON // MICROSECOND
        if fell <= 0 or span_us * free > horizon_us * fell * 2:
            yield Recovery(subject)  # not falling, or full no sooner than twice the horizon
            return
        if span_us * free > horizon_us * fell:
            return  # between: an open warning stays open
        fills_in = dt.timedelta(microseconds=span_us * free // fell)
        yield Breach(
            subject=subject,
            notice=Notice(
                source="host_disk_filling",
                level=Level.WARNING,
                title=f"{bot.name}'s host: disk fills in about {format_duration(fills_in)}",
                message=f"Free space fell by {format_size(fell)} in the last {format_duration(span)};"
                f" at that rate the {format_size(free)} left are gone within {format_duration(HORIZON)}.",
                fields=[
                    ("Bot", bot.name),
                    ("Disk free", f"{format_size(free)} of {format_size(latest.disk_total_bytes)}"),
                    ("Fell by", f"{format_size(fell)} in {format_duration(span)}"),
                    ("Full in", format_duration(fills_in)),
                    ("As of", format_market_time(latest.taken_at)),
                ],
            ),
        )


class HostMemory(HostRule):
    summary = "memory available below the threshold percent"
    threshold_means = "percent of the memory available, e.g. 10"

    def judge_host(self, rule: Rule, bot: Bot, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        snapshot = host_snapshot(bot, "memory_available_bytes", now, memo)
        if snapshot is None or rule.threshold is None:
            return
        available, total = snapshot.memory_available_bytes, snapshot.memory_total_bytes
        if available is None or not total:
            return
        percent = format_rate(percent_of(available, total))
        notice = Notice(
            title=f"{bot.name}'s host: memory {percent} available"
            f" ({format_size(available)} of {format_size(total)})",
            message=f"Memory available on the bot's machine is below {format_rate(rule.threshold)} of it."
            " A machine out of memory kills the bot without a word.",
            fields=[
                ("Bot", bot.name),
                ("Memory available", f"{format_size(available)} ({percent})"),
                ("Memory", format_size(total)),
                ("Bot's memory (RSS)", format_size(snapshot.rss_bytes)),
                ("Limit", format_rate(rule.threshold)),
                ("As of", format_market_time(snapshot.taken_at)),
            ],
        )
        yield from self.judge_percent(f"bot-{bot.pk}:memory", available, total, rule.threshold, notice)
