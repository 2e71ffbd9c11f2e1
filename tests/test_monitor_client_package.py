"""monitor_client installs on the bot's machine on its own: stdlib, requests and python-logging-loki only."""

from __future__ import annotations

import ast
import sys
import tomllib

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
