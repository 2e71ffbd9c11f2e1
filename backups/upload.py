"""Back up the live database: claim, snapshot, upload, record, and alert on a failure streak."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from backups import objects
from backups.models import ABANDONED_AFTER, BackupRecord, Kind, State
from backups.postgres import take_dump
from backups.progress import ProgressFactory
from backups.providers import StorageError, StorageProvider, get_provider
from backups.snapshot import BackupError, Snapshot, take_snapshot
from trades.signals import site_alert

logger = logging.getLogger(__name__)

# Uploads of one kind that fail in a row before a warning alert is raised; a
# single failure is usually a blip that the next cycle's retry gets past.
ALERT_AFTER_FAILURES = 3
WORKDIR_PREFIX = ".snapshot-"


@dataclass(frozen=True)
class Outcome:
    """What one backup of one kind came to."""

    kind: str
    state: str  # "succeeded", "failed", "skipped" (nothing changed) or "busy" (another worker runs it)
    object_name: str = ""
    detail: str = ""
    record: BackupRecord | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def live_database_path() -> Path:
    """The SQLite file the site's default connection uses."""
    return Path(connections["default"].settings_dict["NAME"])


def on_postgres() -> bool:
    """Whether the site's database is PostgreSQL (backups are ``pg_dump`` files, ``backups.postgres``)."""
    return connections["default"].vendor == "postgresql"


def snapshot_folder() -> Path:
    """Where a snapshot is made: beside the SQLite file, or in the data folder (``DATABASE_PATH``'s)
    on PostgreSQL, whose dump needs a fraction of the database's size."""
    if on_postgres():
        folder = Path(settings.DATABASE_PATH).parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return live_database_path().parent


def back_up(
    kinds: Sequence[str],
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    provider: StorageProvider | None = None,
    progress: ProgressFactory | None = None,
) -> list[Outcome]:
    """Upload one snapshot as each of ``kinds`` (``Kind.LATEST``, ``Kind.DAILY``).

    ``trades_latest.db`` is skipped when the trading data has not changed since
    its last good upload, unless ``force``. Failures are recorded, never raised:
    the next cycle retries, and the third failure in a row of a kind raises a
    ``site_alert``.
    """
    now = now or timezone.now()
    dump = on_postgres()
    # A pg_dump -Fc file is compressed already: BACKUP_COMPRESS applies to SQLite files only.
    compressed = settings.BACKUP_COMPRESS and not dump
    names = {
        Kind.LATEST: objects.latest_name(compressed=compressed, dump=dump),
        Kind.DAILY: objects.daily_name(now, compressed=compressed, dump=dump),
    }
    provider_name = provider.name if provider is not None else settings.CLOUD_STORAGE_PROVIDER
    outcomes: list[Outcome] = []
    claimed: list[BackupRecord] = []
    for kind in kinds:
        record = BackupRecord.objects.claim(kind, names[kind], provider_name, now)
        if record is None:
            outcomes.append(Outcome(kind, "busy", names[kind], "another worker is running this backup"))
        else:
            claimed.append(record)
    if not claimed:
        return outcomes

    started = time.monotonic()
    workdir: Path | None = None
    try:
        provider = provider or get_provider()
        remove_abandoned_workdirs(snapshot_folder())
        # Next to the database: the snapshot needs about its size in free space.
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=snapshot_folder()))
        unless = _unchanged_since(claimed, provider.name, force=force)
        if dump:
            snapshot = take_dump(connections["default"].settings_dict, workdir, unless_fingerprint=unless)
        else:
            snapshot = take_snapshot(
                live_database_path(), workdir, compress=compressed, unless_fingerprint=unless
            )
        for record in claimed:
            if snapshot is None:
                record.delete()  # the claim only; a skipped sync leaves no record
                outcomes.append(Outcome(record.kind, "skipped", record.object_name, "nothing changed"))
            else:
                outcomes.append(_upload(record, snapshot, provider, progress=progress))
    except (BackupError, StorageError, OSError) as exc:
        message = str(exc) if not isinstance(exc, OSError) else f"cannot make the snapshot: {exc}"
        outcomes += _fail_unfinished(claimed, message, time.monotonic() - started)
    except Exception as exc:
        # A bug must not leave the claim held (no backup for an hour) or kill the task.
        logger.exception("backup failed unexpectedly")
        outcomes += _fail_unfinished(claimed, f"unexpected {type(exc).__name__}: {exc}", 0.0)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return outcomes


