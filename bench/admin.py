"""Admin pages' server time at 1,000 and at 1,000,000 trades, in one run; see docs/benchmarks.md.

Run as ``.venv/bin/python bench/admin.py [--quick]``. It starts two sites side by side,
each its own web server (``python -m monitorsite.serve``) over its own throwaway SQLite
database: one with 1,000 trades, one with 1,000,000, written straight into the table (as
``bench/ingest.py`` loads its history: spread over 250 trading days up to today, 20
symbols, 5 strategies, half of them closed). It logs in to each through the admin's login
form as a browser would and times each admin page (the cockpit, every list, a change
page) on both, their requests taken in turn, so a busy shared machine slows both alike. The
bench bot reports its state as a busy one does (``load_snapshots``): a heartbeat every 30 s for
two days and one per 15 minutes for 88 days before, each with 20 positions, equity, cash and host
figures, the newest with 500 positions.
Each figure is the median of ``REPEATS`` requests over a kept-alive connection on
loopback: the server's time plus well under a millisecond. Target: every
page at most 200 ms at 1,000,000 trades. A missed target prints FAIL; only a broken run
exits non-zero.

``--quick`` stops at 100,000 trades: a smoke test of the script, not a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from common import (
    HOST,
    Server,
    code_version,
    connect,
    free_port,
    insert_sql,
    machine_line,
    manage,
    new_site_with_bot,
    run_as_script,
    site_env,
)
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
        ("report, today, every bot", "/admin/report/"),
        # Six weeks: about the 30 trading days the cockpit's Report link opens.
        (
            "report, six weeks, one bot",
            f"/admin/report/?bot=bench&start={today - dt.timedelta(days=42)}&end={today}",
        ),
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


def measure(sites: list[Browser], targets: list[tuple[str, str]], repeats: int) -> list[dict[str, float]]:
    """The median time of each page on each site, their requests taken in turn (A, B, A, B...)
    so that both see the same load on a shared machine. A page that does not answer 200 stops the run."""
    times: list[dict[str, list[float]]] = [{name: [] for name, _ in targets} for _ in sites]
    for name, path in targets:
        for _ in range(repeats):
            for index, browser in enumerate(sites):
                status, body, elapsed = browser.request("GET", path)
                if status != 200:
                    raise RuntimeError(f"{name} ({path}) answered {status}: {body[:300]!r}")
                times[index][name].append(elapsed)
    return [{name: statistics.median(values) for name, values in site.items()} for site in times]


def measure_pairs(
    browsers: list[Browser], small: list[tuple[str, str]], large: list[tuple[str, str]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Each page on the small site, then on the large one, in turn; the medians of each."""
    times: tuple[dict[str, list[float]], dict[str, list[float]]] = ({}, {})
    for (name, small_path), (_, large_path) in zip(small, large, strict=True):
        for _ in range(repeats):
            for index, path in ((0, small_path), (1, large_path)):
                status, body, elapsed = browsers[index].request("GET", path)
                if status != 200:
                    raise RuntimeError(f"{name} ({path}) answered {status}: {body[:300]!r}")
                times[index].setdefault(name, []).append(elapsed)
    return tuple({n: statistics.median(v) for n, v in side.items()} for side in times)  # type: ignore[return-value]


def setup(env: dict[str, str], site_db: Path) -> int:
    """Migrate, create the bench bot and the admin user; the bot's id."""
    new_site_with_bot(env)
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
        return int(conn.execute("SELECT id FROM trades_bot WHERE name = 'bench'").fetchone()[0])


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


