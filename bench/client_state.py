"""Benchmark of the client's cost per heartbeat (the bot's state, the host's figures); see docs/benchmarks.md.

Run as ``.venv/bin/python bench/client_state.py [--quick]``. Every figure is printed beside
a baseline measured in the same run, because the machine is shared and absolute numbers
drift. The baseline is a bare ``Monitor.heartbeat()`` on the bot's thread.

- On the bot's thread: ``heartbeat()`` carrying 500 positions (the most a heartbeat takes),
  equity and cash, as dicts of Decimals (a broker's values) and as tuples of floats;
  ``report_positions`` of the same. The checks of every number are the cost.
- On the shipper's thread (never the bot's): the host figures, with the standard library
  (``/proc``) and with psutil when it can be imported; the first sample (which imports
  psutil) is timed apart in a fresh process; and the JSON encoding of the 500-position beat.

Target: a heartbeat with 500 positions at most 10 ms on the bot's thread, a host sample at
most 1 ms. A missed target prints FAIL; only a broken run exits non-zero.
"""

from __future__ import annotations

import os
import sys

# The project root, for monitor_client and bench.common.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import importlib.util
import json
import logging
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from bench.common import code_version, machine_line, percentile, run_as_script, verdict
from monitor_client import Monitor, wire
from monitor_client.host import HostSampler

TARGET_STATE_MS = 10.0
TARGET_SAMPLE_US = 1000.0
BARE = "heartbeat(), bare (baseline)"
DICTS = f"heartbeat(), {wire.MAX_POSITIONS} positions as dicts of Decimals"
TUPLES = f"heartbeat(), {wire.MAX_POSITIONS} positions as tuples of floats"
REPORT = f"report_positions(), {wire.MAX_POSITIONS} dicts"
STDLIB = "host sample, stdlib (/proc)"
PSUTIL = "host sample, psutil"
ENCODE = f"json.dumps of the {wire.MAX_POSITIONS}-position beat"

FIRST_SAMPLE = """
import sys, time
if sys.argv[1] == "stdlib":
    sys.modules["psutil"] = None
from monitor_client.host import HostSampler
sampler = HostSampler(".")
started = time.perf_counter()
sampler.sample()
print((time.perf_counter() - started) * 1e6)
"""


def positions_as_dicts() -> list[dict[str, object]]:
    return [
        {
            "symbol": f"SYM{n}",
            "quantity": Decimal(n % 300 - 150) or Decimal(1),
            "avg_price": Decimal("187.25") + Decimal(n) / 100,
            "market_price": Decimal("188.10") + Decimal(n % 77) / 100,
        }
        for n in range(wire.MAX_POSITIONS)
    ]


def positions_as_tuples() -> list[tuple[str, float, float, float]]:
    return [
        (f"SYM{n}", float(n % 300 - 150) or 1.0, 187.25 + n / 100, 188.1 + (n % 77) / 100)
        for n in range(wire.MAX_POSITIONS)
    ]


def timed(action: Callable[[], object], count: int) -> list[float]:
    """Microseconds of each call, measured on this thread."""
    samples = []
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        action()
        samples.append((clock() - started) / 1000)
    return samples


def first_sample_us(source: str) -> float:
    """The first sample in a fresh process (psutil's import and setup included)."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", FIRST_SAMPLE, source],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return float(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    args = parser.parse_args()
    beats = 200 if args.quick else 1_000
    samples = 1_000 if args.quick else 5_000
    has_psutil = importlib.util.find_spec("psutil") is not None

    print(machine_line())
    print(f"code: {code_version()}")
    print(f"client state benchmark ({beats} heartbeats of each kind, {samples} host samples); µs per call")
    tmp = Path(tempfile.mkdtemp(prefix="bench-client-state-"))
    results: dict[str, list[float]] = {}
    try:
        logging.getLogger("monitor_client").setLevel(logging.ERROR)  # "no URL": said once, not measured
        # No site: the shipper does not run, so each call is the bot's thread's own work alone.
        monitor = Monitor(url="", key="", spool_dir=tmp / "spool")
        dicts, tuples = positions_as_dicts(), positions_as_tuples()
        equity, cash = Decimal("1012345.67"), Decimal("-2500.5")
        for _ in range(2):  # the first round warms up; the second is kept
            results[BARE] = timed(lambda: monitor.heartbeat("running"), beats)
            results[DICTS] = timed(lambda: monitor.heartbeat("running", dicts, equity, cash), beats)
            results[TUPLES] = timed(lambda: monitor.heartbeat("running", tuples, equity, cash), beats)
            results[REPORT] = timed(lambda: monitor.report_positions(dicts, equity, cash), beats)
        beat = monitor._last_heartbeat
        monitor.close(timeout=0)

        stdlib = HostSampler(tmp, use_psutil=False)
        results[STDLIB] = timed(stdlib.sample, samples)
        if has_psutil:
            with_psutil = HostSampler(tmp, use_psutil=True)
            results[PSUTIL] = timed(with_psutil.sample, samples)
        host = stdlib.sample()
        results[ENCODE] = timed(lambda: json.dumps({**beat, "host": host}).encode(), beats)
        body_bytes = len(json.dumps({**beat, "host": host}).encode())
        first = {"stdlib": first_sample_us("stdlib")}
        if has_psutil:
            first["psutil"] = first_sample_us("psutil")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in results.items()}
    base = medians[BARE]
    width = max(len(name) for name in results)
    print(f"{'':{width}}  {'median':>9} {'p99':>9} {'n':>6}  {'vs bare heartbeat':>17}")
    for name, values in results.items():
        median = medians[name]
        p99 = percentile(values, 99)
        print(f"{name:{width}}  {median:9.1f} {p99:9.1f} {len(values):6d}  {median / base:16.1f}x")
    print(f"the {wire.MAX_POSITIONS}-position heartbeat's body: {body_bytes:,} bytes")
    print("first host sample in a fresh process: " + ", ".join(f"{k} {v:.0f} µs" for k, v in first.items()))
    if has_psutil:
        print(f"psutil / stdlib per sample: {medians[PSUTIL] / medians[STDLIB]:.2f}x")
    else:
        print("psutil: not importable here (not in requirements.txt); the stdlib figures are what is sent")
    for name in (DICTS, TUPLES):
        ok = medians[name] <= TARGET_STATE_MS * 1000
        print(
            f"{verdict(ok)} {name}: median {medians[name] / 1000:.2f} ms (target <= {TARGET_STATE_MS:.0f} ms)"
        )
    for name in (STDLIB, PSUTIL) if has_psutil else (STDLIB,):
        ok = medians[name] <= TARGET_SAMPLE_US
        print(f"{verdict(ok)} {name}: median {medians[name]:.0f} µs (target <= {TARGET_SAMPLE_US:.0f} µs)")
    return 0


if __name__ == "__main__":
    run_as_script(main)