def remove_abandoned_workdirs(folder: Path) -> None:
    """Delete snapshot folders a killed worker left behind: each holds a whole database."""
    cutoff = time.time() - ABANDONED_AFTER.total_seconds()
    for path in folder.glob(f"{WORKDIR_PREFIX}*"):
        try:
            if path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                logger.info("removed %s, left by a backup that did not finish", path)
        except OSError:
            continue


def _fail_unfinished(claimed: list[BackupRecord], error: str, duration: float) -> list[Outcome]:
    return [_failed(record, error, duration) for record in claimed if record.state == State.RUNNING]


def _unchanged_since(claimed: list[BackupRecord], provider: str, *, force: bool) -> str | None:
    """The fingerprint that makes this run unnecessary: only a sync of ``trades_latest.db``
    is skipped, when its last good upload (to the same provider) saw the same data."""
    if force or [record.kind for record in claimed] != [Kind.LATEST]:
        return None
    last = BackupRecord.objects.last_good(Kind.LATEST)
    if last is None or last.provider != provider:
        return None
    return last.fingerprint or None


def _upload(
    record: BackupRecord,
    snapshot: Snapshot,
    provider: StorageProvider,
    *,
    progress: ProgressFactory | None,
) -> Outcome:
    started = time.monotonic()
    try:
        upload_with_checksum(
            provider,
            snapshot.path,
            record.object_name,
            snapshot.sha256,
            progress(record.object_name, snapshot.size) if progress else None,
        )
        if record.kind == Kind.LATEST:
            # Only one form of trades_latest.db, so "latest" never means an old one.
            for other in objects.LATEST_NAMES:
                if other != record.object_name:
                    provider.delete(other)
                    provider.delete(objects.checksum_name(other))
    except StorageError as exc:
        return _failed(record, str(exc), snapshot.duration + time.monotonic() - started)
    record.succeed(
        size=snapshot.size,
        sha256=snapshot.sha256,
        trade_count=snapshot.trade_count,
        fingerprint=snapshot.fingerprint,
        duration=snapshot.duration + time.monotonic() - started,
    )
    logger.info(
        "backup %s uploaded to %s: %d bytes, %d trades",
        record.object_name,
        provider.describe(),
        snapshot.size,
        snapshot.trade_count,
    )
    return Outcome(record.kind, "succeeded", record.object_name, record=record)


def upload_with_checksum(
    provider: StorageProvider,
    path: Path,
    name: str,
    sha256: str,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Upload ``path`` as ``name`` and its checksum as ``name.sha256``.

    The old sidecar goes first: should the upload then fail half-way, the
    object has no checksum (a restore checks integrity only) rather than a
    wrong one that would reject a sound backup.
    """
    sidecar = objects.checksum_name(name)
    provider.delete(sidecar)
    provider.upload(path, name, progress)
    checksum = path.with_name(path.name + objects.CHECKSUM_SUFFIX)
    checksum.write_text(objects.checksum_line(sha256, name))
    provider.upload(checksum, sidecar)


def _failed(record: BackupRecord, error: str, duration: float) -> Outcome:
    record.fail(error, duration=duration)
    logger.warning("backup %s failed: %s", record.object_name, error)
    streak = BackupRecord.objects.failure_streak(record.kind)
    if streak == ALERT_AFTER_FAILURES:  # once per streak: the fourth failure does not repeat it
        # Robust: a listener that breaks must not break the backup task.
        answers = site_alert.send_robust(
            sender=BackupRecord,
            kind="backup_failed",
            level="warning",
            title=f"Backup of {record.object_name} failed {streak} times in a row",
            message=f"The last attempt said: {error}",
            subject=f"backup:{record.kind}",
        )
        for receiver, answer in answers:
            if isinstance(answer, Exception):
                logger.error("site_alert receiver %r failed: %r", receiver, answer)
    return Outcome(record.kind, "failed", record.object_name, error, record)
