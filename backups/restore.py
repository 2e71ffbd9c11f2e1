"""Fetch a backup, prove it sound, and put it in place of the live database."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import DatabaseError, connections
from django.utils import timezone

from backups import objects
from backups.models import BackupRecord
from backups.postgres import check_dump, restore_dump, take_dump
from backups.progress import ProgressFactory
from backups.providers import ObjectNotFound, StorageProvider
from backups.site_lock import held_for_restore, held_postgres_for_restore
from backups.snapshot import BackupError, check_database, copy_database, gunzip_file, is_gzip, sha256_file
from trades.formats import format_size
from trades.models import Trade

SAFETY_COPY_MARK = ".before-restore-"


@dataclass(frozen=True)
class VerifiedBackup:
    """A downloaded backup that passed every check."""

    name: str
    path: Path  # the plain SQLite file, in the work directory
    size: int  # of the object as stored
    sha256: str  # of the object as stored
    checked_against: tuple[str, ...]  # where the expected checksum came from; empty when none was known
    trade_count: int
    compressed: bool


@dataclass(frozen=True)
class Restored:
    """A backup put in place, and what became of the database it replaced."""

    backup: VerifiedBackup  # its ``path`` is the restored database
    safety_copy: Path | None  # the replaced database, kept beside it; None when there was none
    site_was_running: bool  # replaced under a running site (``while_running``)


def resolve(provider: StorageProvider, name: str) -> str:
    """The object ``name`` stands for: ``latest`` is the newest form of ``trades_latest.db``,
    and a timestamped backup may be named without its ``backups/`` folder."""
    if name == "latest":
        present = [obj for obj in provider.list("trades_latest.") if obj.name in objects.LATEST_NAMES]
        if not present:
            raise BackupError(
                f"there is no {objects.LATEST} or {objects.LATEST_DUMP} in {provider.describe()}; "
                "see list_backups"
            )
        return max(present, key=lambda obj: obj.modified).name
    if not provider.exists(name) and provider.exists(objects.DAILY_PREFIX + name):
        return objects.DAILY_PREFIX + name
    return name


def expected_checksums(provider: StorageProvider, name: str, workdir: Path) -> dict[str, str]:
    """Checksums the object must have, by source: its sidecar, and its backup record.

    On a fresh machine there are no records (no database), so the sidecar
    stored next to each backup carries the checksum. A record is used only
    when it describes the object as it is now: the newest attempt for that
    name succeeded. After a failed upload the object may be newer than the last
    good record says.
    """
    found: dict[str, str] = {}
    sidecar = workdir / "expected.sha256"
    try:
        provider.download(objects.checksum_name(name), sidecar)
        checksum = objects.parse_checksum(sidecar.read_text(errors="replace"))
        if checksum is None:
            raise BackupError(f"{objects.checksum_name(name)} holds no sha256 checksum")
        found[objects.checksum_name(name)] = checksum
    except ObjectNotFound:
        pass
    record = _newest_record(name, provider.name)
    if record is not None and record.state == "succeeded" and record.sha256:
        found[f"backup record #{record.pk}"] = record.sha256
    return found


def _newest_record(name: str, provider: str) -> BackupRecord | None:
    """The newest record of ``name``, or None when the site's database is missing or not migrated."""
    if connections["default"].vendor == "postgresql":
        try:
            return BackupRecord.objects.filter(object_name=name, provider=provider).newest()
        except DatabaseError:
            return None  # a server that is not there yet, or a database not migrated
    path = Path(connections["default"].settings_dict["NAME"])
    # Opening a missing SQLite file would create it: a fresh machine's data/
    # must stay empty until the restore puts the database there.
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        return BackupRecord.objects.filter(object_name=name, provider=provider).newest()
    except DatabaseError:
        return None


