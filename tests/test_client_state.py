"""The bot's state and its host's figures, as ``monitor_client`` sends them with each heartbeat.

The host figures are judged against what Linux itself says (``/proc``, ``statvfs``), with
psutil hidden and, when it can be imported, with psutil; the heartbeats reach a loopback
stand-in of the site, which keeps each body as sent. No Django here: the client has none.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitor_client import Monitor, wire
from monitor_client.host import MIN_CPU_WINDOW, HostSampler
from tests.harness import ROOT
from tests.loopback_http import Answer, LoopbackServer, Request
from tests.test_client import eventually

# Quick retries, as tests/test_client.py has them.
FAST = {"backoff_base": 0.05, "backoff_max": 0.5, "auth_retry": 0.5, "linger": 0.0}
# Free disk space and available memory move while a test runs (other tests write files, start
# processes): the sampler's reading and the test's own, taken a moment apart, may differ by this.
MOVING_BYTES = 256 * 1024 * 1024
# psutil is not a requirement: its path is judged where it is installed.
SOURCES = ["stdlib", *(["psutil"] if importlib.util.find_spec("psutil") else [])]


def meminfo_bytes(name: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {name} in /proc/meminfo")


def vm_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def sampler_for(source: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> HostSampler:
    """A sampler left to choose (``use_psutil=None``): with psutil hidden for "stdlib"."""
    if source == "stdlib":
        monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    sampler = HostSampler(folder)
    return sampler


# --- the host figures -------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_the_host_figures_are_what_linux_says(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampler = sampler_for(source, tmp_path, monkeypatch)
    figures = sampler.sample()
    assert sampler.source == source
    assert set(figures) == set(wire.HOST_FIELDS), "every figure, on Linux"
    assert figures["pid"] == os.getpid()
    assert figures["memory_total_bytes"] == meminfo_bytes("MemTotal")
    assert abs(figures["memory_available_bytes"] - meminfo_bytes("MemAvailable")) <= MOVING_BYTES
    disk = shutil.disk_usage(tmp_path)
    assert figures["disk_total_bytes"] == disk.total
    assert abs(figures["disk_free_bytes"] - disk.free) <= MOVING_BYTES
    assert abs(figures["rss_bytes"] - vm_rss_bytes()) <= 16 * 1024 * 1024
    assert 0 <= figures["cpu_percent"] <= 100 * (os.cpu_count() or 1)
    assert all(type(figures[name]) is int for name in wire.HOST_FIELDS if name.endswith(("bytes", "pid")))
    # Figures as the heartbeat's JSON carries them.
    assert json.loads(json.dumps(figures)) == figures


STARTED_AT = """
import json, sys, time
if sys.argv[1] == "stdlib":
    sys.modules["psutil"] = None
from monitor_client.host import HostSampler
sampler = HostSampler(".")
first, second = sampler.sample(), sampler.sample()
print(json.dumps({"source": sampler.source, "first": first, "second": second}))
"""


@pytest.mark.parametrize("source", SOURCES)
def test_started_at_is_when_the_process_started_in_utc_and_stays_the_same(source: str) -> None:
    before = dt.datetime.now(dt.UTC)
    result = subprocess.run(
        [sys.executable, "-c", STARTED_AT, source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    after = dt.datetime.now(dt.UTC)
    answer = json.loads(result.stdout)
    assert answer["source"] == source
    started = dt.datetime.fromisoformat(answer["first"]["started_at"])
    assert started.utcoffset() == dt.timedelta(0)
    # Linux keeps its boot time in whole seconds: the start is known within one.
    assert before - dt.timedelta(seconds=1) <= started <= after
    assert answer["second"]["started_at"] == answer["first"]["started_at"]
    assert answer["first"]["pid"] == answer["second"]["pid"] != os.getpid()


CPU = """
import json, sys, threading, time
if sys.argv[1] == "stdlib":
    sys.modules["psutil"] = None
from monitor_client.host import HostSampler

def busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

def window(activity):
    sampler.sample()
    wall, cpu = time.monotonic(), time.process_time()
    activity(0.4)
    figure = sampler.sample()["cpu_percent"]
    reference = (time.process_time() - cpu) / (time.monotonic() - wall) * 100
    return figure, reference

