"""The strategies side by side in the real browser (headless Chromium, the fixtures of
``tests/test_admin_browser.py``) against the real server, on a phone (390 x 844) and at a desk
(1,400 x 1,000): the cockpit
card's section opens to its table and chart, and neither it nor the report page's strategies
table and chart is wider than the window."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from monitorsite.chart import SHOWN_STRATEGIES
from tests import test_admin_browser as admin_browser
from tests.test_admin_browser import DESKTOP, PHONE, admin_log_in, page_width, wait_for
from tests.test_cockpit_browser import keep_screenshot

browser, download_dir = admin_browser.browser, admin_browser.download_dir  # the fixtures, here too
# More strategies than lines drawn, one without a name and one with a long name.
STRATEGIES = [
    "momentum",
    "meanrev",
    "",
    "breakout-with-a-rather-long-name-indeed",
    "pairs",
    "gap",
    "news",
    "vwap",
]
CARD = "#cockpit-bots .bot-card[data-bot='alpha']"


@pytest.fixture
def busy_bot(site: Any) -> str:
    """The bot alpha with closed trades of each strategy over its last few days; its key."""
    from tests.harness import clear_of_market_midnight

    clear_of_market_midnight(10)
    key = site.create_bot("alpha")
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    body = [
        {
            "external_id": f"s-{n}-{back}",
            "symbol": "AAPL",
            "side": "SELL",
            "quantity": 1,
            "price": 100,
            "pnl": (-1) ** (n + back) * (n + 1) * 1234.5 + back,
            "strategy": strategy,
            "executed_at": (now - dt.timedelta(days=back, seconds=n)).isoformat(),
        }
        for n, strategy in enumerate(STRATEGIES)
        for back in range(4)
    ]
    auth = {"Authorization": f"Bearer {key}"}
    assert requests.post(f"{site.url}/api/v1/trades/", json=body, headers=auth, timeout=30).status_code == 201
    assert requests.post(
        f"{site.url}/api/v1/heartbeat/", json={"status": "trading"}, headers=auth, timeout=30
    ).ok
    site.admin_session()  # makes the admin user
    return key


def widest(driver: WebDriver, css: str) -> tuple[float, float]:
    """The right edge of the widest element matching ``css``, and the window's width."""
    return driver.execute_script(
        "return [Math.max(...[...document.querySelectorAll(arguments[0])]"
        ".map(e => e.getBoundingClientRect().right)), window.innerWidth];",
        css,
    )


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_strategies_fit_the_window_on_the_cockpit_and_the_report(
    browser: WebDriver, site: Any, busy_bot: str, size: tuple[int, int]
) -> None:
    browser.set_window_size(*size)
    admin_log_in(browser, site.url)
    section = browser.find_element(By.CSS_SELECTOR, f"{CARD} details.bot-strategies")
    section.find_element(By.CSS_SELECTOR, "summary").click()
    assert browser.execute_script("return arguments[0].open", section)
    rows = section.find_elements(By.CSS_SELECTOR, "table.strategy-table tbody tr")
    assert [row.find_element(By.CSS_SELECTOR, "th").text for row in rows] == sorted(
        name or "(none)" for name in STRATEGIES
    )
    lines = section.find_elements(By.CSS_SELECTOR, "svg.strategies-chart polyline.strategy-line")
    assert len(lines) == SHOWN_STRATEGIES and all(line.is_displayed() for line in lines)
    more = section.find_element(By.CSS_SELECTOR, "svg.strategies-chart .legend-more")
    assert more.text == f"{len(STRATEGIES) - SHOWN_STRATEGIES} more"
    for css in (f"{CARD} table.strategy-table td", f"{CARD} svg.strategies-chart"):
        right, inner = widest(browser, css)
        assert right <= inner, f"{css} reaches {right} px in a {inner} px window"
    width, inner = page_width(browser)
    assert width <= inner, f"the cockpit is {width} px wide in a {inner} px window"
    keep_screenshot(browser, "strategies-cockpit")

    browser.find_element(By.CSS_SELECTOR, f"{CARD} a.bot-report").click()
    wait_for(browser, ".report-figures")
    chart = browser.find_element(By.CSS_SELECTOR, ".report-chart svg.strategies-chart")
    assert len(chart.find_elements(By.CSS_SELECTOR, "polyline.strategy-line")) == SHOWN_STRATEGIES
    for css in (".report-table td", "svg.strategies-chart"):
        right, inner = widest(browser, css)
        assert right <= inner, f"{css} reaches {right} px in a {inner} px window"
    width, inner = page_width(browser)
    assert width <= inner, f"the report is {width} px wide in a {inner} px window"
    keep_screenshot(browser, "strategies-report")
