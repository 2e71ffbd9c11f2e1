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
# The "postgres" profile's services: PostgreSQL and Redis instead of SQLite and the ORM broker.
PROFILE_SERVICES = {"postgres", "redis"}
# What docs/DEPLOYMENT_GUIDE.md and the file's own comments tell the user to put in .env.
POSTGRES_ENV = {
    "COMPOSE_PROFILES": "postgres",
    "POSTGRES_PASSWORD": "pg-test-password",
    "GRAFANA_DB_PASSWORD": "reader-test-password",
    "REDIS_PASSWORD": "redis-test-password",
    "DATABASE_URL": "postgres://monitor:pg-test-password@postgres:5432/monitor",
    "REDIS_URL": "redis://:redis-test-password@redis:6379/0",
    "GRAFANA_PROVISIONING": "./grafana/provisioning-postgres",
}


def compose_config(
    tmp_path: Path, *, dotenv: dict[str, str] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` over the repository, with .env made from .env.example
    (and ``dotenv`` appended, as a user configures the "postgres" profile)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/test.sh installs Debian's package)"
    # A project folder of links to the repository, so the test never writes a .env
    # into the developer's checkout.
    for entry in ROOT.iterdir():
        if entry.name not in (".env", ".git", ".venv", "data"):
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    if dotenv:
        with open(tmp_path / ".env", "a") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in dotenv.items())
    secret_or_switch = ("GRAFANA_", "LOKI_", "POSTGRES_", "REDIS_", "DATABASE_", "COMPOSE_")
    clean = {key: value for key, value in os.environ.items() if not key.startswith(secret_or_switch)}
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


@pytest.fixture
def postgres_config(tmp_path: Path) -> dict[str, Any]:
    result = compose_config(tmp_path, dotenv=POSTGRES_ENV, GRAFANA_PASSWORD="test-password")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_and_has_the_four_services(config: dict[str, Any]) -> None:
    services = config["services"]
    # docker-compose config lists a profile's services too; without the profile they do not start.
    assert set(services) == SERVICES | PROFILE_SERVICES
    for name in SERVICES:
        assert "profiles" not in services[name], name
    for name in PROFILE_SERVICES:
        assert services[name]["profiles"] == ["postgres"], name
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
    # Compose runs the task cluster as a service of its own (qcluster), not forked from the web server.
    assert " --with-cluster" in command
    command = command.replace(" --with-cluster", "")
    qcluster = config["services"]["qcluster"]["command"]
    assert (qcluster if isinstance(qcluster, str) else " ".join(qcluster)) == "python manage.py qcluster"
    web = config["services"]["web"]["command"]
    web = web if isinstance(web, str) else " ".join(web)
    assert ("exec " + command) in web
    # And what scripts/start.sh runs before it, in the same order.
    start = (ROOT / "scripts" / "start.sh").read_text()
    steps = re.findall(r"manage\.py (\w+)", start)
    assert steps and re.findall(r"manage\.py (\w+)", web) == steps


def test_every_mounted_path_exists_in_the_repository() -> None:
    # A path chosen by a variable: its default, and every value the docs give it.
    chosen = re.compile(r"^\$\{(\w+):-([^}]*)\}")
    mounts = [
        chosen.sub(r"\2", volume).split(":")[0]
        for service in raw_compose()["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith((".", "/", "${"))
    ]
    assert "./grafana/provisioning" in mounts
    mounts.append(POSTGRES_ENV["GRAFANA_PROVISIONING"])
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


# --- the "postgres" profile ------------------------------------------------------------


def test_postgres_profile_runs_postgres_and_redis_with_volumes_and_health_checks(
    postgres_config: dict[str, Any],
) -> None:
    services = postgres_config["services"]
    postgres, redis = services["postgres"], services["redis"]
    image, tag = postgres["image"].split(":")
    assert image == "postgres" and int(tag.split(".")[0]) >= 15
    assert redis["image"].split(":")[0] == "redis"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    # Named volumes where each keeps its data, so a restart or an upgrade keeps it.
    assert "postgres-data:/var/lib/postgresql/data:rw" in postgres["volumes"]
    assert "redis-data:/data:rw" in redis["volumes"]
    assert {"postgres-data", "redis-data"} <= set(postgres_config["volumes"])
    assert "--appendonly yes" in " ".join(redis["command"])
    # Reached on the compose network only.
    assert "ports" not in postgres and "ports" not in redis


def test_postgres_profile_points_the_site_and_grafana_at_them(postgres_config: dict[str, Any]) -> None:
    services = postgres_config["services"]
    postgres = services["postgres"]["environment"]
    for name in ("web", "qcluster"):
        environment = services[name]["environment"]
        url = environment["DATABASE_URL"]
        assert (
            url
            == f"postgres://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
        )
        assert (
            environment["REDIS_URL"]
            == f"redis://:{services['redis']['environment']['REDIS_PASSWORD']}@redis:6379/0"
        )
    grafana = services["grafana"]
    (provisioning,) = [v for v in grafana["volumes"] if v.endswith(":/etc/grafana/provisioning:ro")]
    assert provisioning.split(":")[0].endswith("/grafana/provisioning-postgres")
    assert grafana["environment"]["GRAFANA_DB_PASSWORD"] == POSTGRES_ENV["GRAFANA_DB_PASSWORD"]
    sources = yaml.safe_load(
        (ROOT / "grafana/provisioning-postgres/datasources/datasources.yaml").read_text()
    )
    (source,) = [s for s in sources["datasources"] if s["type"] == "grafana-postgresql-datasource"]
    assert source["url"] == "postgres:5432" and source["jsonData"]["database"] == postgres["POSTGRES_DB"]
    # The read-only role is made when the database is first created, with Grafana's password.
    assert any(
        v.endswith(":/docker-entrypoint-initdb.d/grafana_reader.sh:ro")
        for v in services["postgres"]["volumes"]
    )
    assert services["postgres"]["environment"]["GRAFANA_DB_PASSWORD"] == POSTGRES_ENV["GRAFANA_DB_PASSWORD"]


def test_no_password_has_a_default(tmp_path: Path) -> None:
    """Every password comes from the environment (.env), and none has a value of its own."""
    raw = (ROOT / "docker-compose.yml").read_text()
    found = re.findall(r"^\s+(\w*PASSWORD\w*|REDISCLI_AUTH):\s*(.*)$", raw, re.M)
    names = {name for name, _ in found}
    assert names >= {"GF_SECURITY_ADMIN_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"}
    for name, value in found:
        assert re.fullmatch(r"\$\{(\w+)(:-|:\?[^}]*)\}(\s*#.*)?", value), f"{name}: {value}"
        assert ":-}" in value or ":?" in value, f"{name} has a default: {value}"
    # Unset, each stays empty: nothing is made up.
    result = compose_config(tmp_path, dotenv={"COMPOSE_PROFILES": "postgres"}, GRAFANA_PASSWORD="x")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == ""
    assert services["postgres"]["environment"]["GRAFANA_DB_PASSWORD"] == ""
    assert services["redis"]["environment"]["REDIS_PASSWORD"] == ""


def _start(command: list[str], stand_in: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A service's start command with its server replaced by ``echo started``, run by sh."""
    assert command[:2] == ["sh", "-c"]
    # What the engine runs: compose's $$ is one $.
    script = command[2].replace("$$", "$")
    assert stand_in in script
    script = script.replace(stand_in, "echo started")
    return subprocess.run(
        ["sh", "-c", script],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("service", "variable", "server"),
    [
        ("postgres", "POSTGRES_PASSWORD", "docker-entrypoint.sh postgres"),
        ("redis", "REDIS_PASSWORD", 'redis-server --appendonly yes --requirepass "$REDIS_PASSWORD"'),
    ],
)
def test_a_service_without_its_password_refuses_to_start_naming_the_variable(
    tmp_path: Path, service: str, variable: str, server: str
) -> None:
    """docker-compose interpolates a profile's services whether the profile is used or not, so
    ``${POSTGRES_PASSWORD:?}`` would stop the SQLite stack too: the services refuse instead."""
    result = compose_config(tmp_path, dotenv={"COMPOSE_PROFILES": "postgres"}, GRAFANA_PASSWORD="x")
    command = yaml.safe_load(result.stdout)["services"][service]["command"]
    refused = _start(command, server, **{variable: ""})
    assert refused.returncode != 0 and "started" not in refused.stdout
    assert refused.stderr.strip() == f"set {variable} in .env (see .env.example)"
    started = _start(command, server, **{variable: "secret"})
    assert started.returncode == 0 and started.stdout.strip() == "started"


def test_the_reader_role_script_refuses_an_empty_password() -> None:
    script = ROOT / "grafana" / "postgres" / "grafana_reader.sh"
    result = subprocess.run(
        ["/bin/sh", str(script)],
        env={
            "PATH": "/nonexistent",
            "GRAFANA_DB_PASSWORD": "",
            "POSTGRES_USER": "monitor",
            "POSTGRES_DB": "monitor",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "set GRAFANA_DB_PASSWORD in .env" in result.stderr
    assert "psql" not in result.stderr  # refused before anything ran


def test_the_sqlite_stack_needs_none_of_the_profiles_variables(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in ("web", "qcluster"):
        # Empty (as .env.example has them) or absent: the site stays on SQLite and the ORM broker.
        assert not services[name]["environment"].get("DATABASE_URL")
        assert not services[name]["environment"].get("REDIS_URL")
    (provisioning,) = [
        v for v in services["grafana"]["volumes"] if v.endswith(":/etc/grafana/provisioning:ro")
    ]
    assert provisioning.split(":")[0].endswith("/grafana/provisioning")
