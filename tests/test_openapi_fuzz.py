"""An outside fuzzer holds the site to its own OpenAPI document.

schemathesis reads ``/api/schema/`` and sends what the document allows (and what
it forbids) to the site under its real server, with the task cluster running,
and checks every answer against the document: status codes, bodies, headers,
content types, that schema-valid requests are accepted and schema-violating ones
refused, that the key is not ignored, and so on (``--checks all``). It walks every
operation the document lists, so an endpoint another branch adds is fuzzed by
the same run with nothing to add here. The seed is fixed, so a run is repeatable.

The only help it gets is ``tests/fuzz_hooks.py``, for the rules the document can
state only in words (a reported time's bounds, free-form JSON's size).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import (
    ROOT,
    VENV_BIN,
    Site,
    copy_site_database,
    free_port,
    site_env,
    start_web,
    stop,
    wait_for,
)

SEED = 17
# Cases per operation in the fuzzing phase, and scenarios in the stateful one. The
# coverage phase (every boundary and every violation of each schema, about 14,000
# cases, two thirds of the run) is not counted by it: it runs whole, with the write key.
MAX_EXAMPLES = 30
READ_ONLY_EXAMPLES = 15


@pytest.fixture(scope="module")
def fuzzed_site(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[Site]:
    """The web server and the task cluster on a fresh copy of the migrated database."""
    tmp = tmp_path_factory.mktemp("fuzzed-site")
    copy_site_database(migrated_template, tmp / "trades.db")
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=site_env(tmp), tmp=tmp, processes=[])
    start_web(site, port)
    site.start_cluster()
    try:
        # Health answers 503 (documented) until the cluster's first heartbeat, about 30 s in;
        # the fuzzer counts any 5xx as a server error, so it starts once the site is whole.
        wait_for(f"{site.url}/api/v1/health/", accept=(200,), timeout=180)
        yield site
    finally:
        for process in site.processes:
            stop(process)


def documented_operations(site: Site) -> list[str]:
    document = requests.get(f"{site.url}/api/schema/?format=json", timeout=30).json()
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    )


def fuzz(site: Site, key: str, *, max_examples: int, name: str, phases: str) -> tuple[str, dict[str, Any]]:
    """Run ``st run`` against the site; its console output and its JSON report."""
    report = site.tmp / f"{name}.json"
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.fuzz_hooks", PYTHONPATH=str(ROOT))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [
            str(VENV_BIN / "st"),
            "run",
            f"{site.url}/api/schema/",
            "--checks=all",
            f"--phases={phases}",
            f"--seed={SEED}",
            f"--max-examples={max_examples}",
            "--workers=1",
            "--request-timeout=30",
            # What this catches is a request that hangs; its default (10 s) was once passed by a
            # 400 answered in 10.9 s while two full runs of the suite shared the two cores.
            "--max-response-time=20",
            f"--header=Authorization: Bearer {key}",
            "--report=json",
            f"--report-json-path={report}",
            "--output-truncate=false",
            # A failure is reported as found, not minimised: shrinking a 10 KB body took minutes.
            "--no-shrink",
        ],
        cwd=site.tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert report.exists(), output[-5000:]
    return output, json.loads(report.read_text())


def assert_found_nothing(site: Site, output: str, report: dict[str, Any], phases: str) -> None:
    operations = documented_operations(site)
    summary = next((line for line in reversed(output.splitlines()) if line.startswith("=")), "")
    print(f"schemathesis: {summary.strip('= ')}")
    assert report["failures"] == [] and report["errors"] == [], output[-20000:]
    assert report["exit_code"] == 0, output[-20000:]
    # Every operation of the document, not just the ones this file knew of.
    assert report["operations"]["selected"] == report["operations"]["tested"] == len(operations), (
        operations,
        report["operations"],
    )
    for phase in phases.split(","):
        assert report["phases"][phase]["status"] == "success", report["phases"]
    assert report["test_cases"]["generated"] >= len(operations) * 10, report["test_cases"]


def test_the_fuzzer_finds_nothing_with_a_bot_key(fuzzed_site: Site) -> None:
    key = fuzzed_site.create_bot("fuzzed-bot")
    phases = "examples,coverage,fuzzing,stateful"
    output, report = fuzz(fuzzed_site, key, max_examples=MAX_EXAMPLES, name="bot-key", phases=phases)
    assert_found_nothing(fuzzed_site, output, report, "coverage,fuzzing,stateful")
    # It did write through the API: trades the document allowed were stored.
    listed = requests.get(
        f"{fuzzed_site.url}/api/v1/trades/", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).json()
    assert listed["results"], "no fuzzed trade was accepted"


def test_the_fuzzer_finds_nothing_with_a_read_only_key(fuzzed_site: Site) -> None:
    key = fuzzed_site.create_bot("read-only-bot", "--read-only")
    # Every write answers 403 (documented); the fuzzer warns that it saw no other answer.
    phases = "fuzzing,stateful"
    output, report = fuzz(
        fuzzed_site, key, max_examples=READ_ONLY_EXAMPLES, name="read-only-key", phases=phases
    )
    assert_found_nothing(fuzzed_site, output, report, phases)
