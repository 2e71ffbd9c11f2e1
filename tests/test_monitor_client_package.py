"""monitor_client installs on the bot's machine on its own: stdlib, requests and python-logging-loki only."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.harness import ROOT

PACKAGE = ROOT / "monitor_client"
ALLOWED = {"requests", "logging_loki", "monitor_client"}


def test_the_package_imports_only_the_stdlib_requests_and_python_logging_loki() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ALLOWED, f"{path.name} imports {name}"


def test_its_own_pyproject_declares_those_dependencies_at_the_sites_versions() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    declared = {dependency.split("=")[0].split(">")[0].strip() for dependency in project["dependencies"]}
    assert declared == {"python-logging-loki", "requests"}
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert "python-logging-loki==" + pins["python-logging-loki"] in project["dependencies"]
    requests_spec = next(d for d in project["dependencies"] if d.startswith("requests"))
    low, high = requests_spec.split(">=")[1].split(",<")
    assert tuple(map(int, low.split("."))) <= tuple(map(int, pins["requests"].split(".")))[:2]
    assert int(pins["requests"].split(".")[0]) < int(high)


def test_the_built_wheel_holds_every_module_and_imports_on_its_own(tmp_path: Path) -> None:
    """What ``pip install ./monitor_client`` installs: every module (the wire contract too),
    importable from the wheel alone, without the repository or Django."""
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(source), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("monitor_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        modules = {name for name in archive.namelist() if name.endswith(".py")}
    assert modules == {f"monitor_client/{path.name}" for path in PACKAGE.glob("*.py")}
    assert "monitor_client/wire.py" in modules
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import monitor_client, monitor_client.wire as wire; "
        "assert wire.__file__.startswith(sys.argv[1]), wire.__file__; "
        "assert 'django' not in sys.modules; print(wire.MAX_BATCH)"
    )
    env = {
        key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
    }
    result = subprocess.run(
        [sys.executable, "-c", code, str(wheel)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1000"
