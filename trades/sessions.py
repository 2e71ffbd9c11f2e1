"""Exchange sessions (open and close, holidays and early closes included) by calendar code.

The one place that knows the calendar library (``exchange_calendars``, with pandas under it):
``trades.market`` reads sessions only through ``hours``, ``calendar_names`` and ``zone``. No site process
imports the library: it costs ~50 MiB in every process that does. Instead, a year of one
calendar's sessions is computed once by a short-lived subprocess (``python -m trades.sessions``,
which imports only the library) and stored as a small JSON file under ``SESSIONS_DIR`` (next to
the database), in a folder named for the library's version, so that an upgrade computes them
afresh; the calendar names likewise. A missing, unreadable or corrupt file is computed again.
Each process keeps the tables it has read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

logger = logging.getLogger(__name__)

LIBRARY = "exchange_calendars"
# Bumped when the files' layout changes, so that old files are not read as new ones.
STORE_FORMAT = 1
# The subprocess imports the library and builds a calendar per year: a second or two.
COMPUTE_TIMEOUT_SECONDS = 120

Table = dict[dt.date, tuple[dt.datetime, dt.datetime]]

_tables: dict[tuple[Path, str, int], Table] = {}
_names: dict[Path, dict[str, str]] = {}  # calendar code -> its IANA time zone
_lock = threading.Lock()


def hours(code: str, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """The session of exchange ``code`` (``XNYS``, ``XLON`` …) on ``day``: its open and close as
    aware UTC datetimes, or None when the exchange holds no session that day."""
    return _table(code, day.year).get(day)


def calendar_names() -> tuple[str, ...]:
    """Every exchange code the library knows, sorted."""
    return tuple(sorted(_zones()))


def zone(code: str) -> str:
    """The IANA time zone of exchange ``code`` (``XLON`` → ``Europe/London``), aliases resolved.
    Raises KeyError for a code the library does not know."""
    return _zones()[code]


def _zones() -> dict[str, str]:
    folder = _folder()
    zones = _names.get(folder)
    if zones is None:
        with _lock:
            zones = _names.get(folder)
            if zones is None:
                zones = _names[folder] = _load_names(folder)
    return zones


# --------------------------------------------------------------------------- the store


def store_dir() -> Path:
    from django.conf import settings

    return Path(settings.SESSIONS_DIR)


@lru_cache(maxsize=1)
def library_version() -> str:
    """The installed library's version, read from its metadata (the library is not imported)."""
    from importlib.metadata import version

    return version(LIBRARY)


def _folder() -> Path:
    return store_dir() / f"{LIBRARY}-{library_version()}-v{STORE_FORMAT}"


def table_path(folder: Path, code: str, year: int) -> Path:
    # Codes such as "24/7" hold characters a file name cannot.
    return folder / f"{quote(code, safe='')}-{year}.json"


def names_path(folder: Path) -> Path:
    return folder / "calendar-names.json"


def _table(code: str, year: int) -> Table:
    folder = _folder()
    key = (folder, code, year)
    table = _tables.get(key)
    if table is None:
        with _lock:
            table = _tables.get(key)
            if table is None:
                table = _tables[key] = _load_table(folder, code, year)
    return table


def _load_table(folder: Path, code: str, year: int) -> Table:
    path = table_path(folder, code, year)
    stored = _read(path)
    if stored is not None:
        try:
            return _parse_table(stored, code, year)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("session table %s is not valid (%s); computing it again", path, exc)
    computed = _compute(["table", code, str(year)])
    table = _parse_table(computed, code, year)  # checked before it is kept
    _write(path, computed)
    return table


def _load_names(folder: Path) -> dict[str, str]:
    path = names_path(folder)
    stored = _read(path)
    if stored is not None:
        try:
            return _parse_names(stored)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("calendar names %s are not valid (%s); computing them again", path, exc)
    computed = _compute(["names"])
    names = _parse_names(computed)
    _write(path, computed)
    return names


