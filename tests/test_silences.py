"""Silences are checked where they are typed: an end that is not in the future is refused, naming
the field; the quick ends (an hour, the rest of the trading day, the next open) are computed in
market time when saved, across the market's midnight rather than UTC's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from alerts.models import QuickEnd, Silence

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")
SECOND = dt.timedelta(seconds=1)
THURSDAY, FRIDAY = dt.date(2026, 1, 15), dt.date(2026, 1, 16)  # Monday the 19th: a holiday (MLK Day)


def ny(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=NY)


@contextmanager
def clock(moment: dt.datetime) -> Iterator[None]:
    with mock.patch("django.utils.timezone.now", return_value=moment.astimezone(dt.UTC)):
        yield


def form(**fields: Any) -> dict[str, Any]:
    data = {"rule": "", "reason": "", "quick_end": "", "until_0": "", "until_1": "", "repeat": ""}
    data.update({"start_time": "", "end_time": ""})
    return data | fields


def typed(moment: dt.datetime) -> dict[str, str]:
    """``moment`` as typed in the admin's date and time boxes (market time, the site's TIME_ZONE)."""
    local = moment.astimezone(NY)
    return {"until_0": f"{local:%Y-%m-%d}", "until_1": f"{local:%H:%M:%S}"}


def errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    return {name: list(messages) for name, messages in response.context["adminform"].form.errors.items()}


NOW = ny(THURSDAY, 11, 0, 0)


@pytest.mark.parametrize(
    ("until", "repeat", "accepted"),
    [
        (NOW - SECOND, "", False),
        (NOW, "", False),  # ending exactly now mutes nothing
        (NOW + SECOND, "", True),
        (NOW, "trading_days", False),  # a repeating one that stops repeating now is as useless
        (NOW + SECOND, "trading_days", True),
    ],
)
def test_a_silence_ending_now_or_before_is_refused_and_one_second_ahead_is_saved(
    admin_client: Client, until: dt.datetime, repeat: str, accepted: bool
) -> None:
    window = {"start_time": "09:30", "end_time": "09:35"} if repeat else {}
    with clock(NOW):
        response = admin_client.post(
            "/admin/alerts/silence/add/", form(repeat=repeat, **window, **typed(until))
        )
    if accepted:
        assert response.status_code == 302, errors(response)
        assert Silence.objects.get().until == until
    else:
        found = errors(response)
        assert list(found) == ["until"]
        assert found["until"] == [f"Must be in the future: {until:%Y-%m-%d %H:%M:%S} EST has passed."]
        assert not Silence.objects.exists()


def test_the_model_refuses_a_past_end_whoever_saves_it() -> None:
    with clock(NOW):
        with pytest.raises(ValidationError) as refused:
            Silence(until=NOW).full_clean()
        assert list(refused.value.message_dict) == ["until"]
        Silence(until=NOW + SECOND).full_clean()


@pytest.mark.parametrize(
    ("now", "quick", "end"),
    [
        (ny(THURSDAY, 23, 59, 59), QuickEnd.HOUR, ny(FRIDAY, 0, 59, 59)),
        # One second before the market's midnight (04:59:59 UTC, Friday already in UTC since 05:00
        # the day before): the trading day ends in one second, not at UTC's next midnight.
        (ny(THURSDAY, 23, 59, 59), QuickEnd.TRADING_DAY, ny(FRIDAY, 0)),
        (ny(FRIDAY, 0), QuickEnd.TRADING_DAY, ny(dt.date(2026, 1, 17), 0)),
        (ny(THURSDAY, 19, 30), QuickEnd.TRADING_DAY, ny(FRIDAY, 0)),  # 00:30 UTC Friday
        (ny(THURSDAY, 23, 59, 59), QuickEnd.NEXT_OPEN, ny(FRIDAY, 9, 30)),
        (ny(FRIDAY, 9, 30) - SECOND, QuickEnd.NEXT_OPEN, ny(FRIDAY, 9, 30)),
        # Open from the bell on: the next open is after the weekend and Martin Luther King Jr. Day.
        (ny(FRIDAY, 9, 30), QuickEnd.NEXT_OPEN, ny(dt.date(2026, 1, 20), 9, 30)),
        (ny(FRIDAY, 16), QuickEnd.NEXT_OPEN, ny(dt.date(2026, 1, 20), 9, 30)),
    ],
)
def test_a_quick_end_is_computed_in_market_time_when_saved(
    admin_client: Client, now: dt.datetime, quick: QuickEnd, end: dt.datetime
) -> None:
    assert quick.end(now.astimezone(dt.UTC)) == end
    with clock(now):
        response = admin_client.post(
            "/admin/alerts/silence/add/", form(quick_end=quick.value, reason="noisy open")
        )
    assert response.status_code == 302, errors(response)
    assert Silence.objects.get().until == end


def test_a_quick_end_replaces_a_time_typed_below_even_a_refused_one(admin_client: Client) -> None:
    with clock(NOW):
        response = admin_client.post(
            "/admin/alerts/silence/add/", form(quick_end="hour", **typed(NOW - dt.timedelta(days=1)))
        )
    assert response.status_code == 302, errors(response)
    assert Silence.objects.get().until == NOW + dt.timedelta(hours=1)


def test_the_add_form_offers_the_quick_ends(admin_client: Client) -> None:
    page = admin_client.get("/admin/alerts/silence/add/").content.decode()
    for label in ("for an hour", "the rest of the trading day", "until the next open"):
        assert label in page
    with clock(NOW):
        response = admin_client.post("/admin/alerts/silence/add/", form(quick_end="tomorrow"))
    assert "quick_end" in errors(response)
