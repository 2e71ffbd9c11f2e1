"""Backups of the live database: the sync, the daily copy, claims, failures and alerts, retention, health."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings

from backups import objects, tasks
from backups.health import last_backup
from backups.models import ABANDONED_AFTER, BackupRecord, Kind, State
from backups.providers import StorageError, StoredObject
from backups.providers.local import LocalStorage
from backups.retention import expired, prune
from backups.snapshot import sha256_file
from backups.upload import WORKDIR_PREFIX, back_up, snapshot_folder
from tests.conftest import stored_trade
from tests.harness import on_postgres
from trades.models import Bot, Trade
from trades.signals import site_alert

NEW_YORK = ZoneInfo("America/New_York")
# On the PostgreSQL run of the suite the backups are pg_dump files (backups/postgres.py).
LATEST = objects.latest_name(compressed=False, dump=on_postgres())
SUFFIX = ".pgdump" if on_postgres() else ".db"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """The local provider's folder, configured as the site's storage."""
    root = tmp_path / "store"
    with override_settings(CLOUD_STORAGE_PROVIDER="local", LOCAL_STORAGE_PATH=root, BACKUP_COMPRESS=False):
        yield root


@pytest.fixture
def alerts() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    site_alert.connect(receiver)
    yield sent
    site_alert.disconnect(receiver)


def add_trade(n: int) -> None:
    bot, _ = Bot.objects.get_or_create(name="alpha")
    Trade.objects.record_batch(bot, [stored_trade(n)])


class Unreachable(LocalStorage):
    """The local provider, switched off on demand like a storage service that is down."""

    down = False

    def _fail(self) -> None:
        if self.down:
            raise StorageError("storage.example unreachable: connection refused")

    def upload(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().upload(*args, **kwargs)

    def delete(self, name: str) -> None:
        self._fail()
        super().delete(name)


# --- the sync of trades_latest.db -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sync_uploads_then_skips_until_the_trading_data_changes(store: Path) -> None:
    add_trade(1)
    assert tasks.sync_latest() == "latest: succeeded"
    latest = store / LATEST
    first = sha256_file(latest)
    assert (store / f"{LATEST}.sha256").read_text().split()[0] == first

    # The task cluster writes its own tables every minute: that is no change.
    from django_q.models import Schedule

    Schedule.objects.create(name="someone-elses", func="math.floor", schedule_type=Schedule.MINUTES)
    assert tasks.sync_latest() == "latest: skipped (nothing changed)"
    assert sha256_file(latest) == first
    assert BackupRecord.objects.count() == 1  # a skip leaves no record

    add_trade(2)
    assert tasks.sync_latest() == "latest: succeeded"
    record = BackupRecord.objects.last_good(Kind.LATEST)
    assert record is not None and record.trade_count == 2
    assert record.sha256 == sha256_file(latest) != first
    assert BackupRecord.objects.succeeded().count() == 2


@pytest.mark.django_db(transaction=True)
def test_backup_now_uploads_even_when_nothing_changed(store: Path) -> None:
    add_trade(1)
    back_up([Kind.LATEST])
    outcomes = back_up([Kind.LATEST], force=True)
    assert [outcome.state for outcome in outcomes] == ["succeeded"]
    assert BackupRecord.objects.succeeded().count() == 2


@pytest.mark.django_db(transaction=True)
def test_sync_does_nothing_while_switched_off(store: Path) -> None:
    add_trade(1)
    with override_settings(DB_SYNC_ENABLED=False):
        assert tasks.sync_latest() == "sync is off (DB_SYNC_ENABLED)"
    assert not store.exists()
    assert not BackupRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_daily_backup_is_named_by_market_time_and_records_everything(store: Path) -> None:
    add_trade(1)
    close = dt.datetime(2026, 1, 15, 16, 30, tzinfo=NEW_YORK)
    with mock.patch("django.utils.timezone.now", return_value=close.astimezone(dt.UTC)):
        outcomes = back_up([Kind.DAILY])
    assert [outcome.state for outcome in outcomes] == ["succeeded"]
    name = f"backups/trades_20260115_163000{SUFFIX}"
    record = BackupRecord.objects.get(object_name=name)
    stored = store / name
    assert record.kind == Kind.DAILY and record.provider == "local" and record.state == State.SUCCEEDED
    assert record.size == stored.stat().st_size and record.sha256 == sha256_file(stored)
    assert record.trade_count == 1 and record.duration is not None and record.duration >= 0
    assert record.error == "" and record.finished_at is not None
    assert not list(snapshot_folder().glob(f"{WORKDIR_PREFIX}*"))  # the work folder is gone


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_folder_left_by_a_killed_worker_is_removed_by_the_next_backup(store: Path) -> None:
    folder = snapshot_folder()
    left = folder / f"{WORKDIR_PREFIX}killed"
    left.mkdir()
    (left / "trades.db").write_bytes(b"x" * 1000)
    recent = folder / f"{WORKDIR_PREFIX}running"
    recent.mkdir()
    try:
        two_hours_ago = time.time() - 7200
        os.utime(left, (two_hours_ago, two_hours_ago))
        add_trade(1)
        back_up([Kind.LATEST])
        assert not left.exists()
        assert recent.exists()  # perhaps another worker's, still at work
    finally:
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(recent, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_compressed_latest_replaces_the_plain_one(store: Path) -> None:
    add_trade(1)
    back_up([Kind.LATEST])
    with override_settings(BACKUP_COMPRESS=True):
        back_up([Kind.LATEST], force=True)
    if on_postgres():
        # A pg_dump -Fc file is compressed already: BACKUP_COMPRESS leaves it as it is.
        assert sorted(path.name for path in store.iterdir()) == [LATEST, f"{LATEST}.sha256"]
        assert (store / LATEST).read_bytes()[:5] == b"PGDMP"
        return
    assert sorted(path.name for path in store.iterdir()) == [
        "trades_latest.db.gz",
        "trades_latest.db.gz.sha256",
    ]
    assert (store / "trades_latest.db.gz").read_bytes()[:2] == b"\x1f\x8b"


# --- claims ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_second_worker_cannot_claim_a_running_backup() -> None:
    now = dt.datetime(2026, 1, 15, 21, 0, tzinfo=dt.UTC)
    first = BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", now)
    assert first is not None
    assert BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", now) is None
    # Another kind is another backup.
    assert BackupRecord.objects.claim(Kind.DAILY, "backups/x.db", "local", now) is not None
    first.fail("boom")
    assert BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", now) is not None


@pytest.mark.django_db(transaction=True)
def test_backup_while_another_worker_runs_it_is_busy_and_touches_nothing(store: Path) -> None:
    add_trade(1)
    BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", dt.datetime.now(dt.UTC))
    outcomes = back_up([Kind.LATEST], force=True)
    assert [outcome.state for outcome in outcomes] == ["busy"]
    assert not store.exists()


@pytest.mark.django_db
def test_a_claim_abandoned_by_a_killed_worker_is_released_after_an_hour() -> None:
    start = dt.datetime(2026, 1, 15, 21, 0, tzinfo=dt.UTC)
    stuck = BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", start)
    later = start + ABANDONED_AFTER - dt.timedelta(minutes=1)
    assert BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", later) is None
    much_later = start + ABANDONED_AFTER + dt.timedelta(minutes=1)
    assert BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", much_later) is not None
    stuck.refresh_from_db()
    assert stuck.state == State.FAILED and "abandoned" in stuck.error


# --- storage down: recorded, retried, alerted once per streak ----------------


@pytest.mark.django_db(transaction=True)
def test_storage_down_is_recorded_retried_and_alerted_once_per_streak(
    tmp_path: Path, alerts: list[dict[str, Any]]
) -> None:
    add_trade(1)
    storage = Unreachable(tmp_path / "store")
    storage.down = True
    states = [back_up([Kind.LATEST], provider=storage)[0].state for _ in range(4)]
    assert states == ["failed"] * 4
    failed = BackupRecord.objects.filter(state=State.FAILED)
    assert failed.count() == 4
    assert all("unreachable" in record.error for record in failed)
    assert len(alerts) == 1  # at the third failure, not again at the fourth
    alert = alerts[0]
    assert alert["kind"] == "backup_failed" and alert["level"] == "warning"
    assert alert["subject"] == "backup:latest" and "3 times" in alert["title"]
    assert "unreachable" in alert["message"]

    storage.down = False
    # Retried next cycle: the data is unchanged, but the last good upload is what counts.
    assert back_up([Kind.LATEST], provider=storage)[0].state == "succeeded"
    assert BackupRecord.objects.failure_streak(Kind.LATEST) == 0

    storage.down = True
    add_trade(2)
    for _ in range(3):
        back_up([Kind.LATEST], provider=storage)
    assert len(alerts) == 2  # a new streak, a new alert


@pytest.mark.django_db(transaction=True)
def test_a_broken_alert_listener_does_not_break_the_backup_task(tmp_path: Path) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("listener bug")

    site_alert.connect(broken)
    try:
        storage = Unreachable(tmp_path / "store")
        storage.down = True
        states = [back_up([Kind.LATEST], provider=storage)[0].state for _ in range(3)]
    finally:
        site_alert.disconnect(broken)
    assert states == ["failed"] * 3
    assert BackupRecord.objects.filter(state=State.FAILED).count() == 3


@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_is_recorded_and_releases_the_claim(store: Path) -> None:
    add_trade(1)
    with (
        mock.patch("backups.upload.take_snapshot", side_effect=RuntimeError("a bug")),
        mock.patch("backups.upload.take_dump", side_effect=RuntimeError("a bug")),
    ):
        outcomes = back_up([Kind.LATEST])
    assert [(o.state, o.detail) for o in outcomes] == [("failed", "unexpected RuntimeError: a bug")]
    assert BackupRecord.objects.get().state == State.FAILED
    assert back_up([Kind.LATEST])[0].state == "succeeded"  # the claim was released


@pytest.mark.django_db(transaction=True)
def test_misconfigured_storage_fails_the_backup_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    add_trade(1)
    with override_settings(CLOUD_STORAGE_PROVIDER="local", LOCAL_STORAGE_PATH=blocker / "store"):
        assert tasks.sync_latest() == f"latest: failed (cannot delete {LATEST}.sha256: Not a directory)"
    record = BackupRecord.objects.get()
    assert record.state == State.FAILED and "Not a directory" in record.error


@pytest.mark.django_db(transaction=True)
def test_a_failed_daily_backup_is_retried_by_the_next_sync(store: Path, tmp_path: Path) -> None:
    add_trade(1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with override_settings(LOCAL_STORAGE_PATH=blocker / "store"):
        assert tasks.daily_backup().startswith("daily: failed")
    assert tasks.sync_latest() == "latest: succeeded; daily: succeeded"
    assert len(list((store / "backups").glob(f"trades_*{SUFFIX}"))) == 1
    assert tasks.sync_latest() == "latest: skipped (nothing changed)"


# --- retention -----------------------------------------------------------------


def stored(name: str) -> StoredObject:
    return StoredObject(name, 1, dt.datetime(2020, 1, 1, tzinfo=dt.UTC))


def test_retention_drops_only_timestamped_backups_past_the_cutoff() -> None:
    listing = [
        stored("trades_latest.db"),
        stored("backups/trades_20260101_163000.db"),
        stored("backups/trades_20260105_163000.db.gz"),
        stored("backups/trades_20260201_163000.db"),
        stored("backups/notes.txt"),
        stored("backups/trades_20250101_163000.db.sha256"),
    ]
    now = dt.datetime(2026, 2, 3, 12, tzinfo=NEW_YORK)
    assert [obj.name for obj in expired(listing, now, 30)] == ["backups/trades_20260101_163000.db"]
    assert [obj.name for obj in expired(listing, now + dt.timedelta(days=4), 30)] == [
        "backups/trades_20260101_163000.db",
        "backups/trades_20260105_163000.db.gz",
    ]


def test_retention_keeps_the_newest_daily_backup_whatever_the_clock_says() -> None:
    listing = [stored(f"backups/trades_202601{day:02d}_163000.db") for day in (5, 6, 7)]
    far_future = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    assert [obj.name for obj in expired(listing, far_future, 30)] == [
        "backups/trades_20260105_163000.db",
        "backups/trades_20260106_163000.db",
    ]
    assert expired(listing[:1], far_future, 0) == []


def test_prune_deletes_expired_backups_with_their_checksums_and_keeps_the_rest(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    source = tmp_path / "x.db"
    source.write_bytes(b"x")
    names = [
        "trades_latest.db",
        "trades_latest.db.sha256",
        "backups/trades_20260101_163000.db",
        "backups/trades_20260101_163000.db.sha256",
        "backups/trades_20260102_163000.db",
    ]
    for name in names:
        storage.upload(source, name)
    moved_clock = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    dry = prune(storage, moved_clock, 30, apply=False)
    assert [obj.name for obj in dry] == ["backups/trades_20260101_163000.db"]
    assert len(storage.list()) == 5
    prune(storage, moved_clock, 30, apply=True)
    assert [obj.name for obj in storage.list()] == [
        "backups/trades_20260102_163000.db",
        "trades_latest.db",
        "trades_latest.db.sha256",
    ]


@pytest.mark.django_db
def test_prune_task_uses_the_retention_setting(store: Path, tmp_path: Path) -> None:
    storage = LocalStorage(store)
    source = tmp_path / "x.db"
    source.write_bytes(b"x")
    for day in (1, 10, 20):
        storage.upload(source, f"backups/trades_202601{day:02d}_163000.db")
    now = dt.datetime(2026, 1, 25, 12, tzinfo=dt.UTC)
    with (
        override_settings(BACKUP_RETENTION_DAYS=10),
        mock.patch("django.utils.timezone.now", return_value=now),
    ):
        assert tasks.prune_old_backups() == "pruned 2 backup(s) older than 10 days"
    assert [obj.name for obj in storage.list()] == ["backups/trades_20260120_163000.db"]


def test_object_names_follow_the_contract() -> None:
    moment = dt.datetime(2026, 7, 1, 20, 30, 5, tzinfo=dt.UTC)  # 16:30:05 in New York (EDT)
    assert objects.daily_name(moment, compressed=False) == "backups/trades_20260701_163005.db"
    assert objects.daily_name(moment, compressed=True) == "backups/trades_20260701_163005.db.gz"
    assert objects.daily_time("backups/trades_20260701_163005.db.gz") == moment
    assert objects.latest_name(compressed=True) == "trades_latest.db.gz"
    assert objects.daily_time("trades_latest.db") is None
    # A site on PostgreSQL: pg_dump files, never gzipped, kept and pruned like the others.
    assert objects.daily_name(moment, compressed=True, dump=True) == "backups/trades_20260701_163005.pgdump"
    assert objects.latest_name(compressed=True, dump=True) == "trades_latest.pgdump"
    assert objects.daily_time("backups/trades_20260701_163005.pgdump") == moment
    assert objects.is_backup("trades_latest.pgdump") and objects.is_dump("trades_latest.pgdump")
    assert not objects.is_backup("backups/trades_20260701_163005.pgdump.gz")


# --- health --------------------------------------------------------------------


def good_record(finished: dt.datetime) -> BackupRecord:
    return BackupRecord.objects.create(
        object_name="trades_latest.db",
        provider="local",
        kind=Kind.LATEST,
        state=State.SUCCEEDED,
        created_at=finished - dt.timedelta(seconds=5),
        finished_at=finished,
    )


@pytest.mark.django_db
@override_settings(DB_SYNC_ENABLED=True, DB_SYNC_INTERVAL=300)
def test_health_reports_the_age_of_the_last_good_backup() -> None:
    finished = dt.datetime(2026, 1, 15, 21, 0, tzinfo=dt.UTC)
    good_record(finished)
    fresh = last_backup(now=finished + dt.timedelta(seconds=600))
    assert fresh["ok"] is True and fresh["age_seconds"] == 600 and fresh["last_backup"] == finished
    stale = last_backup(now=finished + dt.timedelta(seconds=601))
    assert stale["ok"] is False and stale["reason"] == "last good backup 10 min 1 s ago (limit 10 min)"
    with override_settings(DB_SYNC_ENABLED=False):
        assert last_backup(now=finished + dt.timedelta(days=3))["ok"] is True


@pytest.mark.django_db
@override_settings(DB_SYNC_ENABLED=True, DB_SYNC_INTERVAL=300)
def test_health_counts_failures_but_judges_only_the_last_good_backup() -> None:
    finished = dt.datetime(2026, 1, 15, 21, 0, tzinfo=dt.UTC)
    good_record(finished)
    record = BackupRecord.objects.claim(Kind.LATEST, "trades_latest.db", "local", finished)
    assert record is not None
    record.fail("down")
    state = last_backup(now=finished + dt.timedelta(seconds=60))
    assert state["ok"] is True and state["failures_in_a_row"] == 1


@pytest.mark.django_db
@override_settings(DB_SYNC_ENABLED=True, DB_SYNC_INTERVAL=300)
def test_health_without_any_backup_is_ok_until_the_site_has_had_time_to_make_one() -> None:
    installed = MigrationRecorder.Migration.objects.filter(app="backups").order_by("applied").first().applied
    early = last_backup(now=installed + dt.timedelta(seconds=590))
    assert early["ok"] is True and early["last_backup"] is None
    late = last_backup(now=installed + dt.timedelta(seconds=610))
    assert late["ok"] is False and "no backup yet" in late["reason"]
    with override_settings(DB_SYNC_ENABLED=False):
        assert last_backup(now=installed + dt.timedelta(days=2))["ok"] is True


def test_backup_schedules_follow_the_registry_convention() -> None:
    from backups.schedules import SCHEDULES

    by_name = {schedule["name"]: schedule for schedule in SCHEDULES}
    assert by_name["backup-sync"]["seconds"] == "DB_SYNC_INTERVAL"
    assert by_name["backup-sync"]["enabled_by"] == "DB_SYNC_ENABLED"
    assert by_name["backup-daily"]["cron"] == "30 16 * * *"
    assert by_name["backup-daily"]["trading_days_only"] is True
    for schedule in SCHEDULES:
        module, _, func = schedule["func"].rpartition(".")
        assert callable(getattr(__import__(module, fromlist=[func]), func))


@pytest.mark.django_db
@override_settings(DB_SYNC_ENABLED=True, DB_SYNC_INTERVAL=300)
def test_a_late_backup_degrades_the_health_endpoint_but_keeps_it_200(client: Any) -> None:
    from django_q.models import Success

    now = dt.datetime.now(dt.UTC)
    Success.objects.create(
        id="0" * 32, name="beat", func="monitorsite.tasks.cluster_heartbeat", started=now, stopped=now
    )
    good_record(now - dt.timedelta(seconds=700))
    response = client.get("/api/v1/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["backup"]["ok"] is False
    assert body["components"]["backup"]["object_name"] == "trades_latest.db"
    good_record(now)
    assert client.get("/api/v1/health/").json()["status"] == "ok"


@pytest.mark.django_db
def test_admin_lists_backup_records_with_filters_and_never_edits_them(admin_client: Any) -> None:
    finished = dt.datetime(2026, 1, 15, 21, 0, tzinfo=dt.UTC)
    record = good_record(finished)
    record.size, record.trade_count, record.duration = 3 * 1024 * 1024, 1234, 2.5
    record.save()
    failed = BackupRecord.objects.claim(Kind.DAILY, "backups/trades_20260115_163000.db", "local", finished)
    assert failed is not None
    failed.fail("storage.example unreachable")
    page = admin_client.get("/admin/backups/backuprecord/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "trades_latest.db" in text and "3.0 MB" in text and "2.5 s" in text and "1,234" in text
    only_failed = admin_client.get("/admin/backups/backuprecord/?state__exact=failed").content.decode()
    assert "backups/trades_20260115_163000.db" in only_failed and "3.0 MB" not in only_failed
    assert admin_client.get("/admin/backups/backuprecord/add/").status_code == 403
    detail = admin_client.get(f"/admin/backups/backuprecord/{failed.pk}/change/")
    assert detail.status_code == 200 and "storage.example unreachable" in detail.content.decode()
    assert (
        admin_client.post(f"/admin/backups/backuprecord/{failed.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert BackupRecord.objects.count() == 2


def test_a_backup_exactly_retention_days_old_is_kept() -> None:
    now = dt.datetime(2026, 2, 3, 16, 30, tzinfo=NEW_YORK)
    listing = [
        stored("backups/trades_20260104_162959.db"),  # 30 days and one second old
        stored("backups/trades_20260104_163000.db"),  # exactly 30 days old
        stored("backups/trades_20260203_163000.db"),
    ]
    assert [obj.name for obj in expired(listing, now, 30)] == ["backups/trades_20260104_162959.db"]


@pytest.mark.django_db
@override_settings(DB_SYNC_ENABLED=True, DB_SYNC_INTERVAL=300)
def test_a_fresh_site_without_a_backup_is_ok_for_exactly_twice_the_interval_after_installation() -> None:
    installed = MigrationRecorder.Migration.objects.filter(app="backups").order_by("applied").first().applied
    at_limit = last_backup(now=installed + dt.timedelta(seconds=600))
    assert at_limit["ok"] is True and "reason" not in at_limit
    past = last_backup(now=installed + dt.timedelta(seconds=601))
    assert past["ok"] is False and past["reason"] == "no backup yet, 10 min 1 s after installation"
