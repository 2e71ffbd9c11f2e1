"""The cockpit's bytes per refresh: the whole page (what the 30 s reload fetched, and still fetches
without a script) against its live part (``/admin/cockpit/live/``, what cockpit.js asks for every
15 s): a 200 when something changed, a 304 when nothing did; with gzip's size beside, to say what
compressing would save. See docs/benchmarks.md.

Run as ``.venv/bin/python bench/cockpit_refresh.py``. It starts the site (``python -m
monitorsite.serve``) over a throwaway SQLite database with the bench bot's history as
``bench/admin.py`` writes it (10,000 trades over 250 trading days, its state every 30 s with 20
positions, the newest 500) and two more bots, logs in through the admin's login form and asks
each URL ``REPEATS`` times over a kept-alive connection, accepting gzip as a browser does. Bytes on
the wire are the status line, the headers and the body as sent (the live part is compressed, the
page is not); the body's own size and its size gzipped beside, and the request's bytes (cookies,
If-None-Match).
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from admin import Browser, load, load_snapshots, setup
from common import HOST, Server, code_version, free_port, machine_line, manage, run_as_script, site_env
from ingest import MARKET_TZ, TradeFactory, trading_days

TRADES = 10_000
REPEATS = 20
PAGE, LIVE = "/admin/", "/admin/cockpit/live/"
REFRESH_SECONDS, OLD_RELOAD_SECONDS = 15, 30


def ask(browser: Browser, path: str, etag: str = "") -> tuple[int, int, int, bytes, str, float]:
    """(status, request bytes, answer bytes on the wire, body, ETag, ms) of one GET."""
    headers = {
        "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
        "Host": HOST,
        "Accept-Encoding": "gzip, deflate, br, zstd",  # as Chromium asks
    }
    if etag:
        headers["If-None-Match"] = etag
    sent = len(f"GET {path} HTTP/1.1\r\n") + sum(len(f"{k}: {v}\r\n") for k, v in headers.items()) + 2
    started = time.perf_counter()
    browser.conn.request("GET", path, headers=headers)
    response = browser.conn.getresponse()
    body = response.read()
    ms = (time.perf_counter() - started) * 1000
    head = len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + 2
    head += sum(len(f"{k}: {v}\r\n") for k, v in response.getheaders())
    wire = head + len(body)
    if response.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return response.status, sent, wire, body, response.getheader("ETag") or "", ms


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-cockpit-"))
    server = None
    try:
        env = site_env(tmp)
        bot_id = setup(env, tmp / "trades.db")
        today = dt.datetime.now(MARKET_TZ).date()
        days = trading_days(250, today) + ([today] if today.weekday() < 5 else [])
        load(tmp / "trades.db", TradeFactory(seed=11), days, TRADES, bot_id, "cockpit")
        load_snapshots(tmp / "trades.db", bot_id, dt.datetime.now(dt.UTC))
        for name in ("alpha", "beta"):
            manage(env, "create_bot", name)
        server = Server(env, free_port(), tmp / "web.log")
        server.wait_ready()
        browser = Browser(server.port)
        browser.log_in()
        ask(browser, PAGE), ask(browser, LIVE)  # warm-up: imports, templates, the calendar

        rows = []
        for name, path, conditional in (
            ("whole page (the reload)", PAGE, False),
            ("live part, changed: 200", LIVE, False),
            ("live part, unchanged: 304", LIVE, True),
        ):
            runs = []
            for _ in range(REPEATS):
                etag = ask(browser, LIVE)[4] if conditional else ""
                runs.append(ask(browser, path, etag))
            status, sent, wire, body, _, _ = runs[-1]
            expected = 304 if conditional else 200
            if {run[0] for run in runs} != {expected}:
                raise RuntimeError(f"{path} answered {[run[0] for run in runs]}, not all {expected}")
            # What the answer would weigh compressed (the page is not: see docs/benchmarks.md).
            zipped = len(gzip.compress(body, 6)) if body else 0
            rows.append((name, status, sent, wire, len(body), zipped, statistics.median(r[5] for r in runs)))

        print(f"Cockpit refresh benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(machine_line())
        print(f"site: waitress (monitorsite.serve), {server.threads()} threads, on {HOST}:{server.port}")
        print(f"code: {code_version()}")
        print(f"3 bots, one with {TRADES:,} trades and 500 open positions; median of {REPEATS} requests\n")
        page_wire = rows[0][3]
        print(
            f"{'answer':<27} {'status':>6} {'request':>8} {'on wire':>8} {'body':>8}"
            f" {'gzipped':>8} {'wire/page':>9} {'server':>9}"
        )
        for name, status, sent, wire, body, zipped, ms in rows:
            print(
                f"{name:<27} {status:>6} {sent:>6} B {wire:>6} B {body:>6} B {zipped:>6} B"
                f" {wire / page_wire:>9.1%} {ms:>6.1f} ms"
            )
        changed, unchanged = rows[1][3] + rows[1][2], rows[2][3] + rows[2][2]
        refreshes = 3600 // REFRESH_SECONDS
        reloads = 3600 // OLD_RELOAD_SECONDS
        print("\nan hour on the cockpit (answers and requests; the page alone, not its styles and scripts):")
        reload = page_wire + rows[0][2]
        print(f"  the page every {OLD_RELOAD_SECONDS} s (no script):      {reloads * reload:>10,} B")
        print(f"  the live part every {REFRESH_SECONDS} s, all unchanged: {refreshes * unchanged:>10,} B")
        print(f"  the live part every {REFRESH_SECONDS} s, all changed:   {refreshes * changed:>10,} B")
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_as_script(main)
