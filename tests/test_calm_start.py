"""A calm start: ./scripts/serve.sh --demo (what start.sh ends with) as a user watches it."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from monitorsite import health
from monitorsite.logfilters import QuietTasks
from tests.harness import (
    MARKET_ZONE,
    Site,
    free_port,
    manage,
    start_serve_script,
    stop,
)

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", re.M)


def test_console_is_one_time_zone_without_per_task_lines_and_health_never_503(site: Site) -> None:
    port = free_port()
    env = dict(
        site.env,
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="2",
        TZ="UTC",  # the machine's zone differs from the market's, as on a cloud VM
        DEMO_ARGS=f"--tick 0.2 --seed 7 --heartbeat-every 1 --spool-dir {site.tmp / 'demo-spool'}",
    )
    env.pop("MONITOR_URL", None)
    env.pop("MONITOR_KEY", None)
    log_path = site.tmp / "serve.log"
    statuses: list[tuple[int, str]] = []
    with open(log_path, "wb") as log:
        serve = start_serve_script(env, log, "--demo")
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    response = requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=5)
                except requests.ConnectionError:
                    time.sleep(0.2)
                    continue
                statuses.append((response.status_code, response.json()["status"]))
                if response.json()["status"] == "ok" and len(statuses) > 5:
                    break
                time.sleep(0.2)
            # A few tasks have run (the heartbeat, each minute's schedule is not waited for).
            time.sleep(3)
            os.killpg(serve.pid, signal.SIGINT)
            assert serve.wait(60) == 0
        finally:
            stop(serve, timeout=45)  # serve.sh gives the site 30 s to stop
    output = log_path.read_text(errors="replace")
    assert statuses, output[-3000:]
    assert all(code == 200 for code, _ in statuses), (statuses, output[-3000:])
    assert {state for _, state in statuses} <= {"starting", "ok", "degraded"}
    assert statuses[-1][1] == "ok", statuses
    # The cluster ran tasks (its file log has the lines), but the console shows none of them.
    file_log = "".join(p.read_text(errors="replace") for p in (site.tmp / "logs").glob("*.log*"))
    assert "Processed '" in file_log
    assert not re.search(r"Enqueued |Processed '| processing |created task ", output), output[-3000:]
    # Every timestamped line is in the market's time (not the machine's UTC).
    market_now = dt.datetime.now(MARKET_ZONE).replace(tzinfo=None)
    stamps = [dt.datetime.fromisoformat(s) for s in STAMP.findall(output)]
    assert len(stamps) > 3, output[-3000:]
    if abs(dt.datetime.now(MARKET_ZONE).utcoffset()) > dt.timedelta(hours=1):  # type: ignore[arg-type]
        off = [s for s in stamps if abs(s - market_now) > dt.timedelta(minutes=5)]
        assert not off, (off, output[-3000:])
    assert "demo_bot" in output or "demo bot" in output


def test_log_tasks_keeps_the_per_task_lines(tmp_path: Path) -> None:
    from tests.harness import site_env

    quiet = manage(site_env(tmp_path), "shell", "-c", PRINT_FILTERS).stdout
    loud = manage(site_env(tmp_path, LOG_TASKS="true"), "shell", "-c", PRINT_FILTERS).stdout
    assert "quiet_tasks" in quiet and "quiet_tasks" not in loud


PRINT_FILTERS = "from django.conf import settings; print(settings.LOGGING['handlers']['console']['filters'])"


def test_quiet_tasks_drops_only_django_q_per_task_info_lines() -> None:
    quiet = QuietTasks()

    def record(name: str, level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, message, None, None)

    assert not quiet.filter(record("django-q", logging.INFO, "Enqueued [default] 42"))
    assert not quiet.filter(record("django-q", logging.INFO, "Processed 'monitorsite.tasks.x' (abc)"))
    assert not quiet.filter(record("django-q", logging.INFO, "Process-1:1 processing abc 'x'"))
    assert not quiet.filter(record("django-q", logging.INFO, "Process-1 created task abc from schedule [y]"))
    assert quiet.filter(record("django-q", logging.INFO, "Q Cluster abc running."))
    assert quiet.filter(record("django-q", logging.ERROR, "Failed 'x' (abc) - boom"))
    assert quiet.filter(record("trades", logging.INFO, "Processed 'x'"))


@pytest.mark.django_db
def test_cluster_is_starting_for_exactly_its_first_minute(tmp_path: Path, settings: Any) -> None:
    settings.DATABASE_PATH = tmp_path / "trades.db"
    assert health.task_cluster_state()["ok"] is False  # never started, never ran: down
    health.mark_started()
    started = health.cluster_started_at()
    assert started is not None
    at_limit = started + dt.timedelta(seconds=settings.CLUSTER_STARTING_SECONDS)
    assert health.task_cluster_state(now=at_limit) == {
        "ok": True,
        "starting": True,
        "started_seconds_ago": float(settings.CLUSTER_STARTING_SECONDS),
        "last_heartbeat": None,
    }
    late = health.task_cluster_state(now=at_limit + dt.timedelta(seconds=1))
    assert late == {"ok": False, "last_heartbeat": None, "reason": "the task cluster has not run yet"}
