"""Exchange sessions from stored tables (trades/sessions.py): the library's own sessions, computed
once by a subprocess and kept, rebuilt when missing or corrupt; and no web process imports the
calendar library or pandas under it (issue 25: each that did held ~50 MiB more)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import exchange_calendars
import pytest
import requests
from django.test import override_settings

from tests.harness import Site, child_pids
from trades import sessions

CODES = ("XNYS", "XLON", "XTKS", "24/7")
YEARS = (2026, 2027)


def library_hours(code: str, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """The session as the library itself answers (the code before the store)."""
    calendar = exchange_calendars.get_calendar(
        code, start=f"{day.year - 1}-12-01", end=f"{day.year + 1}-01-31"
    )
    if not calendar.is_session(day.isoformat()):
        return None
    opens, closes = calendar.session_open_close(day.isoformat())
    return opens.to_pydatetime().astimezone(dt.UTC), closes.to_pydatetime().astimezone(dt.UTC)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store filled once for the module's comparisons (each table costs a subprocess)."""
    folder = tmp_path_factory.mktemp("sessions")
    with override_settings(SESSIONS_DIR=folder):
        yield folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """An empty store of the test's own, and no table kept in this process."""
    with override_settings(SESSIONS_DIR=tmp_path / "sessions"):
        sessions._tables.clear()
        sessions._names.clear()
        yield tmp_path / "sessions"
    sessions._tables.clear()
    sessions._names.clear()


def folder_of(store: Path) -> Path:
    [folder] = store.iterdir()
    return folder


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("year", YEARS)
def test_stored_sessions_are_the_librarys_on_every_day_of_the_year(
    shared_store: Path, code: str, year: int
) -> None:
    calendar = exchange_calendars.get_calendar(code, start=f"{year - 1}-12-01", end=f"{year + 1}-01-31")
    day = dt.date(year, 1, 1)
    sessions_seen = 0
    while day.year == year:
        expected = None
        if calendar.is_session(day.isoformat()):
            opens, closes = calendar.session_open_close(day.isoformat())
            expected = (opens.to_pydatetime(), closes.to_pydatetime())
            sessions_seen += 1
        assert sessions.hours(code, day) == expected, (code, day)
        day += dt.timedelta(days=1)
    assert sessions_seen > 240
    assert (folder_of(shared_store) / f"{code.replace('/', '%2F')}-{year}.json").is_file()


@pytest.mark.parametrize(
    ("code", "day", "hours_utc"),
    [
        ("XNYS", dt.date(2026, 11, 26), None),  # Thanksgiving
        ("XNYS", dt.date(2026, 11, 27), ("14:30", "18:00")),  # the day after closes at 13:00
        ("XNYS", dt.date(2026, 12, 24), ("14:30", "18:00")),  # Christmas Eve, early close
        ("XNYS", dt.date(2026, 12, 31), ("14:30", "21:00")),  # the year's last session
        ("XNYS", dt.date(2027, 1, 1), None),  # New Year's Day
        ("XNYS", dt.date(2027, 1, 4), ("14:30", "21:00")),  # the next year's first
        ("XLON", dt.date(2026, 12, 24), ("08:00", "12:30")),  # London's early close
        ("XLON", dt.date(2026, 12, 28), None),  # Boxing Day (substitute)
        ("XTKS", dt.date(2026, 12, 31), None),  # Tokyo's year-end holidays
        ("XTKS", dt.date(2027, 1, 4), ("00:00", "06:30")),  # and its first session after them
        ("24/7", dt.date(2026, 12, 26), ("00:00", "00:00")),  # a Saturday, all day
    ],
)
def test_sessions_at_the_edges_match_the_library(
    shared_store: Path, code: str, day: dt.date, hours_utc: tuple[str, str] | None
) -> None:
    got = sessions.hours(code, day)
    assert got == library_hours(code, day)
    if hours_utc is None:
        assert got is None
    else:
        assert got is not None and (f"{got[0]:%H:%M}", f"{got[1]:%H:%M}") == hours_utc
        assert got[0].tzinfo is dt.UTC and got[0].date() == day


def test_a_year_not_yet_stored_is_computed_and_stored(store: Path) -> None:
    assert sessions.hours("XNYS", dt.date(2026, 7, 2)) == library_hours("XNYS", dt.date(2026, 7, 2))
    folder = folder_of(store)
    assert [p.name for p in folder.iterdir()] == ["XNYS-2026.json"]
    # 2031: nothing stored for it yet; Independence Day on a Friday is observed that day.
    assert sessions.hours("XNYS", dt.date(2031, 7, 4)) is None
    assert sessions.hours("XNYS", dt.date(2031, 7, 3)) == library_hours("XNYS", dt.date(2031, 7, 3))
    assert sorted(p.name for p in folder.iterdir()) == ["XNYS-2026.json", "XNYS-2031.json"]
    assert folder.name == f"exchange_calendars-{exchange_calendars.__version__}-v{sessions.STORE_FORMAT}"


