"""What one ``logger.info`` costs the caller with Loki shipping attached; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/log_shipping.py [--quick]``. Everything talks to the
loopback Loki of the tests (``tests/loopback_loki.py``) on 127.0.0.1; figures are
per call, on the caller's thread, in the same run:

1. baseline: python-logging-loki's plain ``LokiHandler`` (v1, synchronous: one
   HTTP request per record) against that server;
2. ``monitor_client``'s ``LokiShippingHandler`` against the same server;
3. the same while the server hangs (accepts requests and never answers). The
   plain handler would block for good there (it has no timeout): one call is
   started on a helper thread and reported as blocked when it has not returned.

Also printed: how long records took to reach the server in part 2 (target: 2 s),
and the floor: the same call with only a ``NullHandler``, i.e. what the logging
module itself costs before any handler runs; on a loaded machine that floor alone
can be more than a hundredth of the baseline.
Target: part 2 and part 3 at least 100x faster than the baseline (median).
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logging_loki import LokiHandler

from bench.common import percentile, run_as_script, verdict
from monitor_client.loki import LokiShippingHandler
from tests.loopback_loki import LoopbackLoki

PAUSE = 0.0002  # between calls: a busy bot logging ~5000 lines a second, not a tight loop


def measure(logger: logging.Logger, count: int) -> list[float]:
    timings = []
    for n in range(count):
        start = time.perf_counter()
        logger.info("order %d filled", n, extra={"symbol": "AAPL", "strategy": "momentum"})
        timings.append(time.perf_counter() - start)
        time.sleep(PAUSE)
    return timings


def summary(timings: list[float]) -> tuple[float, float]:
    return statistics.median(timings), percentile(timings, 99)


def fresh_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls; rough figures")
    args = parser.parse_args()
    plain_calls, calls = (200, 2000) if args.quick else (1000, 10000)
    logging.raiseExceptions = False  # the plain handler's failures after the hang are expected
    logging.getLogger("monitor_client.loki").addHandler(logging.NullHandler())  # its outage warning
    logging.getLogger("monitor_client.loki").propagate = False

    loki = LoopbackLoki()
    try:
        load = os.getloadavg()[0]
        print(f"loopback Loki at {loki.url}; load average {load:.2f}; pause {PAUSE * 1e6:.0f} us")
        floor_median, floor_p99 = summary(measure(fresh_logger("bench.floor", logging.NullHandler()), calls))
        plain = fresh_logger("bench.plain", LokiHandler(f"{loki.url}/loki/api/v1/push", version="1"))
        measure(plain, 20)  # warm up the connection
        base_median, base_p99 = summary(measure(plain, plain_calls))

        handler = LokiShippingHandler(loki.url, "bench", timeout=3.0)
        ours = fresh_logger("bench.ours", handler)
        measure(ours, 200)
        before = len(loki.entries)
        ok_median, ok_p99 = summary(measure(ours, calls))
        handler.shipper.flush(10)
        arrived = loki.entries[before:]
        delays = sorted(entry.arrived - int(entry.timestamp) / 1e9 for entry in arrived)

        loki.set_mode("hang")
        ours.info("this push hangs")
        deadline = time.monotonic() + 10
        while loki.hanging < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        hang_median, hang_p99 = summary(measure(ours, calls))
        stuck_ok = loki.hanging >= 1 and handler.shipper.state()["queued"] > 0

        blocked = threading.Thread(target=plain.info, args=("plain handler during the hang",), daemon=True)
        started = time.perf_counter()
        blocked.start()
        blocked.join(2.0)
        waited = time.perf_counter() - started
        plain_hang = "blocked (no return after 2.0 s)" if blocked.is_alive() else us(waited)
        loki.release()

        print()
        print(f"{'per logger.info call':48} {'median':>12} {'p99':>12} {'speed-up (median)':>18}")
        print(f"{'baseline: LokiHandler, synchronous v1':48} {us(base_median)} {us(base_p99)} {'1.0x':>18}")
        rows = [
            ("LokiShippingHandler, Loki answering", ok_median, ok_p99),
            ("LokiShippingHandler, Loki hanging", hang_median, hang_p99),
        ]
        for label, median, p99 in rows:
            print(f"{label:48} {us(median)} {us(p99)} {base_median / median:17.0f}x")
        print(f"{'baseline: LokiHandler, Loki hanging':48} {plain_hang}")
        print(f"{'floor: the same call with a NullHandler':48} {us(floor_median)} {us(floor_p99)}")
        handler_ratio = (base_median - floor_median) / max(ok_median - floor_median, 1e-7)
        print(
            f"added above the floor (median): baseline {us(base_median - floor_median)}, "
            f"ours {us(ok_median - floor_median)} -> {handler_ratio:.0f}x"
        )
        print()
        print(f"hanging vs answering (median): {hang_median / ok_median:.2f}x; Loki stuck: {stuck_ok}")
        if delays:
            print(
                f"delivery to Loki, answering: {len(delays)} records, "
                f"median {statistics.median(delays):.3f} s, "
                f"max {delays[-1]:.3f} s (target 2 s)"
            )
        worst = min(base_median / ok_median, base_median / hang_median)
        print(
            f"target >= 100x faster (whole call), answering and hanging: {verdict(worst >= 100)} {worst:.0f}x"
        )
        print(f"target >= 100x (above the floor): {verdict(handler_ratio >= 100)} ({handler_ratio:.0f}x)")
        steady = hang_median <= ok_median * 1.5
        print(f"unchanged while Loki hangs (median within 1.5x): {verdict(steady)}")
        if delays:
            print(f"delivery within 2 s: {verdict(delays[-1] <= 2)}")
        return 0
    finally:
        loki.stop()


if __name__ == "__main__":
    run_as_script(main)