def _parse_table(data: Any, code: str, year: int) -> Table:
    """The sessions of a stored or computed table; ``ValueError`` (or a ``KeyError``, ``TypeError``)
    when it is not one of ``code`` in ``year``."""
    if data["code"] != code or data["year"] != year:
        raise ValueError(f"it holds {data['code']!r} {data['year']!r}")
    table: Table = {}
    for day, opens, closes in data["sessions"]:
        date = dt.date.fromisoformat(day)
        if date.year != year or not isinstance(opens, int) or not isinstance(closes, int) or opens >= closes:
            raise ValueError(f"a bad session {day!r}")
        table[date] = (
            dt.datetime.fromtimestamp(opens, dt.UTC),
            dt.datetime.fromtimestamp(closes, dt.UTC),
        )
    return table


def _parse_names(data: Any) -> dict[str, str]:
    names, zones = data["names"], data["zones"]
    if not isinstance(names, list) or not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError("not a list of names")
    if not isinstance(zones, dict) or set(zones) != set(names):
        raise ValueError("not a zone for each name")
    for name in names:
        if not isinstance(zones[name], str) or not zones[name]:
            raise ValueError(f"a bad zone for {name!r}")
    return {name: zones[name] for name in sorted(names)}


def _read(path: Path) -> Any:
    """A stored file's JSON, or None when it is missing or unreadable (logged, then computed again)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read %s (%s); computing it again", path, exc)
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        logger.warning("%s is not valid JSON (%s); computing it again", path, exc)
        return None


def _write(path: Path, data: Any) -> None:
    """Stored whole or not at all (another process may read it at the same moment); a store that
    cannot be written is logged, and the table is computed again in the next process."""
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as out:
            temporary = Path(out.name)
            json.dump(data, out, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError as exc:
        logger.warning("cannot store %s (%s)", path, exc)
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def _compute(args: list[str]) -> Any:
    """What ``python -m trades.sessions ARGS`` prints; ``ValueError`` with the library's own words
    when it cannot answer (an unknown code, a year outside the calendar)."""
    project = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-m", "trades.sessions", *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMPUTE_TIMEOUT_SECONDS,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise ValueError(lines[-1] if lines else f"python -m trades.sessions exited with {proc.returncode}")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- the subprocess


def compute_table(code: str, year: int) -> dict[str, Any]:
    """The sessions of ``code`` in ``year`` from the library: ``[day, open, close]`` each, the open
    and close in seconds since the epoch (UTC)."""
    import exchange_calendars

    # One calendar per year, with a month's margin (its first and last day must be sessions):
    # the library builds its sessions eagerly for the range it is given.
    calendar = exchange_calendars.get_calendar(code, start=f"{year - 1}-12-01", end=f"{year + 1}-01-31")
    schedule = calendar.schedule.loc[f"{year}-01-01" : f"{year}-12-31"]
    sessions = [
        [label.date().isoformat(), int(row.open.timestamp()), int(row.close.timestamp())]
        for label, row in schedule.iterrows()
    ]
    return {"code": code, "year": year, "sessions": sessions}


def compute_names() -> dict[str, Any]:
    """Every code the library knows (aliases too), and each one's time zone."""
    import exchange_calendars
    from exchange_calendars import calendar_utils

    names = sorted(exchange_calendars.get_calendar_names(include_aliases=True))
    dispatcher = calendar_utils.global_calendar_dispatcher
    zones = {name: str(dispatcher._calendar_factories[dispatcher.resolve_alias(name)].tz) for name in names}
    return {"names": names, "zones": zones}


def main(argv: list[str]) -> int:
    """``table CODE YEAR`` or ``names``: the JSON on standard output; an error's words on standard
    error, exit status 1."""
    try:
        if argv[:1] == ["table"] and len(argv) == 3:
            data = compute_table(argv[1], int(argv[2]))
        elif argv == ["names"]:
            data = compute_names()
        else:
            sys.stderr.write("usage: python -m trades.sessions table CODE YEAR | names\n")
            return 2
    except Exception as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(data, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