def test_a_stored_table_is_read_not_computed_again(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    day = dt.date(2026, 11, 27)
    expected = sessions.hours("XNYS", day)
    sessions._tables.clear()  # as a new process: only the file is left

    def no_subprocess(args: list[str]) -> None:
        raise AssertionError(f"computed again: {args}")

    monkeypatch.setattr(sessions, "_compute", no_subprocess)
    assert sessions.hours("XNYS", day) == expected


CORRUPTIONS = {
    "empty": "",
    "not JSON": '{"code": "XNYS", "year": 20',
    "not a table": "[1, 2, 3]",
    "another year's": None,  # filled in by the test: 2027's table under 2026's name
    "a session closing before it opens": json.dumps(
        {"code": "XNYS", "year": 2026, "sessions": [["2026-11-27", 1764268200, 1764255600]]}
    ),
    "a day of another year": json.dumps(
        {"code": "XNYS", "year": 2026, "sessions": [["2025-11-27", 1764255600, 1764268200]]}
    ),
    "times as text": json.dumps(
        {"code": "XNYS", "year": 2026, "sessions": [["2026-11-27", "14:30", "18:00"]]}
    ),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_table_is_computed_again_and_stored_whole(store: Path, corruption: str) -> None:
    day = dt.date(2026, 11, 27)
    sessions.hours("XNYS", day)
    sessions.hours("XNYS", dt.date(2027, 1, 4))
    path = folder_of(store) / "XNYS-2026.json"
    text = CORRUPTIONS[corruption]
    if text is None:
        text = (folder_of(store) / "XNYS-2027.json").read_text()
    path.write_text(text)
    sessions._tables.clear()
    assert sessions.hours("XNYS", day) == library_hours("XNYS", day)
    assert sessions.hours("XNYS", dt.date(2026, 11, 26)) is None
    stored = json.loads(path.read_text())
    assert stored["year"] == 2026 and len(stored["sessions"]) == 251


def test_a_missing_store_is_computed_again(store: Path) -> None:
    day = dt.date(2026, 12, 24)
    expected = sessions.hours("XNYS", day)
    for path in folder_of(store).iterdir():
        path.unlink()
    folder_of(store).rmdir()
    sessions._tables.clear()
    assert sessions.hours("XNYS", day) == expected
    assert (folder_of(store) / "XNYS-2026.json").is_file()


def test_calendar_names_are_the_librarys_and_rebuilt_when_corrupt(store: Path) -> None:
    expected = tuple(sorted(exchange_calendars.get_calendar_names(include_aliases=True)))
    assert sessions.calendar_names() == expected
    assert {"XNYS", "XLON", "XTKS", "24/7"} <= set(expected)
    path = folder_of(store) / "calendar-names.json"
    stored = json.loads(path.read_text())
    assert stored["names"] == list(expected) and set(stored["zones"]) == set(expected)
    bad = [
        "",
        '{"names": []}',
        '{"names": ["XNYS", 3]}',
        "[]",
        '{"names": ["XNYS"]}',  # no zones
        '{"names": ["XNYS"], "zones": {}}',
        '{"names": ["XNYS"], "zones": {"XNYS": ""}}',
    ]
    for text in bad:
        path.write_text(text)
        sessions._names.clear()
        assert sessions.calendar_names() == expected
        assert json.loads(path.read_text()) == stored


def test_each_codes_zone_is_the_librarys_aliases_resolved(store: Path) -> None:
    from exchange_calendars import calendar_utils

    dispatcher = calendar_utils.global_calendar_dispatcher
    for code in ("XNYS", "XLON", "XTKS", "XHKG", "XASX", "XNAS", "NYSE", "24/7"):
        expected = str(dispatcher._calendar_factories[dispatcher.resolve_alias(code)].tz)
        assert sessions.zone(code) == expected
    assert sessions.zone("XLON") == "Europe/London" and sessions.zone("NYSE") == "America/New_York"
    with pytest.raises(KeyError):
        sessions.zone("NOPE")


def test_an_unknown_code_or_a_year_the_library_cannot_build_is_a_value_error(store: Path) -> None:
    with pytest.raises(ValueError, match="NOPE"):
        sessions.hours("NOPE", dt.date(2026, 1, 2))
    with pytest.raises(ValueError):
        sessions.hours("XNYS", dt.date(1, 1, 3))
    # Nothing stored for either: the next ask tries again.
    assert not store.exists() or not any(folder_of(store).iterdir())


def test_an_unwritable_store_still_answers(store: Path) -> None:
    store.parent.mkdir(exist_ok=True)
    store.write_text("a file where the folder should be")
    assert sessions.hours("XNYS", dt.date(2026, 11, 27)) == library_hours("XNYS", dt.date(2026, 11, 27))


def mapped_files(pid: int) -> set[str]:
    """The files mapped into process ``pid``: its shared libraries, extension modules among them."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6}


def test_web_processes_answer_without_importing_pandas(site: Site) -> None:
    """Importing pandas (or numpy, under the calendar library) maps their extension modules into
    the process, so a web process's memory map tells whether it was ever imported there."""
    key = site.create_bot("no-pandas")
    headers = {"Authorization": f"Bearer {key}"}
    # The periods ask the market calendar for their last 30 trading days (over a year's end).
    for path in (
        "/api/v1/summary/daily/",
        "/api/v1/summary/daily/?date=2026-11-27",
        "/api/v1/summary/period/",
        "/api/v1/summary/period/?end=2026-01-06",
        "/api/v1/status/",
        "/api/v1/trades/?date=2026-11-26",
    ):
        for _ in range(4):  # the web processes share the socket: each is likely to answer some
            response = requests.get(f"{site.url}{path}", headers=headers, timeout=30)
            assert response.status_code == 200, (path, response.text[:300])
    [server] = [p.pid for p in site.processes]
    web = child_pids(server)
    assert web
    for pid in web:
        files = mapped_files(pid)
        assert any("_sqlite3" in name or "psycopg" in name for name in files)  # the check sees modules
        heavy = sorted(name for name in files if "/pandas/" in name or "/numpy" in name)
        assert heavy == [], f"web process {pid} imported {heavy[:3]}"
    stored = list(Path(site.env["SESSIONS_DIR"]).glob("*/XNYS-*.json"))
    assert {p.name for p in stored} >= {"XNYS-2025.json", "XNYS-2026.json"}
