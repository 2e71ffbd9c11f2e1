"""What the site writes to disk: the summarised log, and the admin's CSV export."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
import time
from collections.abc import Iterator
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.test import Client

from monitorsite.logfilters import SUMMARY_LOGGER, RefusalSummary
from tests.conftest import stored_trade
from trades.models import Bot, Trade


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


@contextlib.contextmanager
def attached(refusals: RefusalSummary) -> Iterator[tuple[Collected, Collected]]:
    """Two handlers sharing ``refusals``, as the site's console and file handlers do."""
    first, second = Collected(), Collected()
    root = logging.getLogger()
    for handler in (first, second):
        handler.addFilter(refusals)
        root.addHandler(handler)
    try:
        yield first, second
    finally:
        for handler in (first, second):
            root.removeHandler(handler)
        refusals.flush()  # and its timer with it


def refused(status: int, path: str) -> None:
    logging.getLogger("django.request").warning("Refused: %s", path, extra={"status_code": status})


def test_repeated_refusals_are_one_summary_line_per_interval() -> None:
    # An interval far longer than the test: it ends where the test says (flush), not
    # wherever a loaded machine happens to be in the loop. Its timer is tested below.
    refusals = RefusalSummary(interval=3600, burst=2)
    with attached(refusals) as (first, second):
        for n in range(500):
            refused(401, "/api/v1/trades/")
            refused(404, f"/wp-login-{n}.php")
        logging.getLogger("django.security.DisallowedHost").error("Invalid HTTP_HOST header: 'evil'")
        logging.getLogger("django.request").error("Internal Server Error: /api/", extra={"status_code": 500})
        logging.getLogger("trades").warning("something else")
        refusals.flush()  # the interval ends

        assert first.lines == second.lines  # one decision per record, whichever handler asks first
        assert first.lines[:4] == [
            "django.request Refused: /api/v1/trades/",
            "django.request Refused: /wp-login-0.php",
            "django.request Refused: /api/v1/trades/",
            "django.request Refused: /wp-login-1.php",
        ]
        assert "django.security.DisallowedHost Invalid HTTP_HOST header: 'evil'" in first.lines
        assert "django.request Internal Server Error: /api/" in first.lines  # errors are never folded
        assert "trades something else" in first.lines
        (summary,) = [line for line in first.lines if line.startswith(SUMMARY_LOGGER)]
        assert summary == (
            f"{SUMMARY_LOGGER} 996 refused requests in the last 3600 s not logged one by one: "
            "401 x498 (last: Refused: /api/v1/trades/); 404 x498 (last: Refused: /wp-login-499.php)"
        )
        assert len(first.lines) == 8

        # A new interval starts afresh: its first refusals are logged again.
        refused(401, "/api/v1/trades/")
        assert first.lines[-1] == "django.request Refused: /api/v1/trades/"


def test_the_summary_line_comes_by_itself_when_the_interval_ends() -> None:
    refusals = RefusalSummary(interval=0.3, burst=1)
    with attached(refusals) as (first, _):
        refused(401, "/api/v1/trades/")  # starts the interval
        # Refused requests keep coming (held back, after the first), until the timer ends the interval.
        deadline = time.monotonic() + 60
        while not any(line.startswith(SUMMARY_LOGGER) for line in first.lines):
            assert time.monotonic() < deadline, first.lines
            refused(401, "/api/v1/trades/")
            time.sleep(0.01)
        summary = next(line for line in first.lines if line.startswith(SUMMARY_LOGGER))
        assert re.fullmatch(
            rf"{SUMMARY_LOGGER} (\d+) refused requests in the last 0.3 s not logged one by one: "
            r"401 x\1 \(last: Refused: /api/v1/trades/\)",
            summary,
        ), summary


def test_csv_export_neutralises_formulas_and_keeps_numbers_numeric(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot,
        [
            stored_trade(1, external_id='=HYPERLINK("http://evil")', strategy="+cmd", pnl=Decimal("-12.5")),
            stored_trade(2, external_id="@SUM(A1)", strategy="-2+3", pnl=Decimal("4")),
            stored_trade(3, external_id="ok-3", pnl=None),
        ],
    )
    # The API refuses control characters; an operator can still type one in the admin.
    Trade.objects.filter(external_id="ok-3").update(strategy="\tTAB")
    admin = get_user_model().objects.create_superuser("admin", "", "pw")
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/trades/trade/",
        {"action": "export_csv", "_selected_action": list(Trade.objects.values_list("pk", flat=True))},
    )
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["external_id"], row["strategy"], row["pnl"]) for row in table] == [
        ('\'=HYPERLINK("http://evil")', "'+cmd", "-12.50000000"),
        ("'@SUM(A1)", "'-2+3", "4.00000000"),
        ("ok-3", "'\tTAB", ""),
    ]
