"""Names of backup objects in storage (operators' scripts and restores on a new machine rely on them)
and what they tell.

``trades_latest.db`` is replaced on every sync; ``backups/trades_YYYYMMDD_HHMMSS.db``
(the time in the market's time zone) is kept for ``BACKUP_RETENTION_DAYS``. A
compressed copy adds ``.gz``. A site on PostgreSQL stores ``pg_dump -Fc`` files instead,
``trades_latest.pgdump`` and ``backups/trades_YYYYMMDD_HHMMSS.pgdump`` (compressed already: no
``.gz``). Each backup has a sidecar ``NAME.sha256`` in
``sha256sum`` format, so a restore onto a fresh machine, with no backup records
at hand, still knows the checksum to expect.
"""

from __future__ import annotations

import datetime as dt
import re

from trades.market import market_zone

LATEST = "trades_latest.db"
DUMP_SUFFIX = ".pgdump"
LATEST_DUMP = "trades_latest" + DUMP_SUFFIX
LATEST_NAMES = (LATEST, f"{LATEST}.gz", LATEST_DUMP)
DAILY_PREFIX = "backups/"
CHECKSUM_SUFFIX = ".sha256"
_DAILY = re.compile(r"^backups/trades_(\d{8}_\d{6})(\.db(\.gz)?|\.pgdump)$")
_STAMP = "%Y%m%d_%H%M%S"


def latest_name(*, compressed: bool, dump: bool = False) -> str:
    if dump:
        return LATEST_DUMP
    return f"{LATEST}.gz" if compressed else LATEST


def daily_name(moment: dt.datetime, *, compressed: bool, dump: bool = False) -> str:
    stamp = moment.astimezone(market_zone()).strftime(_STAMP)
    if dump:
        return f"{DAILY_PREFIX}trades_{stamp}{DUMP_SUFFIX}"
    return f"{DAILY_PREFIX}trades_{stamp}.db" + (".gz" if compressed else "")


def is_dump(name: str) -> bool:
    """A PostgreSQL backup (``pg_dump -Fc``) rather than a SQLite file."""
    return name.endswith(DUMP_SUFFIX)


def daily_time(name: str) -> dt.datetime | None:
    """The time in a timestamped backup's name (aware), or None for any other name."""
    match = _DAILY.match(name)
    if match is None:
        return None
    return dt.datetime.strptime(match[1], _STAMP).replace(tzinfo=market_zone())


def checksum_name(name: str) -> str:
    return name + CHECKSUM_SUFFIX


def is_backup(name: str) -> bool:
    """A database backup (not a checksum sidecar or a foreign object)."""
    return name in LATEST_NAMES or daily_time(name) is not None


def checksum_line(sha256: str, name: str) -> str:
    """What ``sha256sum`` prints, so ``sha256sum -c`` checks a downloaded backup too."""
    return f"{sha256}  {name.rsplit('/', 1)[-1]}\n"


def parse_checksum(text: str) -> str | None:
    token = text.strip().split(maxsplit=1)[0] if text.strip() else ""
    return token.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", token) else None