def fetch_verified(
    provider: StorageProvider, name: str, workdir: Path, progress: ProgressFactory | None = None
) -> VerifiedBackup:
    """Download ``name`` into ``workdir`` and check its checksum and ``PRAGMA integrity_check``
    (a SQLite file) or ``pg_restore`` (a PostgreSQL dump, ``backups.postgres.check_dump``).

    Raises ``BackupError`` (or ``StorageError``) when anything is wrong; nothing
    outside ``workdir`` is touched.
    """
    name = resolve(provider, name)
    if not objects.is_backup(name):
        raise BackupError(
            f"{name} is not a backup of this site "
            f"({objects.LATEST}, {objects.LATEST_DUMP} or backups/trades_*)"
        )
    expected = expected_checksums(provider, name, workdir)
    download = workdir / "download"
    size = next((obj.size for obj in provider.list(name) if obj.name == name), 0)
    provider.download(name, download, progress(name, size) if progress else None)
    size = download.stat().st_size
    actual = sha256_file(download)
    for source, checksum in expected.items():
        if checksum != actual:
            raise BackupError(
                f"{name} is damaged: its sha256 is {actual[:12]}…, {source} says {checksum[:12]}…"
            )
    plain, compressed = download, False
    if objects.is_dump(name):
        trade_count = check_dump(download)
    else:
        compressed = is_gzip(download)
        if compressed:
            plain = workdir / "restored.db"
            gunzip_file(download, plain)
            download.unlink()
        trade_count = check_database(plain)
    return VerifiedBackup(
        name=name,
        path=plain,
        size=size,
        sha256=actual,
        checked_against=tuple(expected),
        trade_count=trade_count,
        compressed=compressed,
    )


