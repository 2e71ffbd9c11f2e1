"""The host figures a heartbeat carries: the bot's process and the machine it runs on.

``HostSampler`` gives a dict with the keys of ``wire.HOST_FIELDS``: the process's
``pid`` and ``started_at`` (RFC 3339, UTC), its resident memory (``rss_bytes``) and CPU
(``cpu_percent``: 100 per busy core, over the time since the previous sample), the
machine's memory (``memory_available_bytes``, ``memory_total_bytes``) and the disk
holding ``folder`` (``disk_free_bytes``, ``disk_total_bytes``; ``Monitor`` passes its
spool folder). It uses ``psutil`` when it can be imported, and the standard library
otherwise (``/proc``, ``resource.getrusage``, ``shutil.disk_usage``).

It is called by the shipper's thread just before a heartbeat is sent, never on the bot's
thread, and it never waits: the CPU figure is the change of the process's CPU time over
the wall time between two samples (the first one: the average since the process
started), not a one-second measurement. A figure the platform does not give, or that
fails, is left out (never sent as 0), and said once in the debug log; nothing raises.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor_client.wire import EARLIEST, MAX_CLOCK_SKEW, MAX_CPU_PERCENT, MAX_HOST_BYTES, MAX_PID

log = logging.getLogger("monitor_client")

# The shortest wall time a CPU figure is measured over: between two samples closer than
# this (heartbeats sent in a burst) the last figure is given again, so that the clock's
# granularity (10 ms ticks for ``os.times``) cannot make a few milliseconds read as 300%.
MIN_CPU_WINDOW = 0.25
# Each figure's bound as the site takes it (``wire``); a figure outside it is a reading
# gone wrong and is left out rather than getting the whole heartbeat refused.
_BOUNDS = {
    "pid": (1, MAX_PID),
    "rss_bytes": (0, MAX_HOST_BYTES),
    "memory_available_bytes": (0, MAX_HOST_BYTES),
    "memory_total_bytes": (0, MAX_HOST_BYTES),
    "disk_free_bytes": (0, MAX_HOST_BYTES),
    "disk_total_bytes": (0, MAX_HOST_BYTES),
    "cpu_percent": (0, MAX_CPU_PERCENT),
}

try:
    import resource

    def _rusage_cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
except ImportError:  # Windows: os.times() alone
    _rusage_cpu_seconds = None  # type: ignore[assignment]


def _os_times_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class HostSampler:
    """The host figures of this process, one dict per call; see the module's docstring.

    ``use_psutil``: None (the default) uses it when it can be imported, False never,
    True insists (and falls back to the standard library when it cannot be imported).
    ``proc`` is where the ``/proc`` file system is, ``clock`` the wall time a CPU figure is
    measured over (tests set both). Thread-safe; meant for one caller (the shipper's thread).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        use_psutil: bool | None = None,
        proc: str | os.PathLike[str] = "/proc",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.folder = Path(folder)
        self.proc = Path(proc)
        self._clock = clock
        self._use_psutil = use_psutil
        self._lock = threading.Lock()
        self._psutil: Any = None
        self._process: Any = None
        #: "psutil" or "stdlib": what the figures come from (known after the first sample).
        self.source = ""
        self._pid = 0
        self._started: float | None = None  # the process's start, seconds since the epoch
        self._started_known = False
        self._last_cpu: tuple[float, float] | None = None  # (monotonic, CPU seconds)
        self._cpu_percent: float | None = None
        self._said: set[str] = set()  # figures whose failure was logged

    def __call__(self) -> dict[str, Any]:
        return self.sample()

    def sample(self) -> dict[str, Any]:
        """The figures now, each one left out when it cannot be had; never raises."""
        with self._lock:
            figures: dict[str, Any] = {}
            try:
                self._follow_pid()
            except Exception as exc:  # e.g. psutil failing to find its own process
                self._say("process", exc)
            figures["pid"] = self._pid or os.getpid()
            for name, read in self._readers():
                try:
                    value = read()
                except Exception as exc:
                    self._say(name, exc)
                    continue
                if value is None:
                    continue
                if isinstance(value, dict):
                    figures.update(value)
                else:
                    figures[name] = value
            kept = {name: value for name, value in figures.items() if self._within(name, value)}
            return self._consistent(kept)

    # --- what the figures come from ---------------------------------------------

    def _follow_pid(self) -> None:
        """Set up on the first call (psutil's import is not the bot's to wait for) and again
        in a forked child, whose pid, start and CPU time are its own."""
        pid = os.getpid()
        if pid == self._pid:
            return
        self._pid = pid
        self._started, self._started_known = None, False
        self._last_cpu = self._cpu_percent = None
        self._process = None
        if self._psutil is None and self._use_psutil is not False:
            try:
                self._psutil = importlib.import_module("psutil")
            except Exception:  # ImportError, or a broken install
                self._psutil = None
        self.source = "psutil" if self._psutil is not None else "stdlib"
        if self._psutil is not None:
            self._process = self._psutil.Process(pid)

    def _readers(self) -> list[tuple[str, Callable[[], Any]]]:
        return [
            ("started_at", self._started_at),
            ("rss_bytes", self._rss_bytes),
            ("cpu_percent", self._cpu),
            ("memory", self._memory),
            ("disk", self._disk),
        ]

    def _start_epoch(self) -> float | None:
        """When this process started (seconds since the epoch), read once per process."""
        if not self._started_known:
            self._started_known = True  # a failure is not retried every beat
            if self._process is not None:
                self._started = float(self._process.create_time())
            else:
                self._started = self._proc_start_epoch()
        return self._started

    def _proc_start_epoch(self) -> float | None:
        """``/proc/self/stat``'s start time (clock ticks after boot) plus ``/proc/stat``'s boot time."""
        try:
            stat = (self.proc / "self" / "stat").read_text()
            boot = (self.proc / "stat").read_text()
        except FileNotFoundError:  # no /proc: not Linux
            return None
        # The command name (field 2) may hold spaces and parentheses: count from the last ")".
        ticks = int(stat.rpartition(")")[2].split()[19])  # field 22, starttime
        btime = next(int(line.split()[1]) for line in boot.splitlines() if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")

    def _started_at(self) -> str | None:
        started = self._start_epoch()
        if started is None:
            return None
        return dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="milliseconds")

    def _rss_bytes(self) -> int | None:
        if self._process is not None:
            return int(self._process.memory_info().rss)
        try:
            statm = (self.proc / "self" / "statm").read_text()
        except FileNotFoundError:  # no /proc; getrusage's ru_maxrss is the peak, not the figure
            return None
        return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _cpu_seconds(self) -> float:
        if self._process is not None:
            times = self._process.cpu_times()
            return float(times.user + times.system)
        if _rusage_cpu_seconds is not None:
            return _rusage_cpu_seconds()
        return _os_times_cpu_seconds()

    def _cpu(self) -> float | None:
        """This process's CPU since the previous sample, 100 per busy core (the first
        sample: the average since the process started, or nothing when that is unknown)."""
        now, cpu = self._clock(), self._cpu_seconds()
        if self._last_cpu is None:
            self._last_cpu = (now, cpu)
            started = self._start_epoch()
            ran = time.time() - started if started is not None else 0.0
            if ran > 0:
                self._cpu_percent = cpu / ran * 100
        elif now - self._last_cpu[0] >= MIN_CPU_WINDOW:
            then, cpu_then = self._last_cpu
            self._last_cpu = (now, cpu)
            self._cpu_percent = max(0.0, cpu - cpu_then) / (now - then) * 100
        return None if self._cpu_percent is None else round(self._cpu_percent, 1)

    def _memory(self) -> dict[str, int] | None:
        if self._psutil is not None:
            memory = self._psutil.virtual_memory()
            return {"memory_available_bytes": int(memory.available), "memory_total_bytes": int(memory.total)}
        try:
            text = (self.proc / "meminfo").read_text()
        except FileNotFoundError:  # not Linux: the total alone, from sysconf where it has it
            return {"memory_total_bytes": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")}
        found = {}
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                found[name] = int(rest.split()[0]) * 1024  # kB
                if len(found) == 2:
                    break
        figures = {}
        if "MemAvailable" in found:  # Linux before 3.14 has none: left out, not guessed
            figures["memory_available_bytes"] = found["MemAvailable"]
        if "MemTotal" in found:
            figures["memory_total_bytes"] = found["MemTotal"]
        return figures

    def _disk(self) -> dict[str, int]:
        # shutil.disk_usage is one statvfs() call, as psutil.disk_usage: the same figures either way.
        usage = shutil.disk_usage(self.folder)
        return {"disk_free_bytes": int(usage.free), "disk_total_bytes": int(usage.total)}

    # --- keeping the figures sendable -------------------------------------------

    def _within(self, name: str, value: Any) -> bool:
        bounds = _BOUNDS.get(name)
        if bounds is None or bounds[0] <= value <= bounds[1]:
            return True
        self._say(name, ValueError(f"{value!r} is outside {bounds[0]}..{bounds[1]}"))
        return False

    def _consistent(self, figures: dict[str, Any]) -> dict[str, Any]:
        """What the site checks across figures and against its clock, so a heartbeat is never
        refused for them (a refused heartbeat is lost, and the bot looks silent): a part above
        its whole is left out (lxcfs gives a container's MemTotal with the host's MemAvailable),
        and a start time outside 2000 to a day ahead of now (a clock not yet set at boot)."""
        for part, whole in (
            ("memory_available_bytes", "memory_total_bytes"),
            ("disk_free_bytes", "disk_total_bytes"),
        ):
            if part in figures and whole in figures and figures[part] > figures[whole]:
                self._say(part, ValueError(f"{figures[part]} is above {whole} {figures[whole]}"))
                del figures[part]
        started = figures.get("started_at")
        if started is not None:
            moment = dt.datetime.fromisoformat(started)
            if not EARLIEST <= moment <= dt.datetime.now(dt.UTC) + MAX_CLOCK_SKEW:
                self._say("started_at", ValueError(f"{started} is outside the site's bounds"))
                del figures["started_at"]
                self._started_known = False  # read again once the clock is right
        return figures

    def _say(self, name: str, problem: Exception) -> None:
        """A figure that cannot be had: said once at debug level, then left out quietly."""
        if name not in self._said:
            self._said.add(name)
            log.debug("Host figure %s left out of heartbeats: %s: %s", name, type(problem).__name__, problem)
