"""Admin pages' server time at 1,000 and at 1,000,000 trades, in one run; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/admin.py [--quick]``. It starts its own web server
(``python -m monitorsite.serve``) over a throwaway SQLite database, logs in through the
admin's login form as a browser would, and times each admin page (the cockpit, every
list, a change page) first with 1,000 trades stored, then again after 999,000 more are
written straight into the table (as ``bench/ingest.py`` loads its history: spread over
250 trading days up to today, 20 symbols, 5 strategies, half of them closed). Each
figure is the median of ``REPEATS`` requests over a kept-alive connection on loopback, so
it is the server's time plus well under a millisecond; the ratio column compares the two
sizes, taken minutes apart on the same machine. Target (issue 14): every page at most
200 ms at 1,000,000 trades. A missed target prints FAIL; only a broken run exits non-zero.

``--quick`` stops at 100,000 trades: a smoke test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from common import HOST, Server, code_version, connect, free_port, interrupt, machine_line, manage, site_env
from ingest import MARKET_TZ, TradeFactory, history_rows, insert_rows, trading_days

SMALL = 1_000
LARGE = 1_000_000
QUICK_LARGE = 100_000
REPEATS = 15
TARGET_MS = 200.0
USERNAME, PASSWORD = "bench", "bench-admin-password-1"


class Browser:
    """A logged-in admin session over one kept-alive connection (cookies by hand: stdlib only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)
        self.cookies: dict[str, str] = {}

    def reconnect(self) -> None:
        """A fresh connection: the server closes one left idle (WEB_CLIENT_TIMEOUT) while trades load."""
        self.conn.close()
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes, float]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), "Host": HOST}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://{HOST}{path}"
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, data, elapsed

    def log_in(self) -> None:
        self.request("GET", "/admin/login/")
        form = urlencode(
            {
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.cookies["csrftoken"],
                "next": "/admin/",
            }
        )
        status, body, _ = self.request("POST", "/admin/login/", form)
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login failed ({status}): {body[:300]!r}")


def pages(today: dt.date, trade_id: int, bot_id: int) -> list[tuple[str, str]]:
    day = {"trading_day": today.isoformat()}
    return [
        ("cockpit (admin index)", "/admin/"),
        ("trade list", "/admin/trades/trade/"),
        ("trade list, page 10", "/admin/trades/trade/?p=10"),
        ("trade list, one bot", f"/admin/trades/trade/?bot__id__exact={bot_id}"),
        ("trade list, today", f"/admin/trades/trade/?{urlencode(day)}"),
        ("trade list, sells", "/admin/trades/trade/?side__exact=SELL"),
        ("trade", f"/admin/trades/trade/{trade_id}/change/"),
        ("bot list", "/admin/trades/bot/"),
        ("bot", f"/admin/trades/bot/{bot_id}/change/"),
        ("bot event list", "/admin/trades/botevent/"),
        ("alert list", "/admin/alerts/alert/"),
        ("alert rule list", "/admin/alerts/alertrule/"),
        ("trading halt list", "/admin/alerts/tradinghalt/"),
        ("summary schedule list", "/admin/alerts/summaryschedule/"),
        ("backup record list", "/admin/backups/backuprecord/"),
        ("login lock list", "/admin/axes/accessattempt/"),
    ]


def measure(browser: Browser, targets: list[tuple[str, str]], repeats: int) -> dict[str, float]:
    """The median time of each page; a page that does not answer 200 stops the run."""
    result = {}
    for name, path in targets:
        times = []
        for _ in range(repeats):
            status, body, elapsed = browser.request("GET", path)
            if status != 200:
                raise RuntimeError(f"{name} ({path}) answered {status}: {body[:300]!r}")
            times.append(elapsed)
        result[name] = statistics.median(times)
    return result


def load(
    site_db: Path, factory: TradeFactory, days: list[dt.date], count: int, bot_id: int, tag: str
) -> float:
    """``count`` trades over ``days`` straight into the table (as a busy bot's history); seconds taken."""
    t0 = time.perf_counter()
    with contextlib.closing(connect(site_db)) as conn:
        for rows in history_rows(factory, days, count, bot_id):
            for row in rows:
                row["external_id"] = f"{tag}-{row['external_id']}"
            insert_rows(conn, rows)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 trades (a smoke test)")
    args = parser.parse_args(argv)
    large = QUICK_LARGE if args.quick else LARGE
    signal.signal(signal.SIGTERM, interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="bench-admin-"))
    server: Server | None = None
    try:
        env = site_env(tmp)
        site_db = tmp / "trades.db"
        manage(env, "migrate", "--noinput")
        manage(env, "create_bot", "bench")
        manage(
            {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            "createsuperuser",
            "--noinput",
            "--username",
            USERNAME,
            "--email",
            "bench@example.com",
        )
        with contextlib.closing(sqlite3.connect(site_db)) as conn:
            bot_id = int(conn.execute("SELECT id FROM trades_bot WHERE name = 'bench'").fetchone()[0])
        today = dt.datetime.now(MARKET_TZ).date()
        days = trading_days(250, today) + ([today] if today.weekday() < 5 else [])
        factory = TradeFactory(seed=11)
        load(site_db, factory, days, SMALL, bot_id, "small")
        server = Server(env, free_port(), tmp / "web.log")
        server.wait_ready()
        browser = Browser(server.port)
        browser.log_in()
        with contextlib.closing(sqlite3.connect(site_db)) as conn:
            trade_id = int(conn.execute("SELECT max(id) FROM trades_trade").fetchone()[0])
        targets = pages(today, trade_id, bot_id)
        measure(browser, targets, 2)  # warm-up: imports, templates, the calendar
        small = measure(browser, targets, REPEATS)
        seconds = load(site_db, factory, days, large - SMALL, bot_id, "large")
        browser.reconnect()
        with contextlib.closing(sqlite3.connect(site_db)) as conn:
            stored = int(conn.execute("SELECT count(*) FROM trades_trade").fetchone()[0])
        measure(browser, targets, 1)
        big = measure(browser, targets, REPEATS)

        run = "--quick" if args.quick else "full run"
        print(f"Admin pages benchmark ({run}), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(machine_line())
        print(f"site: waitress (monitorsite.serve), {server.threads()} threads, on {HOST}:{server.port}")
        print(f"code: {code_version()}")
        print(
            f"trades: {SMALL:,} then {stored:,} (the extra {large - SMALL:,} written in {seconds:.0f} s),"
            f" over {len(days)} trading days up to {today}; median of {REPEATS} requests per page"
        )
        print()
        width = max(len(name) for name, _ in targets)
        print(
            f"{'page':<{width}}  {f'{SMALL:,} trades':>14}  {f'{stored:,} trades':>16}  {'ratio':>6}  target"
        )
        failures = 0
        for name, _ in targets:
            ok = big[name] <= TARGET_MS
            failures += not ok
            ratio = big[name] / small[name]
            print(
                f"{name:<{width}}  {small[name]:>11.1f} ms  {big[name]:>13.1f} ms  {ratio:>5.2f}x"
                f"  {'PASS' if ok else 'FAIL'} (<= {TARGET_MS:.0f} ms)"
            )
        slowest = max(big, key=big.get)  # type: ignore[arg-type]
        print(f"\nslowest at {stored:,} trades: {slowest}, {big[slowest]:.1f} ms;", end=" ")
        print(f"{failures} page(s) over {TARGET_MS:.0f} ms")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
