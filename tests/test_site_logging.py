"""The site logs through monitor_client: file log always, Loki from the web server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from alerts.outbound import MASKED_LOGGERS, HideSecrets, remember_secrets
from tests.harness import (
    ROOT,
    Site,
    copy_site_database,
    free_port,
    manage,
    site_env,
    start_web,
    stop,
    wait_for,
)
from tests.loopback_loki import Entry, LoopbackLoki

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


def test_secrets_are_masked_by_the_logging_setup_not_by_importing_the_outbound_module(
    caplog: pytest.LogCaptureFixture,
) -> None:
    code = (
        "import logging, alerts.outbound as outbound; "
        "print(sum(len(logging.getLogger(name).filters) for name in outbound.MASKED_LOGGERS))"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-c", code]
    imported = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "0"

    for name in MASKED_LOGGERS:
        assert "hide_secrets" in settings.LOGGING["loggers"][name]["filters"]
        assert any(isinstance(f, HideSecrets) for f in logging.getLogger(name).filters), name
    token = "123456:" + "s" * 30
    remember_secrets([token])
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug('"POST /bot%s/sendMessage HTTP/1.1" 200', token)
    assert "sendMessage" in caplog.text and token not in caplog.text


def test_the_web_server_ships_what_it_logs_to_loki(
    tmp_path: Path, migrated_template: Path, loki: LoopbackLoki
) -> None:
    copy_site_database(migrated_template, tmp_path / "trades.db")
    port = free_port()
    site = Site(
        url=f"http://127.0.0.1:{port}",
        env=site_env(tmp_path, LOKI_URL=loki.url),
        tmp=tmp_path,
        processes=[],
    )
    # monitorsite.serve sets up Django (and its logging) before it serves.
    start_web(site, port)
    try:
        wait_for(f"{site.url}/api/v1/health/")
        # A start more than a minute ago (health says "starting" in the first minute) ...
        long_ago = time.time() - 120
        os.utime(tmp_path / "site-started", (long_ago, long_ago))
        # ... and no task cluster runs: the server logs that once, on its first health check.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _warnings(loki):
            requests.get(f"{site.url}/api/v1/health/", timeout=10)
            time.sleep(0.1)
        file_log = tmp_path / "logs" / "monitorsite.log"

        def health_lines() -> list[str]:
            return [line for line in file_log.read_text().splitlines() if " monitorsite.health " in line]

        # Every line the file log has reaches Loki too.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_health_entries(loki)) < len(health_lines()):
            time.sleep(0.1)
        entries = _health_entries(loki)
        assert len(entries) >= 1, site.log("web.log")
        # The first minute's "starting" lines are info; the missing cluster is the warning.
        assert _warnings(loki)[0].labels == {
            "application": "monitorsite",
            "level": "warning",
            "logger": "monitorsite.health",
        }
        lines = health_lines()
        assert sorted(line.split(" ", 5)[5] for line in lines) == sorted(entry.line for entry in entries)
    finally:
        for process in site.processes:
            stop(process)


def _health_entries(loki: LoopbackLoki) -> list[Entry]:
    with loki.received:
        return [entry for entry in loki.entries if entry.labels.get("logger") == "monitorsite.health"]


def _warnings(loki: LoopbackLoki) -> list[Entry]:
    return [entry for entry in _health_entries(loki) if entry.labels.get("level") == "warning"]


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


@pytest.mark.django_db
def test_health_is_degraded_not_unavailable_while_loki_is_away() -> None:
    from django.utils import timezone
    from django_q.models import Success
    from rest_framework.test import APIClient

    from monitor_client.loki import LokiShippingHandler

    now = timezone.now()
    Success.objects.create(
        id="0" * 32, name="beat", func="monitorsite.tasks.cluster_heartbeat", started=now, stopped=now
    )
    handler = LokiShippingHandler(f"http://127.0.0.1:{free_port()}", "monitorsite", interval=0.05, timeout=1)
    logger = logging.getLogger("monitorsite.degraded-test")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        logger.warning("nobody listens")
        deadline = time.monotonic() + 30
        while handler.shipper.outage_since is None and time.monotonic() < deadline:
            time.sleep(0.02)
        response = APIClient().get("/api/v1/health/")
        body = response.json()
        assert (response.status_code, body["status"]) == (200, "degraded")
        shipping = body["components"]["log_shipping"]
        assert shipping["ok"] is False and shipping["vital"] is False
        assert shipping["queued"] == 1 and shipping["reason"].startswith("Loki unreachable since")
    finally:
        handler.shipper.close(timeout=0.2)
    assert APIClient().get("/api/v1/health/").json()["status"] == "ok"


@pytest.mark.django_db
def test_the_cockpit_says_log_shipping_off_without_loki_and_ok_with_one(
    admin_client: Any, loki: LoopbackLoki
) -> None:
    from monitor_client.loki import LokiShippingHandler
    from monitorsite import cockpit

    def shipping_words() -> str:
        return {name: words for name, words, _ in cockpit.build().health}["log shipping"]

    assert shipping_words() == "off"
    assert "log shipping</span>: off" in admin_client.get("/admin/").content.decode()
    handler = LokiShippingHandler(loki.url, "monitorsite", interval=0.05, timeout=1)
    try:
        assert shipping_words() == "ok"
    finally:
        handler.shipper.close(timeout=0.2)
    assert shipping_words() == "off"


@pytest.mark.django_db
def test_the_favicon_is_served_and_linked_from_every_admin_page(admin_client: Any) -> None:
    from django.test import Client

    response = Client().get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(response.streaming_content)
    icon = response.redirect_chain[-1][0]
    assert (
        f'<link rel="icon" type="image/svg+xml" href="{icon}">'
        in admin_client.get("/admin/").content.decode()
    )
