"""Backup benchmark: snapshot, upload, restore and the bot's insert latency during a snapshot.

Run as ``.venv/bin/python bench/backup.py [--trades N]`` (default 1,000,000). It makes a
temp dir, migrates a database there (``manage.py migrate``), loads N trades with raw
``sqlite3`` and then measures, each next to a baseline from the same run:

1. snapshot (``take_snapshot``: backup API copy, integrity_check, change fingerprint,
   sha256) against a plain copy of the same file (``shutil.copyfile``);
2. upload to the ``local`` provider (object and checksum sidecar) against the same copy;
3. restore end to end (download, sha256, integrity_check, atomic replace) against the
   same copy, to a new file and over an existing database (whose safety copy is made
   first); target at most 60 s;
4. the worst single-trade insert latency (``Trade.objects.record_batch`` of one trade, as
   the API stores it, in a separate process inserting every 5 ms) while a whole snapshot
   runs, and while the copy alone runs with the backup API and with ``VACUUM INTO``
   (alternating, ``COPY_ROUNDS`` each), against the same inserts with nothing else
   running (before and after); target at most 100 ms.

Exit status 0 unless the run broke; missed targets print FAIL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from common import (
    ROOT,
    code_version,
    machine_line,
    new_site_with_bot,
    percentile,
    run_as_script,
    site_env,
    verdict,
)

RESTORE_TARGET_S = 60.0
INSERT_TARGET_MS = 100.0
INSERT_EVERY_S = 0.005
COPY_ROUNDS = 5


def setup_django(tmp: Path) -> None:
    os.environ.update(site_env(tmp), BACKUP_COMPRESS="false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitorsite.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def load_trades(db_path: Path, count: int) -> None:
    """N trades of one bot over 250 weekdays, straight into the table."""
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    bot_id = db.execute("SELECT id FROM trades_bot").fetchone()[0]
    rng = random.Random(7)
    symbols = "AAPL MSFT NVDA AMZN GOOGL META TSLA AMD NFLX JPM".split()
    start = dt.datetime(2025, 1, 2, 14, 30)
    received = str(dt.datetime(2026, 1, 1))

    def rows():  # type: ignore[no-untyped-def]
        for n in range(count):
            moment = start + dt.timedelta(days=n * 365 // count, seconds=rng.randrange(23400))
            pnl = None if n % 2 else f"{rng.uniform(-50, 50):.2f}"
            yield (
                bot_id,
                f"load-{n}",
                rng.choice(symbols),
                "BUY" if n % 2 else "SELL",
                "10",
                f"{rng.uniform(10, 500):.2f}",
                "momentum",
                pnl,
                str(moment),
                moment.date().isoformat(),
                "{}",
                received,
            )

    with db:
        db.executemany(
            "INSERT INTO trades_trade (bot_id, external_id, symbol, side, quantity, price, strategy, pnl,"
            " executed_at, trading_day, metadata, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows(),
        )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def insert_loop(tmp: str, stop: mp.Event, ready: mp.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One trade per transaction through the site's own insert, timing each."""
    setup_django(Path(tmp))
    from trades.models import Bot, Trade

    bot = Bot.objects.get(name="bench")
    samples: list[tuple[float, float]] = []
    n = 0
    ready.set()
    while not stop.is_set():
        n += 1
        trade = {
            "external_id": f"live-{n}",
            "symbol": "AAPL",
            "side": "BUY",
            "quantity": 1,
            "price": 187,
            "strategy": "momentum",
            "pnl": None,
            "executed_at": dt.datetime.now(dt.UTC),
            "metadata": {},
        }
        began = time.monotonic()
        Trade.objects.record_batch(bot, [trade])
        samples.append((began, time.monotonic() - began))
        time.sleep(INSERT_EVERY_S)
    out.put(samples)


def latency_in(
    samples: list[tuple[float, float]], spans: list[tuple[float, float]]
) -> tuple[float, int, float, float]:
    """Seconds covered, inserts started, p99 ms and worst ms of the inserts started within ``spans``."""
    window = [latency * 1000 for began, latency in samples if any(a <= began <= b for a, b in spans)]
    seconds = sum(b - a for a, b in spans)
    return seconds, len(window), percentile(window, 99), max(window, default=float("nan"))


def latency_row(seconds: float, n: int, p99: float, worst: float, baseline: float) -> str:
    return f"{seconds:7.1f} {n:7d} {p99:7.1f} {worst:8.1f} {ratio(worst, baseline):>13}"


