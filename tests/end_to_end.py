"""The whole stack on loopback for ``test_end_to_end.py``: the site, its task cluster,
the demo bot, and what they talk to, each started as users run it and always stopped.

The demo bot's own file log is the record the site is checked against: it logs
``Fill <external_id>: ...`` after ``record_trade`` returned for that fill.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.harness import (
    ROOT,
    VENV_BIN,
    Site,
    copy_site_database,
    free_port,
    site_env,
    site_queue_length,
    start_web,
    stop,
    wait_for,
)

T = TypeVar("T")
BOT = "demo-bot"
FILL = re.compile(r" Fill (demo-[\w-]+): ")
SESSION_CLOSED = re.compile(r"Session closed: (\d+) fills")
SITE_ONLY = ("DJANGO_", "DATABASE_", "DISCORD_", "LOKI_", "MONITOR_", "AWS_", "CLOUD_", "LOG_DIR")


def eventually(check: Callable[[], T], what: str, timeout: float = 60, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(every)


@dataclass
class Demo:
    """One run of ``python -m monitor_client.demo``, in a process group of its own."""

    process: subprocess.Popen[bytes]
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def finish(self, timeout: float = 60) -> str:
        """Stop it as Ctrl-C would (it closes positions and ships its spool); its output."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"the demo did not stop within {timeout} s") from exc
        assert code == 0, f"the demo exited with {code}"
        return self.text()

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power switch on the process would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Stack:
    """The site (database, web server, task cluster) plus the demo bot, on loopback ports."""

    tmp: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    web: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    demos: list[Demo] = field(default_factory=list)
    key: str = ""

    @property
    def site(self) -> Site:
        return Site(url=self.url, env=self.env, tmp=self.tmp, processes=self.processes)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bot_log(self) -> Path:
        return self.tmp / "bot-logs" / "trading-bot.log"

    @property
    def spool(self) -> Path:
        return self.tmp / "spool"

    def prepare(self, template: Path) -> None:
        copy_site_database(template, self.tmp / "trades.db")
        self.key = self.site.create_bot(BOT)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.site.manage(*args, check=check)

    # --- the site -----------------------------------------------------------------

    def start_web(self) -> None:
        self.web = start_web(self.site, self.port)  # as scripts/serve.sh runs it
        wait_for(f"{self.url}/api/v1/health/", timeout=90)

    def stop_web(self) -> None:
        assert self.web is not None
        stop(self.web)
        self.web = None

    def start_cluster(self) -> subprocess.Popen[bytes]:
        return self.site.start_cluster()

    # --- the bot ------------------------------------------------------------------

    def start_demo(self, *args: str) -> Demo:
        # The bot's machine knows the site's URL, its key and Loki; nothing of the site's own settings.
        env = {k: v for k, v in os.environ.items() if not k.startswith(SITE_ONLY)}
        env.update(
            MONITOR_URL=self.url,
            MONITOR_KEY=self.key,
            LOG_DIR=str(self.tmp / "bot-logs"),
            LOKI_URL=self.env.get("LOKI_URL", ""),
            PYTHONUNBUFFERED="1",
        )
        output = self.tmp / f"demo-{len(self.demos) + 1}.out"
        command = [str(VENV_BIN / "python"), "-m", "monitor_client.demo", "--spool-dir", str(self.spool)]
        with open(output, "wb") as handle:
            process = subprocess.Popen(
                [*command, *args],
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        demo = Demo(process, output)
        self.demos.append(demo)
        return demo

    def bot_log_text(self) -> str:
        """The demo's file log (all runs); empty before its first record."""
        try:
            return self.bot_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logged_fills(self) -> list[str]:
        """External ids of every fill the demo logged after recording it, in order, all runs."""
        return FILL.findall(self.bot_log_text())

    # --- the database -------------------------------------------------------------

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        return self.site.sql(statement, *params)

    def stored_fills(self) -> list[str]:
        return [
            external_id
            for (external_id,) in self.sql(
                "SELECT external_id FROM trades_trade"
                " WHERE bot_id = (SELECT id FROM trades_bot WHERE name = ?) ORDER BY id",
                BOT,
            )
        ]

    # --- cleaning up --------------------------------------------------------------

    def stop_all(self) -> None:
        # The bot first (it may still be shipping), then the cluster and the web server.
        for demo in self.demos:
            stop(demo.process)
        for process in reversed(self.processes):
            stop(process)

    def logs(self) -> str:
        """The tail of every process's log, for a failing test's report."""
        parts = []
        found = [*self.tmp.glob("*.log"), *self.tmp.glob("*.out"), *self.tmp.glob("*-logs/*.log")]
        for path in sorted(found):
            parts.append(f"----- {path.name} -----\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


def new_stack(tmp: Path, **env: str) -> Stack:
    return Stack(tmp=tmp, env=site_env(tmp, **env))


def assert_each_fill_stored_once(stack: Stack, logged: list[str], stored: list[str]) -> None:
    assert len(logged) == len(set(logged)), "the demo logged an external id twice"
    assert len(stored) == len(set(stored))
    missing = sorted(set(logged) - set(stored))
    unexpected = sorted(set(stored) - set(logged))
    assert not missing, f"{len(missing)} recorded fills never reached the site: {missing[:5]}"
    assert not unexpected, f"{len(unexpected)} stored trades the demo never logged: {unexpected[:5]}"


# --- alerts ---------------------------------------------------------------------

# Room for every alert of a run in the channel's window, so each arrives as its own
# message: the default (5 a minute) folds the overflow into a digest, which is
# tested where the rate limit is (tests/test_alert_delivery.py). No daily summary:
# from 16:05 on a trading day it would join a run's messages at a moment of its own
# choosing (tests/test_alert_summary.py tests it).
ALERTS_YAML = """\
channels:
  discord:
    kind: discord
    min_level: info
    enabled: true
    rate_limit_per_minute: 100
daily_summary:
  enabled: false
"""


def allow_alert_bursts(stack: Stack) -> None:
    """Raise the Discord channel's rate limit (and turn the daily summary off) the way an
    operator does: ``import_alerts``."""
    path = stack.tmp / "alerts.yaml"
    path.write_text(ALERTS_YAML)
    stack.manage("import_alerts", str(path))


def cluster_idle(stack: Stack) -> bool:
    """Nothing queued for the task cluster and no alert waiting to be sent."""
    queued = site_queue_length(stack.env)
    unsent_states = "('pending', 'sending', 'held')"
    ((unsent,),) = stack.sql(f"SELECT COUNT(*) FROM alerts_alert WHERE state IN {unsent_states}")
    return queued == 0 and unsent == 0
