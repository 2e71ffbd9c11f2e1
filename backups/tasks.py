"""Backup work run by the task cluster (declared in ``backups/schedules.py``).

Each task returns a short summary for django-q2's result and never raises:
failures are recorded on ``BackupRecord`` and retried on the next cycle.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from backups.models import BackupRecord, Kind, State
from backups.providers import StorageError, get_provider
from backups.retention import prune
from backups.upload import back_up


def sync_latest() -> str:
    """Upload ``trades_latest.db`` when the data changed; retry a failed daily backup."""
    if not settings.DB_SYNC_ENABLED:
        return "sync is off (DB_SYNC_ENABLED)"
    kinds = [Kind.LATEST]
    # The daily backup runs once a day; when it failed, this cycle is its retry.
    last_daily = BackupRecord.objects.of_kind(Kind.DAILY).newest()
    if last_daily is not None and last_daily.state == State.FAILED:
        kinds.append(Kind.DAILY)
    return "; ".join(str(outcome) for outcome in back_up(kinds))


def daily_backup() -> str:
    """The timestamped backup of the trading day (after the close, trading days only)."""
    return "; ".join(str(outcome) for outcome in back_up([Kind.DAILY]))


def prune_old_backups() -> str:
    """Delete timestamped backups older than ``BACKUP_RETENTION_DAYS`` (never the newest)."""
    days = settings.BACKUP_RETENTION_DAYS
    try:
        pruned = prune(get_provider(), timezone.now(), days, apply=True)
    except StorageError as exc:
        return f"prune failed: {exc}"
    return f"pruned {len(pruned)} backup(s) older than {days} days"