def timed(func, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    began = time.monotonic()
    func(*args, **kwargs)
    return time.monotonic() - began


def ratio(value: float, base: float) -> str:
    return f"{value / base:6.1f}x" if base > 0 else "   n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    try:
        return run(tmp, args.trades)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, trade_count: int) -> int:
    env = site_env(tmp)
    new_site_with_bot(env)
    db_path = tmp / "trades.db"
    load_seconds = timed(load_trades, db_path, trade_count)
    size = db_path.stat().st_size
    print(
        f"backup benchmark: {trade_count:,} trades, database {size / 2**20:.0f} MB"
        f" (loaded in {load_seconds:.1f} s)"
    )
    print(f"code {code_version()}; {machine_line()}")

    setup_django(tmp)
    from backups.providers.local import LocalStorage
    from backups.restore import restore
    from backups.snapshot import check_database, content_fingerprint, copy_database, take_snapshot
    from backups.upload import upload_with_checksum

    # Baseline: a plain copy of the same bytes (page cache as warm as for the snapshot).
    copy_s = min(timed(shutil.copyfile, db_path, tmp / f"plain-{i}.db") for i in range(2))
    for i in range(2):
        (tmp / f"plain-{i}.db").unlink()

    work = tmp / "work"
    work.mkdir()
    snapshot = take_snapshot(db_path, work)
    parts = tmp / "parts"
    parts.mkdir()
    copy_only = timed(copy_database, db_path, parts / "copy.db")
    check_s = timed(check_database, parts / "copy.db")
    fingerprint_s = timed(content_fingerprint, parts / "copy.db")

    provider = LocalStorage(tmp / "store")
    upload_s = timed(upload_with_checksum, provider, snapshot.path, "trades_latest.db", snapshot.sha256)
    target = tmp / "restored" / "trades.db"
    restore_s = timed(restore, provider, "latest", target, overwrite=True)
    # Again, over the database the first restore put there: a safety copy of it comes first.
    over_s = timed(restore, provider, "latest", target, overwrite=True)

    print()
    print(f"{'figure':<44} {'seconds':>8} {'vs plain copy':>14}")
    print(f"{'plain file copy, same size (baseline)':<44} {copy_s:8.2f} {ratio(copy_s, copy_s):>14}")
    print(f"{'snapshot, all of it':<44} {snapshot.duration:8.2f} {ratio(snapshot.duration, copy_s):>14}")
    print(f"{'  backup-API copy':<44} {copy_only:8.2f} {ratio(copy_only, copy_s):>14}")
    print(f"{'  PRAGMA integrity_check':<44} {check_s:8.2f} {ratio(check_s, copy_s):>14}")
    print(f"{'  change fingerprint':<44} {fingerprint_s:8.2f} {ratio(fingerprint_s, copy_s):>14}")
    print(f"{'upload to local provider':<44} {upload_s:8.2f} {ratio(upload_s, copy_s):>14}")
    print(
        f"{'restore end to end (target <= 60 s)':<44} {restore_s:8.2f} "
        f"{ratio(restore_s, copy_s):>14}  {verdict(restore_s <= RESTORE_TARGET_S)}"
    )
    print(
        f"{'  over a database (safety copy first)':<44} {over_s:8.2f} "
        f"{ratio(over_s, copy_s):>14}  {verdict(over_s <= RESTORE_TARGET_S)}"
    )

    # Insert latency. Every measured step is followed by an idle spell of the same
    # length, so each figure has a baseline of as many inserts under the same
    # machine load (the maximum of a longer window is larger by chance alone).
    # The copy is the only step that reads the live database; the two methods
    # alternate, COPY_ROUNDS times each.
    ctx = mp.get_context("spawn")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    writer = ctx.Process(target=insert_loop, args=(str(tmp), stop, ready, out))
    writer.start()
    ready.wait(120)
    time.sleep(1.0)  # past the first inserts' warm-up
    spans: dict[str, list[tuple[float, float]]] = {}

    def measured(label: str, step) -> None:  # type: ignore[no-untyped-def]
        began = time.monotonic()
        step()
        ended = time.monotonic()
        spans.setdefault(label, []).append((began, ended))
        time.sleep(ended - began)
        spans.setdefault(f"{label}/idle", []).append((ended, time.monotonic()))

    run_dir = tmp / "during-snapshot"
    run_dir.mkdir()
    measured("snapshot", lambda: take_snapshot(db_path, run_dir))
    for round_ in range(COPY_ROUNDS):
        for method in ("backup", "vacuum"):
            target = tmp / f"during-{method}-{round_}.db"
            measured(method, lambda: copy_database(db_path, target, method=method))  # noqa: B023
            target.unlink()
    stop.set()
    samples = out.get(timeout=120)
    writer.join(60)

    print()
    print(
        f"{'single-trade insert (record_batch of 1)':<36} {'seconds':>7} {'inserts':>7} {'p99 ms':>7}"
        f" {'worst ms':>8} {'worst vs idle':>13}"
    )
    for key, label in (
        ("snapshot", "during a whole snapshot (backup API)"),
        ("backup", f"during backup-API copy, {COPY_ROUNDS} runs"),
        ("vacuum", f"during VACUUM INTO, {COPY_ROUNDS} runs"),
    ):
        busy = latency_in(samples, spans[key])
        idle = latency_in(samples, spans[f"{key}/idle"])
        print(f"{'  idle, same length (baseline)':<36} " + latency_row(*idle, idle[3]))
        passed = verdict(busy[3] <= INSERT_TARGET_MS)
        print(f"{label:<36} " + latency_row(*busy, idle[3]) + f"  {passed} (target <= 100 ms)")
    print(f"at the end: {machine_line()}")
    return 0


if __name__ == "__main__":
    run_as_script(main)
