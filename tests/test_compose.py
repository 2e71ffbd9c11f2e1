"""docker-compose.yml, the Dockerfile and loki-config.yaml, checked without a Docker engine.

Debian's docker-compose (1.29, installed by scripts/test.sh) parses, interpolates
and validates the file with ``config`` and needs no engine for that.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import ROOT

SERVICES = {"web", "qcluster", "loki", "grafana"}


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` over the repository, with .env made from .env.example."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/test.sh installs Debian's package)"
    # A project folder of links to the repository, so the test never writes a .env
    # into the developer's checkout.
    for entry in ROOT.iterdir():
        if entry.name not in (".env", ".git", ".venv", "data"):
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("GRAFANA_", "LOKI_"))}
    return subprocess.run(
        [binary, "-f", "docker-compose.yml", "config"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    result = compose_config(tmp_path, GRAFANA_PASSWORD="test-password")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid_and_has_the_four_services(config: dict[str, Any]) -> None:
    services = config["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    assert set(config["volumes"]) >= {"site-data", "trades-db", "loki-data", "grafana-data"}
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "test-password"
    assert services["grafana"]["environment"]["GF_PLUGINS_PREINSTALL_SYNC"] == "frser-sqlite-datasource"


def test_grafana_password_has_no_default(tmp_path: Path) -> None:
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert "GRAFANA_PASSWORD" in result.stderr


def test_only_grafana_is_published_beyond_this_machine(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            host_ip = port["host_ip"] if isinstance(port, dict) else str(port).split(":")[0]
            if name == "grafana":
                continue
            assert host_ip == "127.0.0.1", f"{name} publishes {port}"


def test_health_checks(config: dict[str, Any]) -> None:
    services = config["services"]
    assert "/api/v1/health/" in " ".join(services["web"]["healthcheck"]["test"])
    assert "/ready" in " ".join(services["loki"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])
    assert services["qcluster"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_web_runs_the_same_web_server_command_as_serve_sh(config: dict[str, Any]) -> None:
    serve = (ROOT / "scripts" / "serve.sh").read_text()
    (line,) = [line for line in serve.splitlines() if line.startswith("setsid") and "serve" in line]
    words = shlex.split(line.split("&")[0])
    command = " ".join(words[words.index(next(w for w in words if w.endswith("python"))) :])
    command = command.replace(".venv/bin/python", "python")
    web = config["services"]["web"]["command"]
    web = web if isinstance(web, str) else " ".join(web)
    assert ("exec " + command) in web
    # And what scripts/start.sh runs before it, in the same order.
    start = (ROOT / "scripts" / "start.sh").read_text()
    steps = re.findall(r"manage\.py (\w+)", start)
    assert steps and re.findall(r"manage\.py (\w+)", web) == steps


def test_every_mounted_path_exists_in_the_repository() -> None:
    mounts = [
        volume.split(":")[0]
        for service in raw_compose()["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith((".", "/"))
    ]
    assert mounts
    for mount in mounts:
        assert (ROOT / mount).exists(), mount


def test_grafana_and_the_site_share_the_database_folder(config: dict[str, Any]) -> None:
    services = config["services"]

    def target(service: str, volume: str) -> str:
        (mount,) = [v for v in services[service]["volumes"] if str(v).startswith(volume + ":")]
        return mount.split(":")[1]

    database = services["web"]["environment"]["DATABASE_PATH"]
    assert os.path.dirname(database) == target("web", "trades-db") == target("qcluster", "trades-db")
    sources = yaml.safe_load((ROOT / "grafana/provisioning/datasources/datasources.yaml").read_text())
    (sqlite,) = [s for s in sources["datasources"] if s["type"] == "frser-sqlite-datasource"]
    assert os.path.dirname(sqlite["jsonData"]["path"]) == target("grafana", "trades-db")
    assert os.path.basename(sqlite["jsonData"]["path"]) == os.path.basename(database)
    assert any(v.endswith(":/etc/grafana/provisioning:ro") for v in services["grafana"]["volumes"])


def test_dockerfile_copies_only_what_exists_and_ignores_local_state() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copies
    for words in copies:
        sources = [w for w in words[:-1] if not w.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    for secret_or_state in (".env*", "data", ".venv", ".git"):
        assert secret_or_state in ignored
    assert re.search(r"^USER app$", dockerfile, re.M)  # not root


def test_loki_keeps_30_days_on_the_filesystem() -> None:
    loki = yaml.safe_load((ROOT / "loki-config.yaml").read_text())
    assert loki["limits_config"]["retention_period"] == "720h"
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"
    assert loki["common"]["storage"]["filesystem"]["chunks_directory"].startswith("/loki")
    (schema,) = loki["schema_config"]["configs"]
    assert schema["object_store"] == "filesystem"
