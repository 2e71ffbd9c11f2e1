"""Which timestamped backups have outlived ``BACKUP_RETENTION_DAYS``."""

from __future__ import annotations

import datetime as dt
import logging

from backups import objects
from backups.providers import StorageProvider, StoredObject

logger = logging.getLogger(__name__)


def expired(stored: list[StoredObject], now: dt.datetime, days: int) -> list[StoredObject]:
    """Timestamped backups older than ``days`` at ``now``, oldest first.

    The age comes from the time in the name, not the object's modified time
    (a copy between buckets resets that). ``trades_latest.db`` and anything
    not named like a timestamped backup are never returned, and neither is the
    newest timestamped backup: with the clock wrong or backups failing for a
    month, the last good daily copy must survive.
    """
    dated = [(stamp, obj) for obj in stored if (stamp := objects.daily_time(obj.name)) is not None]
    if not dated:
        return []
    dated.sort(key=lambda pair: pair[0])
    newest = dated[-1][1]
    cutoff = now - dt.timedelta(days=days)
    return [obj for stamp, obj in dated if stamp < cutoff and obj is not newest]


def prune(provider: StorageProvider, now: dt.datetime, days: int, *, apply: bool) -> list[StoredObject]:
    """Delete (when ``apply``) the expired backups and their checksum sidecars; return them."""
    stored = provider.list(objects.DAILY_PREFIX)
    doomed = expired(stored, now, days)
    if apply:
        names = {obj.name for obj in stored}
        for obj in doomed:
            provider.delete(obj.name)
            if objects.checksum_name(obj.name) in names:
                provider.delete(objects.checksum_name(obj.name))
            logger.info("pruned backup %s (older than %d days)", obj.name, days)
    return doomed
