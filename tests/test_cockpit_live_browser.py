"""The cockpit updating itself in the real browser (headless Chromium, the fixtures of
``tests/test_admin_browser.py``) against ``live_server``, whose requests this process sees: a trade
posted through the API shows on an open cockpit without a reload, with what the operator opened
still open and the page where it was scrolled; a hidden page stops asking; an expired session and a
failing server are said, never blanked; without JavaScript the page reloads itself as before.

The page renders ``data-refresh-seconds="15"`` (tests/test_cockpit_live.py); these tests set the
attribute to a second or three before the script reads it, so no test waits 15 s per refresh."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import requests
from django.core.signals import request_started
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests import test_admin_browser as admin_browser
from tests.harness import clear_of_market_midnight
from tests.test_admin_browser import DESKTOP, PHONE, log_in, text_of
from trades.models import Bot

browser, download_dir, superuser = admin_browser.browser, admin_browser.download_dir, admin_browser.superuser
pytestmark = pytest.mark.usefixtures("transactional_db")
LIVE = "/admin/cockpit/live/"
ALPHA = "#cockpit-bots .bot-card[data-bot='alpha']"
trade_ids = itertools.count(1)


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return result


@pytest.fixture
def asked() -> Iterator[list[str]]:
    """Each request for the live part that reached the server: the ETag it sent ("" for none)."""
    seen: list[str] = []

    def count(sender: Any, environ: dict[str, Any], **kwargs: Any) -> None:
        if environ.get("PATH_INFO") == LIVE:
            seen.append(environ.get("HTTP_IF_NONE_MATCH", ""))

    request_started.connect(count, dispatch_uid="cockpit-live-test")
    yield seen
    request_started.disconnect(dispatch_uid="cockpit-live-test")


@pytest.fixture
def alpha_key(superuser: Any) -> str:
    clear_of_market_midnight(10)  # the trades and the page belong to one trading day
    return Bot.objects.create(name="alpha").issue_key()[1]


def post_trade(url: str, key: str, pnl: float) -> None:
    body = [
        {
            "external_id": f"live-{next(trade_ids)}",
            "symbol": "AAPL",
            "side": "SELL",
            "quantity": 1,
            "price": 100,
            "pnl": pnl,
            "executed_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat(),
        }
    ]
    response = requests.post(f"{url}/api/v1/trades/", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text


def open_cockpit(driver: WebDriver, url: str, refresh_seconds: float) -> None:
    """Log in and land on the cockpit, its script asking every ``refresh_seconds`` (set on the
    page's attribute when the document is parsed, before the deferred script reads it)."""
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {
            "source": "document.addEventListener('readystatechange', () => {"
            " const live = document.getElementById('cockpit-live');"
            " if (live && document.readyState === 'interactive')"
            f" live.dataset.refreshSeconds = '{refresh_seconds}';"
            "});"
        },
    )
    log_in(driver, SimpleNamespace(url=url), "/admin/")
    driver.execute_script("window.__marker = 'before';")  # gone if the page reloads


def not_reloaded(driver: WebDriver) -> bool:
    return driver.execute_script(
        "return window.__marker === 'before' && performance.getEntriesByType('navigation').length === 1"
    )


def line(driver: WebDriver) -> str:
    return text_of(driver, ".cockpit-updated")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_new_trade_changes_todays_pnl_on_an_open_cockpit_without_a_reload(
    browser: WebDriver, live_server: Any, alpha_key: str, asked: list[str], size: tuple[int, int]
) -> None:
    post_trade(live_server.url, alpha_key, 12.5)
    browser.set_window_size(*size)
    open_cockpit(browser, live_server.url, 1)
    assert text_of(browser, f"{ALPHA} .today-pnl") == "12.50"
    # The operator opens the bot's 30-day section and scrolls down to it.
    browser.find_element(By.CSS_SELECTOR, f"{ALPHA} details.bot-period summary").click()
    scrolled = browser.execute_script(
        "window.scrollTo(0, 200); return window.scrollY;"
    )  # 0 when the page fits the window
    wait_until(lambda: len(asked) >= 2, 10, "two checks")  # the script is asking, unchanged so far

    post_trade(live_server.url, alpha_key, 30)
    started = time.monotonic()
    # Both figures (the second inside the opened section): the cockpit reads them one query after
    # the other, so a check that ran while the trade was being stored may show one of them first.
    wait_until(
        lambda: (
            (text_of(browser, f"{ALPHA} .today-pnl"), text_of(browser, f"{ALPHA} .period-pnl"))
            == ("42.50", "42.50")
        ),
        20,
        "today's and the period's P&L updated",
    )
    assert time.monotonic() - started < 20
    assert not_reloaded(browser)
    assert browser.execute_script(f'return document.querySelector("{ALPHA} details.bot-period").open')
    assert browser.execute_script("return window.scrollY") == scrolled
    # After the first answer each check sends the ETag it was given.
    # (Weak: compressed, tests/test_cockpit_live.py.)
    assert asked[0] == "" and all(re.fullmatch(r'W/"[0-9a-f]{32}"', etag) for etag in asked[1:]), asked
    assert line(browser).startswith("Updated ") and line(browser).endswith("; updates every 1 s.")
    width, inner = admin_browser.page_width(browser)
    assert width <= inner, f"the cockpit is {width} px wide in a {inner} px window"