def load_snapshots(site_db: Path, bot_id: int, now: dt.datetime) -> int:
    """The bot's state as its heartbeats leave it after retention: every 30 s for two days, one per
    15 minutes for 88 days before; 20 positions each, the newest 500. The rows written."""

    def positions(count: int, step: int) -> str:
        return json.dumps(
            [
                {
                    "symbol": f"S{n:03d}",
                    "quantity": (-1) ** n * 10,
                    "avg_price": 100 + n,
                    "market_price": 100 + n + step % 7,
                }
                for n in range(count)
            ]
        )

    moments = [now - dt.timedelta(seconds=30 * n) for n in range(2 * 2880)]
    moments += [moments[-1] - dt.timedelta(minutes=15 * n) for n in range(1, 88 * 96)]
    with contextlib.closing(connect(site_db)) as conn:
        sql, columns = insert_sql(conn, "trades_botsnapshot")
        gb = 1024**3
        rows = []
        for n, moment in enumerate(moments):
            count = 500 if n == 0 else 20
            values = {
                "bot_id": bot_id,
                "taken_at": moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
                "positions": positions(count, n),
                "position_count": count,
                "unrealized_pnl": str(10 * (n % 7) * count),
                "equity": "100000.0",
                "cash": "20000.0",
                "host_pid": 4242,
                "host_started_at": (now - dt.timedelta(days=3))
                .astimezone(dt.UTC)
                .strftime("%Y-%m-%d %H:%M:%S"),
                "rss_bytes": 300 * 1024**2,
                "cpu_percent": 4.5,
                "memory_available_bytes": gb,
                "memory_total_bytes": 2 * gb,
                "disk_free_bytes": 20 * gb,
                "disk_total_bytes": 50 * gb,
            }
            rows.append([values[column] for column in columns])
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at 100,000 trades (a smoke test)")
    args = parser.parse_args(argv)
    large = QUICK_LARGE if args.quick else LARGE
    tmp = Path(tempfile.mkdtemp(prefix="bench-admin-"))
    servers: list[Server] = []
    try:
        today = dt.datetime.now(MARKET_TZ).date()
        days = trading_days(250, today) + ([today] if today.weekday() < 5 else [])
        browsers, loaded = [], []
        # Two sites side by side: the same code and data shape, 1,000 and 1,000,000 trades.
        for label, count in (("small", SMALL), ("large", large)):
            folder = tmp / label
            folder.mkdir()
            env = site_env(folder)
            bot_id = setup(env, folder / "trades.db")
            seconds = load(folder / "trades.db", TradeFactory(seed=11), days, count, bot_id, label)
            loaded.append(seconds)
            snapshots = load_snapshots(folder / "trades.db", bot_id, dt.datetime.now(dt.UTC))
            server = Server(env, free_port(), folder / "web.log")
            servers.append(server)
            server.wait_ready()
            browser = Browser(server.port)
            browser.log_in()
            browsers.append(browser)
            with contextlib.closing(sqlite3.connect(folder / "trades.db")) as conn:
                trade_id = int(conn.execute("SELECT max(id) FROM trades_trade").fetchone()[0])
                stored = int(conn.execute("SELECT count(*) FROM trades_trade").fetchone()[0])
        for browser in browsers:
            browser.reconnect()  # the first one idled while the second site loaded
        # Both sites use the same bot id (1); the trade pages open each site's newest trade.
        targets = pages(today, trade_id, bot_id)
        small_targets = pages(today, int(SMALL), bot_id)
        measure(browsers, targets[:1], 2)  # warm-up: imports, templates, the calendar
        for browser in browsers:
            for _, path in small_targets:
                browser.request("GET", path)
        small, big = measure_pairs(browsers, small_targets, targets, REPEATS)
        server = servers[1]
        seconds = loaded[1]

        run = "--quick" if args.quick else "full run"
        print(f"Admin pages benchmark ({run}), {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
        print(machine_line())
        print(f"site: waitress (monitorsite.serve), {server.threads()} threads, on {HOST}:{server.port}")
        print(f"code: {code_version()}")
        print(
            f"two sites side by side: {SMALL:,} and {stored:,} trades (written in {seconds:.0f} s), each"
            f" over {len(days)} trading days up to {today}; median of {REPEATS} requests per page,"
            " the two sites' requests taken in turn"
        )
        print(
            f"the bot's state: {snapshots:,} snapshots on each site (two days every 30 s, then every 15 min)"
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
    finally:
        for each in servers:
            each.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_as_script(main)
