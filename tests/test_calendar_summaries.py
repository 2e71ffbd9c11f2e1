"""The daily summary and the weekly report after each calendar's close: a London (XLON) bot after
London's, a 24/7 bot (in Tokyo's zone) when its day or week ends at its midnight, and the site's
New York bot at the schedule's times as before."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any
from unittest import mock

import pytest
from django.db import connection

from alerts.models import Alert
from alerts.summary import send_if_due, send_weekly_if_due, summary_alerts
from tests.calendar_fixtures import *  # noqa: F403  (the bots fixture: three bots on three calendars)
from trades.models import Bot

pytestmark = pytest.mark.django_db
UTC = dt.UTC
SECOND = dt.timedelta(seconds=1)


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, second, tzinfo=UTC)


def daily(now: dt.datetime) -> list[str]:
    return sorted(alert.title for alert in send_if_due(now=now))


def weekly(now: dt.datetime) -> list[str]:
    return sorted(alert.title for alert in send_weekly_if_due(now=now))


def test_each_daily_summary_goes_out_after_its_calendars_close(bots: dict[str, Bot]) -> None:
    # Thursday 3 December. The 24/7 bot's Wednesday ended at midnight in Tokyo (15:00 UTC on the
    # 2nd): its summary is the first due; its Thursday ends at 15:00 UTC on the 3rd.
    assert daily(utc(3, 14)) == ["Daily summary: crypto, Wednesday 2026-12-02"]
    assert daily(utc(3, 15, 4, 59)) == []
    assert daily(utc(3, 15, 5)) == ["Daily summary: crypto, Thursday 2026-12-03"]
    # London closes at 16:30 (GMT): five minutes after.
    assert daily(utc(3, 16, 34, 59)) == []
    assert daily(utc(3, 16, 35)) == ["Daily summary: london, Thursday 2026-12-03"]
    assert daily(utc(3, 16, 36)) == []
    # New York's at the schedule's 16:05 EST, for its own bot alone.
    assert daily(utc(3, 21, 4, 59)) == []
    assert daily(utc(3, 21, 5)) == ["Daily summary: new_york, Thursday 2026-12-03"]
    assert daily(utc(3, 23, 59)) == []
    subjects = set(Alert.objects.filter(bot=bots["london"]).values_list("subject", flat=True))
    assert subjects == {f"bot-{bots['london'].pk}:2026-12-03"}


def test_a_london_early_close_and_holiday(db: None) -> None:
    Bot.objects.create(name="london", calendar="XLON")
    # Christmas Eve closes at 12:30 in London; Christmas Day holds no session.
    assert daily(utc(24, 12, 34, 59)) == []
    assert daily(utc(24, 12, 35)) == ["Daily summary: london, Thursday 2026-12-24"]
    assert daily(utc(25, 17)) == []


def test_each_weekly_report_goes_out_after_its_weeks_last_close(bots: dict[str, Bot]) -> None:
    # Friday 4 December: London's last close of the week at 16:30 GMT, the report 15 minutes on.
    assert weekly(utc(4, 16, 44, 59)) == []
    assert weekly(utc(4, 16, 45)) == ["Weekly report: london, 2026-11-30 to 2026-12-04"]
    assert weekly(utc(4, 21, 14, 59)) == []
    assert weekly(utc(4, 21, 15)) == ["Weekly report: new_york, 2026-11-30 to 2026-12-04"]  # 16:15 EST
    # The 24/7 bot's week ends at midnight on Sunday in Tokyo: 15:00 UTC on Sunday the 6th.
    assert weekly(utc(5, 18)) == []
    assert weekly(utc(6, 15, 14, 59)) == []
    assert weekly(utc(6, 15, 15)) == ["Weekly report: crypto, 2026-11-30 to 2026-12-06"]
    assert weekly(utc(6, 15, 16)) == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_send_a_calendars_summary_once(db: None) -> None:
    Bot.objects.create(name="london", calendar="XLON")
    results: list[int] = []
    barrier, both_writing = threading.Barrier(2), threading.Barrier(2)

    def write(*args: Any, **kwargs: Any) -> list[Alert]:
        # Unguarded, both workers would get here: wait (up to a second) for the other to.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_writing.wait(timeout=1)
        return summary_alerts(*args, **kwargs)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(len(send_if_due(now=utc(3, 17))))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    with mock.patch("alerts.summary.summary_alerts", write):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(results) == [0, 1], results
    assert Alert.objects.filter(source="daily_summary").count() == 1
