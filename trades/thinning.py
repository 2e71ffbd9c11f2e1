"""How long the bot's state snapshots are kept: all of them for two days, then one per quarter
hour for 90 days, then none.

A heartbeat a minute is 1,440 snapshots a day per bot; a week of them is what the cockpit and
the rules need at most, and the equity curve and the host's history read fine at a quarter of
an hour. Of each quarter hour (per bot, on the UTC clock) the last snapshot is kept, and the
last one that reported positions when that is another: so the last snapshot of every trading
day, and the last before it began (what ``trades.positions.day_pnl`` reads), are never thinned
away. The market's midnight falls on a quarter hour in every time zone markets use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from trades.ingest import chunks
from trades.models import BotSnapshot

KEEP_ALL = dt.timedelta(days=2)
KEEP_THINNED = dt.timedelta(days=90)
BUCKET_SECONDS = 15 * 60
# Power-of-two chunks (trades/ingest.py ``chunks``): a bounded number of statement shapes.
DELETE_CHUNK = 512


@dataclass(frozen=True)
class Thinned:
    thinned: int  # snapshots older than two days dropped for another of their quarter hour
    expired: int  # snapshots older than 90 days dropped

    def __str__(self) -> str:
        return f"{self.thinned} snapshots thinned, {self.expired} past 90 days deleted"


def thin_snapshots(now: dt.datetime | None = None) -> Thinned:
    """Apply the retention above; safe to run twice at once (each deletes what is left)."""
    now = now or timezone.now()
    expired, _ = BotSnapshot.objects.filter(taken_at__lt=now - KEEP_THINNED).delete()
    window = BotSnapshot.objects.filter(taken_at__lt=now - KEEP_ALL).annotate(
        reported=ExpressionWrapper(Q(positions__isnull=False), output_field=BooleanField())
    )
    drop: list[int] = []
    # Per bot, oldest first: each snapshot is kept when it is the last of its quarter hour,
    # or the last of it that reported positions.
    rows = window.order_by("bot_id", "taken_at", "id").values_list("id", "bot_id", "taken_at", "reported")
    held: dict[tuple[int, int, bool], int] = {}
    for pk, bot_id, taken_at, reported in rows.iterator(chunk_size=2000):
        bucket = int(taken_at.timestamp()) // BUCKET_SECONDS
        for key in {(bot_id, bucket, False), (bot_id, bucket, bool(reported))}:
            previous = held.get(key)
            held[key] = pk
            if previous is not None:
                drop.append(previous)
    keep = set(held.values())
    to_delete = sorted(set(drop) - keep)
    thinned = 0
    for chunk in chunks(to_delete, DELETE_CHUNK):
        count, _ = BotSnapshot.objects.filter(pk__in=chunk).delete()
        thinned += count
    return Thinned(thinned=thinned, expired=expired)