def test_a_hidden_cockpit_stops_asking_and_asks_at_once_when_shown_again(
    browser: WebDriver, live_server: Any, alpha_key: str, asked: list[str]
) -> None:
    browser.set_window_size(*DESKTOP)
    open_cockpit(browser, live_server.url, 3)
    wait_until(lambda: len(asked) >= 1, 10, "a first check")
    # Hidden, as a tab in the background is (a test hook over document.visibilityState).
    browser.execute_script(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
        "document.dispatchEvent(new Event('visibilitychange'));"
    )
    time.sleep(1)  # a check under way when it was hidden may still arrive
    before = len(asked)
    time.sleep(7)  # asserting that nothing happens: two checks' worth of silence
    assert len(asked) == before, asked
    # Shown again after more than its 3 s: it asks at once, not 3 s later.
    browser.execute_script(
        "delete document.visibilityState; document.dispatchEvent(new Event('visibilitychange'));"
    )
    shown = time.monotonic()
    wait_until(lambda: len(asked) > before, 10, "a check once shown")
    assert time.monotonic() - shown < 2  # the next interval would be 3 s; 2 s for a loaded machine
    assert not_reloaded(browser)


def test_an_expired_session_and_a_failing_server_are_said_and_the_figures_stay(
    browser: WebDriver, live_server: Any, alpha_key: str, asked: list[str]
) -> None:
    post_trade(live_server.url, alpha_key, 12.5)
    browser.set_window_size(*PHONE)
    open_cockpit(browser, live_server.url, 1)
    wait_until(lambda: line(browser).startswith("Updated "), 10, "a first check")

    # The server fails: the page says since when it is not updated and keeps what it showed.
    failures: list[str] = []

    def fail(*args: Any) -> str:
        failures.append("down")
        raise RuntimeError("the server is down")

    with mock.patch("monitorsite.admin_site.render_block", side_effect=fail):
        wait_until(lambda: line(browser).startswith("Not updated since "), 10, "the failure said")
        assert re.fullmatch(
            r"Not updated since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+; trying again in 2 s\.", line(browser)
        )
        assert text_of(browser, f"{ALPHA} .today-pnl") == "12.50"
        assert browser.find_element(By.CSS_SELECTOR, "#cockpit-live").get_attribute("data-problem")
        # It keeps trying, waiting twice as long after each failure: 2 s, then 4 s.
        wait_until(lambda: "trying again in 4 s" in line(browser), 10, "the second failure")
        assert len(failures) == 2
    wait_until(lambda: line(browser).startswith("Updated "), 10, "updated again")
    assert browser.find_element(By.CSS_SELECTOR, "#cockpit-live").get_attribute("data-problem") is None

    # The session ends: the script notices the login page, says so, and stops asking.
    browser.delete_cookie("sessionid")
    wait_until(lambda: line(browser) == "Signed out — reload.", 10, "signed out said")
    assert text_of(browser, f"{ALPHA} .today-pnl") == "12.50"  # the last figures stay
    stopped = len(asked)
    time.sleep(3)  # asserting that nothing happens: three intervals without a check
    assert len(asked) == stopped
    assert (
        browser.find_element(By.CSS_SELECTOR, ".cockpit-updated a").get_attribute("href").endswith("/admin/")
    )
    assert not_reloaded(browser)


def test_without_javascript_the_page_reloads_itself_and_with_it_never(
    browser: WebDriver, live_server: Any, alpha_key: str
) -> None:
    """The only reload is in <noscript>: an element, which the browser acts on, when scripts are off;
    text it never parses into one when they are on."""
    log_in(browser, live_server, "/admin/")
    refresh = "head meta[http-equiv=refresh]"
    assert browser.find_elements(By.CSS_SELECTOR, refresh) == []
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    browser.get(f"{live_server.url}/admin/")
    (meta,) = browser.find_elements(By.CSS_SELECTOR, refresh)
    assert meta.get_attribute("content") == "30"
    assert text_of(browser, ".cockpit-updated").endswith("; reloads every 30 s.")


def test_a_halt_that_arrives_while_the_cockpit_is_open_can_be_resumed_from_it(
    browser: WebDriver, live_server: Any, alpha_key: str
) -> None:
    """Its form came with a placeholder for the CSRF token; the script put the page's own in its
    place, so the button leads to the question, not to a CSRF failure."""
    from alerts.models import TradingHalt
    from monitorsite.admin_site import CSRF_PLACEHOLDER
    from trades.market import trading_day_of

    browser.set_window_size(*PHONE)
    open_cockpit(browser, live_server.url, 1)
    today = trading_day_of(dt.datetime.now(dt.UTC))
    halt = TradingHalt.objects.create(
        bot=Bot.objects.get(name="alpha"),
        trading_day=today,
        ends_on=today + dt.timedelta(days=4),
        reason="max daily loss: -1,200",
        created_at=dt.datetime.now(dt.UTC),
    )
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f"#halt-{halt.pk}"), 20, "the halt shown")
    assert not_reloaded(browser)
    token = browser.find_element(By.CSS_SELECTOR, f"#halt-{halt.pk} input[name=csrfmiddlewaretoken]")
    assert token.get_attribute("value") not in ("", CSRF_PLACEHOLDER)
    browser.find_element(By.CSS_SELECTOR, f"#halt-{halt.pk} button.resume-trading").click()
    assert "alpha" in admin_browser.wait_for(browser, ".halts-to-resume").text
