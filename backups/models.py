"""A record of every backup upload."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

# A backup running longer than this was abandoned (its worker was killed);
# its claim is released so the next cycle can run. A million trades take well
# under a minute to snapshot, check and copy to a local folder.
ABANDONED_AFTER = dt.timedelta(hours=1)


class Kind(models.TextChoices):
    LATEST = "latest", "trades_latest.db"
    DAILY = "daily", "daily (timestamped)"


class State(models.TextChoices):
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class BackupRecordQuerySet(models.QuerySet["BackupRecord"]):
    def succeeded(self) -> BackupRecordQuerySet:
        return self.filter(state=State.SUCCEEDED)

    def of_kind(self, kind: str) -> BackupRecordQuerySet:
        return self.filter(kind=kind)

    def newest(self) -> BackupRecord | None:
        return self.order_by("-created_at", "-id").first()

    def last_good(self, kind: str | None = None) -> BackupRecord | None:
        """The newest succeeded upload (of ``kind``, when given)."""
        records = self.succeeded()
        if kind is not None:
            records = records.of_kind(kind)
        return records.order_by("-finished_at", "-id").first()

    def failure_streak(self, kind: str) -> int:
        """How many uploads of ``kind`` have failed since the last good one."""
        failed = self.of_kind(kind).filter(state=State.FAILED)
        last = self.last_good(kind)
        if last is not None:
            failed = failed.filter(id__gt=last.id)
        return failed.count()

    def release_abandoned(self, now: dt.datetime) -> int:
        """Mark running uploads older than ``ABANDONED_AFTER`` as failed."""
        return self.filter(state=State.RUNNING, created_at__lt=now - ABANDONED_AFTER).update(
            state=State.FAILED, error="abandoned: the worker stopped before finishing", finished_at=now
        )

    def claim(self, kind: str, object_name: str, provider: str, now: dt.datetime) -> BackupRecord | None:
        """Start a backup of ``kind``: its running record, or None when one is running already.

        The partial unique constraint ``one_running_backup_per_kind`` lets the
        database itself decide between two workers: the second insert fails.
        """
        self.release_abandoned(now)
        try:
            with transaction.atomic():
                return self.create(
                    kind=kind, object_name=object_name, provider=provider, state=State.RUNNING, created_at=now
                )
        except IntegrityError:
            return None


class BackupRecord(models.Model):
    """One attempt to upload a snapshot of the database to storage."""

    object_name = models.CharField(max_length=255)
    provider = models.CharField(max_length=20)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes uploaded.")
    sha256 = models.CharField(max_length=64, blank=True)
    trade_count = models.BigIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds, snapshot and upload.")
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the trading data; an unchanged one skips the sync."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BackupRecordQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("kind",), condition=Q(state="running"), name="one_running_backup_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.object_name} ({self.state})"

    def succeed(
        self,
        *,
        size: int,
        sha256: str,
        trade_count: int,
        fingerprint: str | None,
        duration: float,
        now: dt.datetime | None = None,
    ) -> None:
        self.state = State.SUCCEEDED
        self.size, self.sha256, self.trade_count = size, sha256, trade_count
        self.fingerprint, self.duration = fingerprint or "", duration
        self.finished_at = now or timezone.now()
        self.save()

    def fail(self, error: str, *, duration: float | None = None, now: dt.datetime | None = None) -> None:
        self.state = State.FAILED
        self.error = error
        self.duration = duration
        self.finished_at = now or timezone.now()
        self.save()