sampler = HostSampler(".")
windows = {"busy": [], "idle": []}
deadline = time.monotonic() + 120
# A loaded machine may give the loop less than half a core for a while (load 9 on 2 cores gives it
# about a fifth): windows until the kernel gives it more than half of one.
while time.monotonic() < deadline:
    windows["busy"].append(window(busy))
    if windows["busy"][-1][0] > 50:
        break
# Sleeping is the activity measured here, not a wait for something to happen.
windows["idle"].append(window(lambda s: threading.Event().wait(s)))
print(json.dumps(windows))
"""


@pytest.mark.parametrize("source", SOURCES)
def test_cpu_percent_of_a_busy_process_and_of_a_sleeping_one(source: str) -> None:
    """Measured over the time between two samples, without waiting in the sampler: a process
    looping in one thread reads above 50, a sleeping one below 20, each as its own CPU clock
    says (``time.process_time``) within 5 points."""
    result = subprocess.run(
        [sys.executable, "-c", CPU, source], cwd=ROOT, capture_output=True, text=True, timeout=180, check=True
    )
    windows = json.loads(result.stdout)
    assert windows["busy"][-1][0] > 50, windows
    (idle_window,) = windows["idle"]
    assert idle_window[0] < 20, windows
    for figure, reference in windows["busy"] + windows["idle"]:
        assert abs(figure - reference) <= 5, windows


def test_the_first_cpu_figure_is_the_average_since_the_start_and_a_burst_repeats_the_last(
    tmp_path: Path,
) -> None:
    """The window's rule at its boundary: samples closer than ``MIN_CPU_WINDOW`` give the last
    figure again; at exactly it, a new one."""
    now = [1000.0]
    cpu = [3.0]
    sampler = HostSampler(tmp_path, use_psutil=False, clock=lambda: now[0])
    sampler._cpu_seconds = lambda: cpu[0]  # type: ignore[method-assign]
    started = time.time() - 30
    sampler._start_epoch = lambda: started  # type: ignore[method-assign]
    assert sampler.sample()["cpu_percent"] == pytest.approx(10.0, abs=0.2)  # 3 s of CPU in 30 s

    tick = 2**-10  # exact in binary, as MIN_CPU_WINDOW is: the window meets it exactly
    now[0] += MIN_CPU_WINDOW - tick
    cpu[0] += MIN_CPU_WINDOW - tick  # a busy core, but too short a window: the last figure
    assert sampler.sample()["cpu_percent"] == pytest.approx(10.0, abs=0.2)
    now[0] += tick
    cpu[0] += tick  # the window reaches MIN_CPU_WINDOW: one busy core since the first sample
    assert sampler.sample()["cpu_percent"] == 100.0
    now[0] += 2.0
    cpu[0] += 0.5
    assert sampler.sample()["cpu_percent"] == 25.0


def test_without_proc_a_figure_linux_alone_gives_is_left_out_never_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As on a platform without ``/proc``, and a working folder that went away: what cannot be had
    is left out (said once at debug level), and sampling never raises."""
    caplog.set_level(logging.DEBUG, logger="monitor_client")
    now = [1000.0]
    sampler = HostSampler(
        tmp_path / "gone", use_psutil=False, proc=tmp_path / "no-proc", clock=lambda: now[0]
    )
    first = sampler.sample()
    # No start time: no average since it, and no CPU figure until a second sample.
    assert set(first) == {"pid", "memory_total_bytes"}
    assert first["memory_total_bytes"] == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    now[0] += MIN_CPU_WINDOW
    second = sampler.sample()
    assert set(second) == {"pid", "memory_total_bytes", "cpu_percent"}
    assert [r.message for r in caplog.records].count(
        "Host figure disk left out of heartbeats: FileNotFoundError: "
        f"[Errno 2] No such file or directory: '{tmp_path / 'gone'}'"
    ) == 1, caplog.text


