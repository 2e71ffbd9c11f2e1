"""setup_schedules and the schedule registry: intervals, market-time cron, trading days, switches."""

from __future__ import annotations

import ast
import datetime as dt
from io import StringIO
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django_q.models import Schedule

from monitorsite import registry
from monitorsite.registry import ScheduleSpec, declared_schedules
from monitorsite.tasks import run_on_trading_day

pytestmark = pytest.mark.django_db
NEW_YORK = ZoneInfo("America/New_York")


def run() -> str:
    out = StringIO()
    call_command("setup_schedules", stdout=out)
    return out.getvalue()


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Schedules declared for one test instead of the apps' own."""
    specs: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "monitorsite.management.commands.setup_schedules.declared_schedules",
        lambda: [ScheduleSpec(**spec) for spec in specs],
    )
    return specs


def test_every_declared_schedule_is_registered_once_and_a_rerun_changes_nothing() -> None:
    first = run()
    second = run()
    names = set(Schedule.objects.values_list("name", flat=True))
    assert names == {spec.registered_name for spec in declared_schedules() if spec.enabled()}
    assert "monitorsite:cluster-heartbeat" in names
    assert "created" in first and "created" not in second and "updated" not in second
    heartbeat = Schedule.objects.get(func="monitorsite.tasks.cluster_heartbeat")
    assert heartbeat.schedule_type == Schedule.MINUTES and heartbeat.minutes == 1


def test_a_changed_schedule_is_repaired_and_hand_made_ones_are_left_alone() -> None:
    run()
    Schedule.objects.filter(func="monitorsite.tasks.cluster_heartbeat").update(minutes=60)
    Schedule.objects.create(name="monitorsite:retired", func="monitorsite.tasks.cluster_heartbeat")
    Schedule.objects.create(name="operator's own", func="math.floor", args="1.5")
    output = run()
    assert "updated" in output and "removed  monitorsite:retired" in output
    assert Schedule.objects.get(name="monitorsite:cluster-heartbeat").minutes == 1
    assert Schedule.objects.filter(name="operator's own").exists()
    assert not Schedule.objects.filter(name="monitorsite:retired").exists()


def test_an_interval_in_seconds_from_a_setting_is_rounded_up_to_minutes(
    declared: list[dict[str, Any]], settings: Any
) -> None:
    settings.DB_SYNC_INTERVAL = 90
    declared.append({"name": "sync", "func": "math.floor", "seconds": "DB_SYNC_INTERVAL"})
    run()
    assert Schedule.objects.get(name="monitorsite:sync").minutes == 2
    settings.DB_SYNC_INTERVAL = 600
    assert "updated  monitorsite:sync" in run()
    assert Schedule.objects.get(name="monitorsite:sync").minutes == 10


def test_a_schedule_switched_off_by_its_setting_is_removed(
    declared: list[dict[str, Any]], settings: Any
) -> None:
    settings.DB_SYNC_ENABLED = True
    declared.append({"name": "sync", "func": "math.floor", "minutes": 5, "enabled_by": "DB_SYNC_ENABLED"})
    run()
    assert Schedule.objects.filter(name="monitorsite:sync").exists()
    settings.DB_SYNC_ENABLED = False
    assert "removed  monitorsite:sync" in run()
    assert not Schedule.objects.filter(name="monitorsite:sync").exists()


def test_a_cron_schedule_runs_at_market_time_through_the_trading_day_guard(
    declared: list[dict[str, Any]],
) -> None:
    declared.append(
        {
            "name": "summary",
            "func": "math.floor",
            "cron": "5 16 * * 1-5",
            "trading_days_only": True,
            "kwargs": {"x": 1.5},
        }
    )
    # 10:00 New York on Wednesday 2026-11-25, in winter time (UTC-5).
    now = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
    with mock.patch("django.utils.timezone.now", return_value=now):
        run()
    schedule = Schedule.objects.get(name="monitorsite:summary")
    assert schedule.schedule_type == Schedule.CRON and schedule.cron == "5 16 * * 1-5"
    assert schedule.next_run == dt.datetime(2026, 11, 25, 16, 5, tzinfo=NEW_YORK)
    assert schedule.func == "monitorsite.tasks.run_on_trading_day"
    assert ast.literal_eval(schedule.args) == ("math.floor",)
    assert ast.literal_eval(schedule.kwargs) == {"x": 1.5}


@pytest.mark.parametrize(
    ("moment", "runs"),
    [
        # Thanksgiving 2026, 16:05 New York: closed.
        (dt.datetime(2026, 11, 26, 16, 5, tzinfo=NEW_YORK), False),
        # The day after: an early close, but a trading day.
        (dt.datetime(2026, 11, 27, 16, 5, tzinfo=NEW_YORK), True),
        # Good Friday 2026.
        (dt.datetime(2026, 4, 3, 16, 5, tzinfo=NEW_YORK), False),
        # A Saturday.
        (dt.datetime(2026, 11, 28, 16, 5, tzinfo=NEW_YORK), False),
        # 23:30 New York on a Tuesday is already Wednesday in UTC; still Tuesday's trading day.
        (dt.datetime(2026, 11, 24, 23, 30, tzinfo=NEW_YORK), True),
        # 23:30 New York on a Friday is Saturday in UTC; still Friday.
        (dt.datetime(2026, 11, 20, 23, 30, tzinfo=NEW_YORK), True),
    ],
)
def test_trading_day_guard_runs_the_task_only_on_trading_days(moment: dt.datetime, runs: bool) -> None:
    with mock.patch("django.utils.timezone.now", return_value=moment.astimezone(dt.UTC)):
        result = run_on_trading_day("datetime.timedelta", days=2)
    assert result == (dt.timedelta(days=2) if runs else None)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "func": "math.floor"}, "exactly one of seconds, minutes or cron"),
        ({"name": "x", "func": "math.floor", "minutes": 1, "cron": "* * * * *"}, "exactly one"),
        (
            {"name": "x", "func": "math.floor", "minutes": 1, "every": 3},
            "unexpected keyword argument 'every'",
        ),
    ],
)
def test_a_malformed_declaration_stops_with_a_message_naming_it(
    monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], message: str
) -> None:
    module = type("Module", (), {"SCHEDULES": [spec]})
    monkeypatch.setattr(registry, "app_modules", lambda name: [("alerts", module)])
    with pytest.raises(ImproperlyConfigured, match=message) as caught:
        declared_schedules()
    assert "alerts.schedules: 'x'" in str(caught.value)


def test_a_setting_named_by_a_schedule_must_exist(declared: list[dict[str, Any]]) -> None:
    declared.append({"name": "x", "func": "math.floor", "minutes": "NO_SUCH_SETTING"})
    with pytest.raises(ImproperlyConfigured, match="NO_SUCH_SETTING"):
        run()
