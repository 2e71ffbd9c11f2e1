"""The site logs through monitor_client: file log always, Loki from every gunicorn worker."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import VENV_BIN, Site, free_port, manage, site_env, stop, wait_for
from django.conf import settings
from loopback_loki import Entry, LoopbackLoki

pytestmark = pytest.mark.server


@pytest.fixture
def loki() -> Iterator[LoopbackLoki]:
    server = LoopbackLoki()
    yield server
    server.stop()


def test_site_settings_use_the_shared_setup_and_build_nothing_at_import() -> None:
    handlers = settings.LOGGING["handlers"]
    assert handlers["file"]["()"] == "monitor_client.logsetup.file_handler"
    assert handlers["file"]["application"] == "monitorsite"
    assert handlers["file"]["log_dir"] == str(settings.LOG_DIR)
    assert "loki" not in handlers  # LOKI_URL is not set for the tests
    assert settings.LOGGING["loggers"]["django.db.backends"] == {"level": "WARNING"}


def test_every_preloaded_gunicorn_worker_ships_to_loki(
    tmp_path: Path, migrated_template: Path, loki: LoopbackLoki
) -> None:
    shutil.copy(migrated_template, tmp_path / "trades.db")
    port = free_port()
    site = Site(
        url=f"http://127.0.0.1:{port}",
        env=site_env(tmp_path, LOKI_URL=loki.url),
        tmp=tmp_path,
        processes=[],
    )
    # preload_app (gunicorn.conf.py): Django and its logging are set up once in the
    # master, then the workers are forked.
    site.start(
        str(VENV_BIN / "gunicorn"),
        "--config",
        "gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "3",
        "monitorsite.wsgi",
        log="gunicorn.log",
    )
    try:
        wait_for(f"{site.url}/api/v1/health/")
        # No task cluster runs: each worker logs "task_cluster down" once, on its first check.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_cluster_down(loki)) < 2:
            requests.get(f"{site.url}/api/v1/health/", timeout=10)
            time.sleep(0.1)
        entries = _cluster_down(loki)
        assert len(entries) >= 2, site.log("gunicorn.log")
        assert entries[0].labels == {
            "application": "monitorsite",
            "level": "warning",
            "logger": "monitorsite.health",
        }
        file_log = (tmp_path / "logs" / "monitorsite.log").read_text()
        assert file_log.count("health: task_cluster down") == len(entries)
        pids = {line.split()[4] for line in file_log.splitlines() if "task_cluster down" in line}
        assert len(pids) == len(entries)  # from different worker processes
    finally:
        for process in site.processes:
            stop(process)


def _cluster_down(loki: LoopbackLoki) -> list[Entry]:
    with loki.received:
        return [entry for entry in loki.entries if "task_cluster down" in entry.line]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOKI_URL": "https://logs.example.com", "LOKI_USERNAME": "123"}, "must be set together"),
        ({"LOKI_URL": "http://logs.example.com", "LOKI_USERNAME": "1", "LOKI_PASSWORD": "p"}, "https://"),
    ],
)
def test_a_bad_loki_setting_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    result = manage(site_env(tmp_path, **env), "check", check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "secret" not in result.stderr


def test_log_shipping_is_a_non_vital_health_check() -> None:
    from django.utils.module_loading import import_string

    from monitorsite import health

    entry = health.CHECKS["log_shipping"]
    assert entry["vital"] is False
    assert import_string(entry["check"])() == {"ok": True, "enabled": False}