def fake_proc(root: Path, mem_total_kb: int, stat: str = "1 (bot) S 0" + " 0" * 17 + " 250 0\n") -> Path:
    (root / "self").mkdir(parents=True)
    (root / "self" / "stat").write_text(stat)
    (root / "self" / "statm").write_text("1000 200 100 1 0 50 0\n")
    (root / "stat").write_text("cpu 1 2 3\nbtime 1767225600\n")
    (root / "meminfo").write_text(f"MemTotal: {mem_total_kb} kB\nMemFree: 1 kB\nMemAvailable: 1024 kB\n")
    return root


def test_a_figure_past_what_the_site_takes_is_left_out_not_sent(tmp_path: Path) -> None:
    """A reading gone wrong would get the whole heartbeat refused: a figure past the wire's bound
    is left out, one at the bound is sent."""
    at_bound = fake_proc(tmp_path / "at", wire.MAX_HOST_BYTES // 1024)
    figures = HostSampler(tmp_path, use_psutil=False, proc=at_bound).sample()
    assert figures["memory_total_bytes"] == wire.MAX_HOST_BYTES
    assert figures["memory_available_bytes"] == 1024 * 1024
    assert figures["rss_bytes"] == 200 * os.sysconf("SC_PAGE_SIZE")
    ticks = os.sysconf("SC_CLK_TCK")
    assert figures["started_at"] == dt.datetime.fromtimestamp(1767225600 + 250 / ticks, dt.UTC).isoformat(
        timespec="milliseconds"
    )
    past = fake_proc(tmp_path / "past", wire.MAX_HOST_BYTES // 1024 + 1)
    figures = HostSampler(tmp_path, use_psutil=False, proc=past).sample()
    assert "memory_total_bytes" not in figures
    assert figures["memory_available_bytes"] == 1024 * 1024


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_start_time(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", 1024, stat="1 (my bot (v2)) S 0" + " 0" * 17 + " 250 0\n")
    started = HostSampler(tmp_path, use_psutil=False, proc=proc).sample()["started_at"]
    ticks = os.sysconf("SC_CLK_TCK")
    assert started == dt.datetime.fromtimestamp(1767225600 + 250 / ticks, dt.UTC).isoformat(
        timespec="milliseconds"
    )


# --- the heartbeat, through a loopback site ------------------------------------------


class HeartbeatSite(LoopbackServer):
    """A stand-in for the site's API: keeps each heartbeat as sent, stores trades and events."""

    def beats(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r.body) for r in self.requests if r.path.endswith("/heartbeat/")]

    def raw_beats(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/heartbeat/")]

    def answer(self, request: Request) -> Answer:
        if request.path.endswith("/trades/"):
            body = json.loads(request.body)
            count = len(body) if isinstance(body, list) else 1
            return Answer(201, json.dumps({"created": count, "duplicates": 0}).encode())
        return Answer(201 if request.path.endswith("/events/") else 200, b"{}")


@pytest.fixture
def site() -> Iterator[HeartbeatSite]:
    server = HeartbeatSite().start()
    yield server
    server.stop()


@pytest.fixture
def monitor(site: HeartbeatSite, tmp_path: Path) -> Iterator[Monitor]:
    made = Monitor(site.base, "key", tmp_path / "spool", **FAST)  # type: ignore[arg-type]
    yield made
    made.close(timeout=2)


POSITIONS = [
    ("AAPL", 100, Decimal("187.25"), 190.5),
    {"symbol": "tsla", "quantity": -20, "avg_price": 251, "market_price": Decimal("248.10")},
]
SENT = [
    {"symbol": "AAPL", "quantity": 100, "avg_price": 187.25, "market_price": 190.5},
    {"symbol": "TSLA", "quantity": -20, "avg_price": 251, "market_price": 248.1},
]


def test_the_heartbeat_carries_the_positions_the_account_and_the_host(
    site: HeartbeatSite, monitor: Monitor
) -> None:
    monitor.heartbeat("starting")
    first = eventually(site.beats, what="a first heartbeat")[0]
    assert set(first) == {"status", "details", "host"}, "no state reported: none sent"
    assert set(first["host"]) == set(wire.HOST_FIELDS)
    assert first["host"]["pid"] == os.getpid()

    monitor.report_positions(POSITIONS, equity=Decimal("100250.50"), cash=-50)
    monitor.heartbeat("running", strategy="momentum")
    beat = eventually(lambda: site.beats()[1:], what="the heartbeat with the state")[0]
    assert {k: v for k, v in beat.items() if k != "host"} == {
        "status": "running",
        "details": {"strategy": "momentum"},
        "positions": SENT,
        "equity": 100250.5,
        "cash": -50,
    }
    assert set(beat["host"]) == set(wire.HOST_FIELDS)
    raw = site.raw_beats()[1]
    assert b'"equity": 100250.5' in raw and b'"market_price": 248.1' in raw, "numbers as JSON numbers"

    # The state stays with later heartbeats; an empty list says flat.
    monitor.heartbeat("paused", equity=99000)
    paused = eventually(lambda: site.beats()[2:], what="the paused heartbeat")[0]
    assert (paused["status"], paused["positions"], paused["equity"], paused["cash"]) == (
        "paused",
        SENT,
        99000,
        -50,
    )
    monitor.heartbeat("running", positions=[])
    flat = eventually(lambda: site.beats()[3:], what="the flat heartbeat")[0]
    assert flat["positions"] == [] and flat["equity"] == 99000


def test_report_positions_is_sent_at_once_when_heartbeats_run_and_repeated_by_them(
    site: HeartbeatSite, monitor: Monitor
) -> None:
    monitor.report_positions([("NVDA", 5, 128, 130)], equity=1000)
    assert site.beats() == [], "kept for the next heartbeat: none runs yet"
    monitor.start_heartbeats(every=60)
    first = eventually(site.beats, what="the first heartbeat")[0]
    assert first["positions"] == [{"symbol": "NVDA", "quantity": 5, "avg_price": 128, "market_price": 130}]
    # Well before the next period: the report goes at once.
    monitor.report_positions([("NVDA", 5, 128, 131.5)], equity=1007.5)
    second = eventually(lambda: site.beats()[1:], timeout=10, what="the report sent at once")[0]
    assert second["positions"][0]["market_price"] == 131.5 and second["equity"] == 1007.5
    monitor.stop_heartbeats()

    monitor.start_heartbeats(every=0.05)
    count = len(site.beats())
    repeated = eventually(lambda: site.beats()[count + 1 :], what="repeated heartbeats")
    assert all(beat["positions"] == second["positions"] for beat in repeated)


def test_a_malformed_report_raises_at_once_and_changes_nothing(site: HeartbeatSite, monitor: Monitor) -> None:
    monitor.report_positions([("AAPL", 1, 10, 11)], equity=100, cash=90)
    kept = dict(monitor._last_heartbeat)
    with pytest.raises(ValueError, match=r"positions\[1\]\.market_price \(MSFT\) must be a finite number"):
        monitor.report_positions([("AAPL", 2, 10, 11), ("MSFT", 1, 10, float("nan"))], equity=200)
    with pytest.raises(ValueError, match="cash must be"):
        monitor.heartbeat("running", positions=[], cash=Decimal("1e400"))
    assert monitor._last_heartbeat == kept
    monitor.heartbeat()
    beat = eventually(site.beats, what="a heartbeat")[0]
    assert (beat["positions"], beat["equity"], beat["cash"]) == (
        [{"symbol": "AAPL", "quantity": 1, "avg_price": 10, "market_price": 11}],
        100,
        90,
    )


def test_the_bots_thread_never_waits_for_the_host_figures(site: HeartbeatSite, monitor: Monitor) -> None:
    """The shipper's thread gathers them: with the sampler stuck, every call of the bot returns."""
    inside, release = threading.Event(), threading.Event()

    def stuck_sampler() -> dict[str, Any]:
        inside.set()
        release.wait(60)
        return {"pid": 4242}

    monitor._shipper.host = stuck_sampler
    monitor.heartbeat("first")
    assert inside.wait(10), "the shipper took the heartbeat and is in the sampler"
    returned: list[str] = []

    def bot() -> None:
        monitor.heartbeat("second", positions=[("AAPL", 1, 10, 11)], equity=10)
        returned.append("heartbeat")
        monitor.report_positions([("AAPL", 2, 10, 11)])
        returned.append("report_positions")
        monitor.record_trade(external_id="t-1", symbol="AAPL", side="BUY", quantity=1, price=10)
        returned.append("record_trade")
        monitor.event("custom", "info", "still here")
        returned.append("event")
        monitor.start_heartbeats(every=0.05)
        returned.append("start_heartbeats")

    caller = threading.Thread(target=bot, name="the bot")
    caller.start()
    caller.join(10)
    assert not caller.is_alive() and not release.is_set(), "every call returned while the sampler was stuck"
    assert returned == ["heartbeat", "report_positions", "record_trade", "event", "start_heartbeats"]
    assert site.beats() == [], "nothing sent yet: the figures come before the beat goes"

    release.set()
    beats = eventually(lambda: site.beats()[1:], what="the beats after the sampler returned")
    assert site.beats()[0]["status"] == "first" and site.beats()[0]["host"] == {"pid": 4242}
    assert beats[-1]["positions"][0]["quantity"] == 2
    assert monitor.flush(timeout=10)


def test_a_failing_sampler_sends_the_heartbeat_without_host(site: HeartbeatSite, monitor: Monitor) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("sampler bug")

    monitor._shipper.host = broken
    monitor.heartbeat("running")
    beat = eventually(site.beats, what="a heartbeat")[0]
    assert beat == {"status": "running", "details": {}}


@pytest.mark.django_db
def test_figures_the_site_would_refuse_together_are_left_out_not_sent(tmp_path: Path) -> None:
    """lxcfs gives a container's MemTotal beside the host's MemAvailable, and a machine without a
    clock may start the bot in 1970: sent as read, the site refuses the whole heartbeat (and the bot
    looks silent). The sampler leaves those figures out, and the site takes the rest."""
    from rest_framework.test import APIClient

    from trades.models import Bot

    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "stat").write_text("1 (bot) S 0" + " 0" * 17 + " 250 0\n")
    (proc / "self" / "statm").write_text("1000 200 100 1 0 50 0\n")
    (proc / "stat").write_text("cpu 1 2 3\nbtime 100\n")  # booted in 1970
    (proc / "meminfo").write_text("MemTotal: 2097152 kB\nMemFree: 100000 kB\nMemAvailable: 8388608 kB\n")
    figures = HostSampler(tmp_path, use_psutil=False, proc=proc).sample()
    assert "memory_available_bytes" not in figures and figures["memory_total_bytes"] == 2097152 * 1024
    assert "started_at" not in figures
    bot = Bot.objects.create(name="lxc")
    _, key = bot.issue_key()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    answer = api.post("/api/v1/heartbeat/", {"status": "running", "host": figures}, format="json")
    assert answer.status_code == 200, answer.json()
    (proc / "meminfo").write_text("MemTotal: 2097152 kB\nMemAvailable: 1048576 kB\n")
    assert (
        HostSampler(tmp_path, use_psutil=False, proc=proc).sample()["memory_available_bytes"]
        == 1048576 * 1024
    )


def test_positions_older_than_state_max_age_are_not_sent_again_as_current(tmp_path: Path) -> None:
    """A bot whose trading loop stalls while its heartbeat thread beats: its last marks go out
    for ``state_max_age`` (exactly that long included), then the beats carry no state, so the
    site judges realized P&L alone instead of hours-old prices as now."""
    from monitor_client import Monitor

    now = [1000.0]
    monitor = Monitor(url="", key="", spool_dir=tmp_path / "spool", clock=lambda: now[0], state_max_age=300)
    sent: list[dict] = []
    monitor._shipper.send_heartbeat = sent.append  # type: ignore[method-assign]
    try:
        monitor.report_positions([("AAPL", 10, 100, 99)], equity=5000)
        monitor.heartbeat("running")
        now[0] += 300
        monitor.heartbeat("running")
        now[0] += 0.001
        monitor.heartbeat("running")
        assert ["positions" in beat for beat in sent] == [True, True, False]
        assert "equity" not in sent[-1] and sent[-1]["status"] == "running"
        monitor.report_positions([("AAPL", 10, 100, 98)])
        monitor.heartbeat("running")
        assert sent[-1]["positions"][0]["market_price"] == 98 and sent[-1]["equity"] == 5000
    finally:
        monitor.close()
