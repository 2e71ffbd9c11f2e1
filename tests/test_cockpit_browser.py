"""The cockpit's layout and the report page in the real browser (headless Chromium, the fixtures of
``tests/test_admin_browser.py``) against the real server, on a phone (390 x 844) and at a desk
(1,400 x 1,000): bots side by side at a desk and stacked on a phone, no sideways scroll, an opened
30-day section still open after the reload, and the report page with its CSV download."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from monitor_client.wire import SYMBOL_MAX_LENGTH
from tests import test_admin_browser as admin_browser
from tests.test_admin_browser import DESKTOP, PHONE, WAIT_SECONDS, admin_log_in, page_width, text_of, wait_for
from trades.formats import format_money

browser, download_dir = admin_browser.browser, admin_browser.download_dir  # the fixtures, here too
# Set COCKPIT_SCREENSHOTS=/some/folder to keep what the browser saw (cockpit and report, each size).
SCREENSHOTS = os.environ.get("COCKPIT_SCREENSHOTS")


def keep_screenshot(driver: WebDriver, name: str) -> None:
    if SCREENSHOTS:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        width = driver.execute_script("return window.innerWidth")
        size = driver.get_window_size()
        driver.set_window_size(
            size["width"], height + size["height"] - driver.execute_script("return window.innerHeight")
        )
        driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}-{width}.png"))
        driver.set_window_size(size["width"], size["height"])


def post_trades(url: str, key: str, pnls: list[float]) -> None:
    """Closed trades of today (the last a minute ago at most), and a heartbeat."""
    now = dt.datetime.now(dt.UTC)
    body = [
        {
            "external_id": f"b-{i}",
            "symbol": "AAPL",
            "side": "SELL",
            "quantity": 1,
            "price": 100,
            "pnl": pnl,
            "strategy": "momentum",
            "executed_at": (now - dt.timedelta(seconds=60 - i)).isoformat(),
        }
        for i, pnl in enumerate(pnls)
    ]
    auth = {"Authorization": f"Bearer {key}"}
    assert requests.post(f"{url}/api/v1/trades/", json=body, headers=auth, timeout=30).status_code == 201
    assert requests.post(f"{url}/api/v1/heartbeat/", json={"status": "trading"}, headers=auth, timeout=30).ok


@pytest.fixture
def two_bots(site: Any) -> dict[str, str]:
    """The site with two bots that traded today (each small: no rule halts them); their keys by name."""
    from tests.harness import clear_of_market_midnight

    clear_of_market_midnight(10)  # the trades and the page belong to one trading day
    keys = {name: site.create_bot(name) for name in ("alpha", "beta")}
    post_trades(site.url, keys["alpha"], [12.5, -4.25, 30])
    post_trades(site.url, keys["beta"], [-7.75])
    site.admin_session()  # makes the admin user
    return keys


def card_box(driver: WebDriver, bot: str) -> dict[str, float]:
    return driver.execute_script(
        "const r = document.querySelector(`.bot-card[data-bot='${arguments[0]}']`).getBoundingClientRect();"
        "return {top: r.top + window.scrollY, left: r.left, width: r.width};",
        bot,
    )


def is_open(driver: WebDriver, bot: str) -> bool:
    return driver.execute_script(
        "return document.querySelector(`.bot-card[data-bot='${arguments[0]}'] details.bot-period`).open", bot
    )


def reload(driver: WebDriver) -> None:
    """Reload the cockpit as its 30 s refresh does, and wait until the new page is in."""
    old = driver.find_element(By.CSS_SELECTOR, "#cockpit-bots")
    driver.refresh()
    WebDriverWait(driver, WAIT_SECONDS).until(EC.staleness_of(old))
    wait_for(driver, "#cockpit-bots .bot-card")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_cockpit_layout_open_sections_and_the_report_in_the_browser(
    browser: WebDriver, site: Any, two_bots: dict[str, str], download_dir: Path, size: tuple[int, int]
) -> None:
    browser.set_window_size(*size)
    admin_log_in(browser, site.url)

    # Bots side by side at a desk, one above the other on a phone; never a sideways scroll.
    alpha, beta = card_box(browser, "alpha"), card_box(browser, "beta")
    if size == DESKTOP:
        assert alpha["top"] == beta["top"] and alpha["left"] < beta["left"], (alpha, beta)
        # The cockpit uses the window: two cards take more than 1,000 of its 1,400 px.
        assert beta["left"] + beta["width"] - alpha["left"] > 1000, (alpha, beta)
    else:
        assert alpha["left"] == beta["left"] and alpha["top"] < beta["top"], (alpha, beta)
    width, inner = page_width(browser)
    assert width <= inner, f"the cockpit is {width} px wide in a {inner} px window"

    # The chart names its dates and money.
    card = "#cockpit-bots .bot-card[data-bot='alpha']"
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, f"{card} svg.pnl-chart text.y-label")]
    assert labels == ["0.00", "38.25"]  # one day today: its +38.25 (12.50 - 4.25 + 30), cumulative the same
    assert len(browser.find_elements(By.CSS_SELECTOR, f"{card} svg.pnl-chart text.x-label")) == 1

    keep_screenshot(browser, "cockpit")

    # An opened 30-day section is still open after the reload; the other bot's stays closed.
    assert not is_open(browser, "alpha")
    browser.find_element(By.CSS_SELECTOR, f"{card} details.bot-period summary").click()
    assert is_open(browser, "alpha")
    reload(browser)
    assert is_open(browser, "alpha") and not is_open(browser, "beta")
    browser.find_element(By.CSS_SELECTOR, f"{card} details.bot-period summary").click()  # closed again
    reload(browser)
    assert not is_open(browser, "alpha")

    # The bot's Report link: the page shows the period API's figures, and its CSV downloads.
    browser.find_element(By.CSS_SELECTOR, f"{card} a.bot-report").click()
    wait_for(browser, ".report-figures")
    query = {
        k: v[0] for k, v in parse_qs(urlsplit(browser.current_url).query, keep_blank_values=True).items()
    }
    assert query["bot"] == "alpha"
    period = requests.get(
        f"{site.url}/api/v1/summary/period/?start={query['start']}&end={query['end']}",
        headers={"Authorization": f"Bearer {two_bots['alpha']}"},
        timeout=30,
    ).json()
    figures = {
        dt_.text: dd.text
        for dt_, dd in zip(
            browser.find_elements(By.CSS_SELECTOR, ".report-figures dt"),
            browser.find_elements(By.CSS_SELECTOR, ".report-figures dd"),
            strict=True,
        )
    }
    assert figures["Realized P&L"] == format_money(period["total_pnl"]) == "38.25"
    assert browser.find_elements(By.CSS_SELECTOR, ".report-chart svg.pnl-chart rect.bar")
    assert text_of(browser, "#content h1").startswith("Report: alpha,")
    width, inner = page_width(browser)
    assert width <= inner, f"the report is {width} px wide in a {inner} px window"

    keep_screenshot(browser, "report")
    browser.find_element(By.CSS_SELECTOR, "a.report-csv").click()
    rows = list(csv.reader(io.StringIO(admin_browser.downloaded(download_dir).read_text())))
    assert rows[0] == ["report", "alpha", query["start"], query["end"]]
    assert ["Realized P&L", "38.25"] in rows


def post_state(url: str, key: str, count: int) -> None:
    """A heartbeat with ``count`` positions, the account and the host (disk 6.2% free, memory 7.8%
    available). The first five, longs and shorts, gain or lose the most (the first one's symbol is
    as long as a symbol may be); the rest move by one."""
    gb = 1024**3
    positions = [
        {
            "symbol": ("L" * SYMBOL_MAX_LENGTH) if n == 0 else f"SYM{n:03d}",
            "quantity": (-1) ** n * ((n + 1) * 1000 if n < 5 else 1),
            "avg_price": 100 + n,
            "market_price": 100 + n + (3 if n < 5 else 1) * (-1) ** (n // 2),
        }
        for n in range(count)
    ]
    started = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3, minutes=12)
    body = {
        "status": "trading",
        "positions": positions,
        "equity": 1_234_567.89,
        "cash": -45_678.9,
        "host": {
            "pid": 4242,
            "started_at": started.isoformat(),
            "rss_bytes": 512 * 1024**2,
            "cpu_percent": 12.5,
            "memory_available_bytes": 160 * 1024**2,
            "memory_total_bytes": 2 * gb,
            "disk_free_bytes": int(3.1 * gb),
            "disk_total_bytes": 50 * gb,
        },
    }
    auth = {"Authorization": f"Bearer {key}"}
    response = requests.post(f"{url}/api/v1/heartbeat/", json=body, headers=auth, timeout=30)
    assert response.ok, response.text


def test_a_bot_with_500_positions_keeps_the_cockpit_short_and_narrow_on_a_phone(
    browser: WebDriver, site: Any
) -> None:
    """The card of a bot holding 500 positions is as tall as one holding its five largest but for its
    "N more" line; nothing scrolls sideways, whatever the symbols' and figures' lengths."""
    keys = {name: site.create_bot(name) for name in ("many", "few")}
    post_state(site.url, keys["many"], 500)
    post_state(site.url, keys["few"], 5)
    site.admin_session()
    browser.set_window_size(*PHONE)
    admin_log_in(browser, site.url)
    many = "#cockpit-bots .bot-card[data-bot='many']"
    wait_for(browser, f"{many} .position-list")
    assert len(browser.find_elements(By.CSS_SELECTOR, f"{many} li.position")) == 5
    assert text_of(browser, f"{many} .positions-more") == "495 more"
    assert "disk 6.2% free (3.1 GB of 50.0 GB)" in text_of(browser, f"{many} .bot-host")
    width, inner = page_width(browser)
    assert width <= inner, f"the cockpit is {width} px wide in a {inner} px window"

    def height(bot: str) -> float:
        return browser.execute_script(
            "return document.querySelector(`.bot-card[data-bot='${arguments[0]}']`)"
            ".getBoundingClientRect().height",
            bot,
        )

    more_line = browser.execute_script(
        "return document.querySelector(`.bot-card[data-bot='many'] .positions-more`)"
        ".getBoundingClientRect().height"
    )
    assert height("many") - height("few") == pytest.approx(more_line, abs=1), (height("many"), height("few"))
    assert height("many") < 1.5 * PHONE[1], height("many")  # about a screen, not 500 rows
    if SCREENSHOTS:
        keep_screenshot(browser, "cockpit-state")
        card = browser.find_element(By.CSS_SELECTOR, many)
        card.screenshot(str(Path(SCREENSHOTS) / "cockpit-state-card.png"))