def restore(
    provider: StorageProvider,
    name: str,
    target: Path,
    *,
    overwrite: bool,
    while_running: bool = False,
    progress: ProgressFactory | None = None,
) -> Restored:
    """Replace the database at ``target`` with the verified backup ``name``.

    Nothing is replaced unless every check passed and the database there (if any)
    is kept as a safety copy beside it, and the new file appears under ``target``'s
    name in one rename, so ``target`` is always either the old database or the whole
    new one. The old ``-wal`` and ``-shm`` go first: SQLite would otherwise replay
    the old database's log into the new file. A site running on ``target`` makes it
    refuse before anything is downloaded, unless ``while_running``
    (``backups.site_lock``).
    """
    if target.is_dir():
        target = target / "trades.db"
    if objects.is_dump(resolve(provider, name)):
        return _save_dump(provider, name, target, overwrite=overwrite, progress=progress)
    replacing = target.exists() and target.stat().st_size > 0
    if replacing and not overwrite:
        raise BackupError(f"{target} exists; run again with --yes to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot write in {target.parent}: {exc.strerror or exc}") from None
    # Held until the new file is in place: a site starting meanwhile waits for it.
    with held_for_restore(target, while_running=while_running) as site_was_running:
        # In the target's directory, so the final rename stays on one filesystem.
        with _work_folder_in(target.parent) as workdir:
            verified = fetch_verified(provider, name, workdir, progress)
            connections.close_all()  # this process must not keep the old file open
            # Last, so that it holds every trade written up to the swap.
            safety_copy = keep_safety_copy(target, workdir) if replacing else None
            try:
                os.chmod(verified.path, 0o600)
                with open(verified.path, "rb+") as handle:
                    os.fsync(handle.fileno())
                for suffix in ("-wal", "-shm", "-journal"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
                os.replace(verified.path, target)
                _fsync_directory(target.parent)
            except OSError as exc:
                raise BackupError(
                    f"cannot put the backup in place at {target}: {exc.strerror or exc}"
                ) from None
    return Restored(
        backup=dataclasses.replace(verified, path=target),
        safety_copy=safety_copy,
        site_was_running=site_was_running,
    )


def keep_safety_copy(database: Path, workdir: Path) -> Path:
    """Copy ``database`` beside itself as ``trades.db.before-restore-YYYYMMDD_HHMMSS`` (market time).

    With SQLite's backup API, like every snapshot: the trades still in the ``-wal``
    are in the copy, which is one self-contained file (rollback journal mode) that
    can be put back by renaming it. Made in ``workdir`` and renamed, so a copy under
    that name is always whole. Raises ``BackupError`` when it cannot be made; the
    database is then left as it was. Copies are never deleted here: one may hold
    the only record of trades made after the newest backup.
    """
    size = sum(path.stat().st_size for path in (database, Path(f"{database}-wal")) if path.exists())
    free = shutil.disk_usage(database.parent).free
    if free < size:
        raise BackupError(
            f"cannot keep a safety copy of {database} before replacing it: it needs up to "
            f"{format_size(size)} and {database.parent} has {format_size(free)} free; "
            "nothing was changed (free some space and run again)"
        )
    staging = workdir / "before-restore.db"
    try:
        copy_database(database, staging)
        kept = _safety_copy_name(database)
        os.rename(staging, kept)
    except (BackupError, OSError) as exc:
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
        else:
            reason = str(exc).removeprefix(f"cannot copy the database {database}: ")
        raise BackupError(
            f"cannot keep a safety copy of {database} before replacing it ({reason}); nothing was changed "
            "(free some space, or move the database and its -wal aside yourself, and run again)"
        ) from None
    return kept


def _safety_copy_name(database: Path) -> Path:
    """A free name beside ``database`` for its safety copy: ``NAME.before-restore-YYYYMMDD_HHMMSS``
    in market time, then ``-2``, ``-3``... for restores within the same second."""
    stamp = f"{database.name}{SAFETY_COPY_MARK}{timezone.localtime():%Y%m%d_%H%M%S}"
    kept, n = database.with_name(stamp), 1
    while kept.exists():
        n += 1
        kept = database.with_name(f"{stamp}-{n}")
    return kept


def safety_copies(database: Path) -> list[Path]:
    """The safety copies earlier restores left beside ``database``, oldest first."""
    return sorted(database.parent.glob(f"{database.name}{SAFETY_COPY_MARK}*"))


def verify(provider: StorageProvider, name: str, progress: ProgressFactory | None = None) -> VerifiedBackup:
    """Download and check ``name`` in a temporary directory, changing nothing."""
    with tempfile.TemporaryDirectory(prefix="verify-backup-") as tmp:
        return fetch_verified(provider, name, Path(tmp), progress)


def _fsync_directory(path: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _work_folder_in(folder: Path) -> Iterator[Path]:
    """A new private folder in ``folder`` (made if missing), on the filesystem of what it replaces;
    removed with whatever is left in it when the block ends."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=".restore-", dir=folder))
    except OSError as exc:
        raise BackupError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _save_dump(
    provider: StorageProvider, name: str, target: Path, *, overwrite: bool, progress: ProgressFactory | None
) -> Restored:
    """A PostgreSQL dump restored to a file (``--output``): verified, then renamed into place."""
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; run again with --yes to replace it")
    with _work_folder_in(target.parent) as workdir:
        try:
            verified = fetch_verified(provider, name, workdir, progress)
            os.chmod(verified.path, 0o600)
            os.replace(verified.path, target)
        except OSError as exc:
            raise BackupError(f"cannot put the backup in place at {target}: {exc.strerror or exc}") from None
    return Restored(dataclasses.replace(verified, path=target), None, False)


def safety_dump_name(settings_dict: dict[str, object]) -> Path:
    """What the safety dumps of the site's PostgreSQL database are named after, in the data folder."""
    from django.conf import settings

    return Path(settings.DATABASE_PATH).parent / f"{settings_dict['NAME']}{objects.DUMP_SUFFIX}"


def restore_postgres(
    provider: StorageProvider, name: str, *, overwrite: bool, progress: ProgressFactory | None = None
) -> Restored:
    """Replace the data of the site's PostgreSQL database with the verified dump ``name``.

    Refuses while a web process or task cluster of the site runs (on any machine: the advisory
    lock of ``backups.site_lock``). The data it replaces is dumped first into the data folder as
    ``NAME.pgdump.before-restore-YYYYMMDD_HHMMSS``; ``pg_restore`` then runs as one transaction,
    so a failed restore leaves the old data in place (``backups.postgres.restore_dump``).
    """
    connection = connections["default"]
    settings_dict = connection.settings_dict
    database = safety_dump_name(settings_dict)
    with held_postgres_for_restore(settings_dict):
        try:
            replacing = Trade._meta.db_table in connection.introspection.table_names()
        except DatabaseError as exc:
            raise BackupError(f"cannot read PostgreSQL {settings_dict['NAME']}: {exc}") from None
        if replacing and not overwrite:
            raise BackupError(
                f"PostgreSQL {settings_dict['NAME']} holds the site's data; "
                "run again with --yes to replace it"
            )
        name = resolve(provider, name)
        if not objects.is_dump(name):
            raise BackupError(
                f"{name} is a SQLite backup and the site runs on PostgreSQL: restore it to a file with "
                "--output FILE, then move it with manage.py copy_to_postgres --from FILE (docs/SCALING.md)"
            )
        with _work_folder_in(database.parent) as workdir:
            try:
                verified = fetch_verified(provider, name, workdir, progress)
                safety_copy = None
                if replacing:
                    before = take_dump(settings_dict, workdir)
                    assert before is not None
                    safety_copy = _safety_copy_name(database)
                    os.rename(before.path, safety_copy)
                connections.close_all()
                restore_dump(settings_dict, verified.path)
            except OSError as exc:
                raise BackupError(
                    f"cannot keep a safety copy in {database.parent}: {exc.strerror or exc}"
                ) from None
    return Restored(
        backup=dataclasses.replace(verified, path=Path(f"PostgreSQL {settings_dict['NAME']}")),
        safety_copy=safety_copy,
        site_was_running=False,
    )
