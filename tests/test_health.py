"""/api/v1/health/: every app's registered checks; vital ones decide 503, the others degrade."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.models import Success
from rest_framework.test import APIClient

from monitorsite import health, registry
from monitorsite.backends import describe_broker, describe_database, postgres_database
from monitorsite.registry import HealthCheck
from tests.harness import free_port, manage, site_env

pytestmark = pytest.mark.django_db

HEARTBEAT = "monitorsite.tasks.cluster_heartbeat"


def beat(at: dt.datetime, n: int = 0) -> None:
    Success.objects.create(id=f"{n:032d}", name=f"beat-{n}", func=HEARTBEAT, started=at, stopped=at)


def get_health() -> tuple[int, dict[str, Any]]:
    response = APIClient().get("/api/v1/health/")
    return response.status_code, response.json()


@pytest.fixture
def extra_checks(monkeypatch: pytest.MonkeyPatch) -> list[HealthCheck]:
    """Checks added to the registered ones for one test."""
    added: list[HealthCheck] = []
    registered = registry.health_checks()
    monkeypatch.setattr(registry, "health_checks", lambda: (*registered, *added))
    return added


def test_health_needs_no_key_and_is_503_without_a_task_cluster() -> None:
    status, body = get_health()
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["components"]["database"] == {
        "ok": True,
        "vital": True,
        "name": settings.DATABASE_DESCRIPTION,
    }
    assert body["components"]["broker"] == {"ok": True, "vital": True, "name": settings.BROKER_DESCRIPTION}
    assert body["components"]["task_cluster"]["ok"] is False
    assert body["warnings"] == ["task_cluster: the task cluster has not run yet"]


def test_health_is_200_after_a_recent_cluster_heartbeat() -> None:
    beat(timezone.now())
    status, body = get_health()
    assert (status, body["status"], body["warnings"]) == (200, "ok", [])


def test_health_is_503_when_the_last_cluster_heartbeat_is_old() -> None:
    beat(timezone.now() - dt.timedelta(minutes=10))
    status, body = get_health()
    assert status == 503
    assert body["components"]["task_cluster"]["reason"] == "no heartbeat for 10 min"


def test_cluster_age_comes_from_the_newest_of_many_old_heartbeats() -> None:
    now = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
    for n, days in enumerate([9, 3, 30, 5, 4]):
        beat(now - dt.timedelta(days=days), n)
    state = health.task_cluster_state(now=now)
    assert state["ok"] is False
    assert state["age_seconds"] == 3 * 86400
    assert state["last_heartbeat"] == now - dt.timedelta(days=3)


def test_cluster_is_alive_just_inside_the_stale_limit_and_dead_just_past_it(settings: Any) -> None:
    now = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
    beat(now)
    limit = dt.timedelta(seconds=settings.CLUSTER_STALE_AFTER_SECONDS)
    assert health.task_cluster_state(now=now + limit)["ok"] is True
    assert health.task_cluster_state(now=now + limit + dt.timedelta(seconds=1))["ok"] is False


def test_a_failing_warning_check_degrades_the_site_but_keeps_it_200(extra_checks: list[HealthCheck]) -> None:
    beat(timezone.now())
    extra_checks.append(
        HealthCheck("backup", lambda: {"ok": False, "reason": "last good backup 2 h ago"}, vital=False)
    )
    status, body = get_health()
    assert status == 200
    assert body["status"] == "degraded"
    assert body["components"]["backup"] == {"ok": False, "vital": False, "reason": "last good backup 2 h ago"}
    assert body["warnings"] == ["backup: last good backup 2 h ago"]


def test_a_failing_vital_check_wins_over_a_warning(extra_checks: list[HealthCheck]) -> None:
    extra_checks.append(HealthCheck("backlog", lambda: {"ok": False, "reason": "42 unsent"}, vital=False))
    status, body = get_health()
    assert (status, body["status"]) == (503, "unavailable")


def test_a_check_that_raises_is_a_failing_component_not_a_500(extra_checks: list[HealthCheck]) -> None:
    beat(timezone.now())

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret-token-in-message")

    extra_checks.append(HealthCheck("broken", broken, vital=False))
    status, body = get_health()
    assert status == 200
    assert body["components"]["broken"] == {
        "ok": False,
        "vital": False,
        "reason": "check failed: RuntimeError",
    }
    assert "secret" not in str(body)


def test_checks_are_collected_from_each_apps_health_module() -> None:
    names = {check.name: check.vital for check in registry.health_checks()}
    assert names["database"] is True and names["task_cluster"] is True


def test_repeated_503s_from_health_log_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    health._last_state = None
    with caplog.at_level("INFO"):
        for _ in range(5):
            assert get_health()[0] == 503
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [("WARNING", "health: unavailable (task_cluster failing)")]


def test_health_names_the_broker_and_is_503_when_redis_cannot_be_reached(settings: Any) -> None:
    """A Redis broker nobody answers on: health names it (no password) and says unavailable."""
    beat(timezone.now())
    port = free_port()  # nothing listens there
    settings.REDIS_URL = f"redis://:secret-password@127.0.0.1:{port}/2"
    settings.BROKER_DESCRIPTION = describe_broker(settings.REDIS_URL)
    status, body = get_health()
    assert status == 503
    assert body["components"]["broker"] == {
        "ok": False,
        "vital": True,
        "name": f"Redis 127.0.0.1:{port}/2",
        "error": "ConnectionError",
        "reason": f"Redis 127.0.0.1:{port}/2 cannot be reached",
    }
    assert "secret-password" not in json.dumps(body)


def test_the_database_and_broker_are_described_without_their_passwords() -> None:
    postgres = postgres_database("postgres://monitor:pass%40word@db.internal:6543/trades", conn_max_age=0)
    assert (postgres["NAME"], postgres["USER"], postgres["PASSWORD"]) == ("trades", "monitor", "pass@word")
    assert describe_database(postgres) == "PostgreSQL trades at db.internal:6543"
    assert describe_database({"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/x/trades.db"}) == (
        "SQLite trades.db"
    )
    assert describe_broker(None) == "the database (django-q2 ORM broker)"
    assert describe_broker("redis://:pw@cache:6380") == "Redis cache:6380/0"


@pytest.mark.parametrize(
    ("variable", "url", "message"),
    [
        ("DATABASE_URL", "mysql://u:secret@h/db", "DATABASE_URL must be a postgres:// URL"),
        ("DATABASE_URL", "postgres://u:secret@h:5432/", "DATABASE_URL must name the database"),
        ("DATABASE_URL", "postgres://u:secret@h:99999/db", "DATABASE_URL is not a URL"),
        ("REDIS_URL", "http://secret@h/0", "REDIS_URL must be a redis://, rediss:// or unix:// URL"),
        ("REDIS_URL", "redis://:secret@h:6379/zero", "REDIS_URL's database must be a number"),
    ],
)
def test_a_malformed_database_or_redis_url_stops_start_up_with_one_line(
    tmp_path: Any, variable: str, url: str, message: str
) -> None:
    result = manage(site_env(tmp_path, **{variable: url}), "check", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "secret" not in result.stderr, result.stderr


def test_after_a_restart_the_cluster_is_starting_again_for_exactly_its_first_minute(
    tmp_path: Any, settings: Any
) -> None:
    """The old cluster's last heartbeat is long past: until the new one's first heartbeat, or for
    ``CLUSTER_STARTING_SECONDS``, health says "starting" (200), not "unavailable"."""
    settings.DATABASE_PATH = tmp_path / "trades.db"
    restart = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
    beat(restart - dt.timedelta(minutes=10))  # the old cluster's last heartbeat
    health.mark_started()
    os.utime(health.started_marker(), (restart.timestamp(), restart.timestamp()))
    window = dt.timedelta(seconds=settings.CLUSTER_STARTING_SECONDS)

    def answer(now: dt.datetime) -> tuple[int, str]:
        with mock.patch("django.utils.timezone.now", return_value=now):
            status, body = get_health()
        return status, body["status"]

    assert answer(restart) == (200, "starting")  # the instant it started
    assert answer(restart + window) == (200, "starting")
    assert answer(restart + window + dt.timedelta(seconds=1)) == (503, "unavailable")
    late = health.task_cluster_state(now=restart + window + dt.timedelta(seconds=1))
    assert (late["ok"], late["reason"]) == (False, "no heartbeat for 11 min 1 s")
    # Its first heartbeat ends "starting": from then on its age is what counts.
    beat(restart + dt.timedelta(seconds=5), 1)
    assert health.task_cluster_state(now=restart + dt.timedelta(seconds=10)) == {
        "ok": True,
        "last_heartbeat": restart + dt.timedelta(seconds=5),
        "age_seconds": 5.0,
    }


def test_a_heartbeat_at_the_instant_of_the_restart_is_the_new_clusters_first(
    tmp_path: Any, settings: Any
) -> None:
    settings.DATABASE_PATH = tmp_path / "trades.db"
    restart = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)
    health.mark_started()
    os.utime(health.started_marker(), (restart.timestamp(), restart.timestamp()))
    beat(restart - dt.timedelta(seconds=1))
    assert health.task_cluster_state(now=restart + dt.timedelta(seconds=10))["starting"] is True
    beat(restart, 1)
    state = health.task_cluster_state(now=restart + dt.timedelta(seconds=10))
    assert state == {"ok": True, "last_heartbeat": restart, "age_seconds": 10.0}


@pytest.mark.django_db(transaction=True)
def test_a_flood_of_alert_tasks_never_pushes_out_the_clusters_proof_of_life(settings: Any) -> None:
    """django-q2 keeps the newest ``save_limit`` successes and deletes the oldest: the alerts'
    event tasks (one per batch, per heartbeat with state) are not kept, so however many run,
    the cluster's heartbeat stays; a failed one is kept, for the admin's failed tasks."""
    from django_q.brokers import get_broker
    from django_q.models import Failure
    from django_q.monitor import save_task

    from alerts.tasks import enqueue
    from tests.queued import clear_queue, queued

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "save_limit": 5}
    beat(timezone.now())
    clear_queue()
    for _ in range(12):
        enqueue("alerts.tasks.deliver")  # outside a transaction: queued at once
    packages = [task.package for task in queued()]
    assert len(packages) == 12
    now = timezone.now()
    with mock.patch("django_q.monitor.Conf.SAVE_LIMIT", 5):
        for package in packages[:-1]:
            save_task({**package, "success": True, "result": 0, "started": now, "stopped": now}, get_broker())
        save_task(
            {**packages[-1], "success": False, "result": "boom", "started": now, "stopped": now}, get_broker()
        )
    assert list(Success.objects.values_list("func", flat=True)) == [health.HEARTBEAT_TASK]
    assert Failure.objects.filter(func="alerts.tasks.deliver").count() == 1
    assert get_health()[1]["components"]["task_cluster"]["ok"] is True
    clear_queue()
