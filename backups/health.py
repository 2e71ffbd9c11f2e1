"""The backup's part of ``GET /api/v1/health/``: how old the last good backup is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from backups.models import BackupRecord, Kind
from trades.formats import format_duration

CHECKS = {"backup": {"check": "backups.health.last_backup", "vital": False}}


def last_backup(now: dt.datetime | None = None) -> dict[str, Any]:
    """Degraded when, with the sync on, the last good backup is older than twice the interval.

    With no good backup at all, the site gets the same grace from the moment
    the backups app was installed (its first migration): a fresh site is not
    degraded in its first minutes, but one that never managed a backup is.
    With the sync off, only the daily backup runs, and its age is reported
    without judging it.
    """
    now = now or timezone.now()
    limit = 2 * settings.DB_SYNC_INTERVAL
    last = BackupRecord.objects.last_good()
    state: dict[str, Any] = {
        "ok": True,
        "sync_enabled": settings.DB_SYNC_ENABLED,
        "failures_in_a_row": BackupRecord.objects.failure_streak(Kind.LATEST),
    }
    if last is None:
        state.update(last_backup=None, age_seconds=None)
        installed = _installed_at()
        waited = (now - installed).total_seconds() if installed else 0
        if settings.DB_SYNC_ENABLED and waited > limit:
            state.update(ok=False, reason=f"no backup yet, {format_duration(int(waited))} after installation")
        return state
    age = (now - last.finished_at).total_seconds()
    state.update(last_backup=last.finished_at, object_name=last.object_name, age_seconds=round(age, 1))
    if settings.DB_SYNC_ENABLED and age > limit:
        words = f"last good backup {format_duration(int(age))} ago (limit {format_duration(limit)})"
        state.update(ok=False, reason=words)
    return state


def _installed_at() -> dt.datetime | None:
    applied = (
        MigrationRecorder.Migration.objects.filter(app="backups")
        .order_by("applied")
        .values_list("applied", flat=True)
        .first()
    )
    return applied
