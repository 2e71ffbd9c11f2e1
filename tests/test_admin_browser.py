"""The admin in a real browser: headless Chromium driven by Selenium against ``live_server``.

Chromium and chromedriver come from Debian's packages (``scripts/test.sh`` installs
them); both paths are given to Selenium so selenium-manager never downloads a driver.
The live server runs in another thread on its own connections, so every test here
uses ``transactional_db``: the data it creates is committed where the server sees it.

Set ``ADMIN_TRADES_SCREENSHOT=/path.png`` to keep the screenshot of the trade list.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model

from tests.conftest import stored_trade
from trades.models import Bot, BotKey, Trade

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# No skipping: scripts/test.sh installs both, and a missing browser must fail the run.
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    raise RuntimeError(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.usefixtures("transactional_db")

ADMIN_USERNAME = "ops"
ADMIN_PASSWORD = "correct horse battery staple"
WAIT_SECONDS = 60  # only waited out when the page never comes; a loaded machine is slow
# "New write key for alpha: <key> — copy it now; ..." (see trades.admin._issue_keys)
NEW_KEY_MESSAGE = re.compile(r"New (write|read-only) key for (?P<bot>.+?): (?P<key>\S+) — copy it now")

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests may run as root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def download_dir(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def browser(download_dir: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own throw-away profile."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(download_dir), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(90)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def superuser(transactional_db: None) -> Any:
    return get_user_model().objects.create_superuser(ADMIN_USERNAME, "ops@example.com", ADMIN_PASSWORD)


@pytest.fixture
def alpha(transactional_db: None) -> Bot:
    return Bot.objects.create(name="alpha")


def _trade(external_id: str, symbol: str, side: str, pnl: str | None, minute: int) -> dict[str, Any]:
    # 15:00 UTC is 10:00/11:00 in New York: one trading day whatever the season.
    return stored_trade(
        0,
        external_id=external_id,
        symbol=symbol,
        side=side,
        pnl=None if pnl is None else Decimal(pnl),
        executed_at=dt.datetime(2025, 3, 14, 15, minute, tzinfo=dt.UTC),
        metadata={"source": "browser-test"},
    )


@pytest.fixture
def recorded_trades(alpha: Bot) -> list[Trade]:
    batch = [
        _trade("t-1", "AAPL", "BUY", None, 1),
        _trade("t-2", "MSFT", "BUY", None, 2),
        _trade("t-3", "TSLA", "SELL", "12.50", 3),
        _trade("t-4", "NVDA", "SELL", "-4.75", 4),
    ]
    result = Trade.objects.record_batch(alpha, batch)
    assert result.duplicates == 0
    return list(Trade.objects.filter(pk__in=result.ids).order_by("executed_at"))


# --- helpers ----------------------------------------------------------------------------


def wait_for(driver: WebDriver, css: str) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def log_in(driver: WebDriver, live_server: Any, next_path: str) -> None:
    """Log in through the admin's own login form and land on ``next_path``."""
    driver.get(f"{live_server.url}/admin/login/?next={next_path}")
    driver.find_element(By.ID, "id_username").send_keys(ADMIN_USERNAME)
    driver.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    # The login page's own URL contains next_path in its query, so compare the path.
    WebDriverWait(driver, WAIT_SECONDS).until(lambda d: urlsplit(d.current_url).path == next_path)
    wait_for(driver, "#user-tools")  # only shown once logged in


def column_texts(driver: WebDriver, field: str) -> list[str]:
    cells = driver.find_elements(By.CSS_SELECTOR, f"#result_list .field-{field}")
    return [cell.text for cell in cells]


def message_texts(driver: WebDriver) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "ul.messagelist li")]


def run_changelist_action(driver: WebDriver, pks: list[int], action: str) -> None:
    for pk in pks:
        driver.find_element(By.CSS_SELECTOR, f"#result_list input.action-select[value='{pk}']").click()
    Select(driver.find_element(By.CSS_SELECTOR, "#changelist-form select[name=action]")).select_by_value(
        action
    )
    driver.find_element(By.CSS_SELECTOR, "#changelist-form .actions button[name=index]").click()


def api_status(live_server: Any, key: str) -> requests.Response:
    return requests.get(
        f"{live_server.url}/api/v1/status/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


# --- tests ------------------------------------------------------------------------------


def test_admin_logs_in_and_filters_trade_list_by_side(
    browser: WebDriver, live_server: Any, superuser: Any, recorded_trades: list[Trade], tmp_path: Path
) -> None:
    log_in(browser, live_server, "/admin/trades/trade/")

    assert browser.find_element(By.CSS_SELECTOR, "#content h1").text == "Select trade to change"
    # Newest first (Trade.Meta.ordering), one row per recorded trade.
    assert column_texts(browser, "symbol") == ["NVDA", "TSLA", "MSFT", "AAPL"]
    assert column_texts(browser, "bot") == ["alpha"] * 4
    # The admin's own CSS was served: the header has its coloured background.
    header_bg = browser.execute_script(
        "return getComputedStyle(document.getElementById('header')).backgroundColor"
    )
    assert header_bg not in ("", "transparent", "rgba(0, 0, 0, 0)")

    screenshot = Path(os.environ.get("ADMIN_TRADES_SCREENSHOT") or tmp_path / "admin_trades.png")
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG")

    # The sidebar filter "By side" -> "Sell" narrows the list to the two sells.
    sell = browser.find_element(By.XPATH, "//*[@id='changelist-filter']//a[normalize-space()='Sell']")
    sell.click()
    WebDriverWait(browser, WAIT_SECONDS).until(EC.url_contains("side__exact=SELL"))
    assert parse_qs(urlsplit(browser.current_url).query) == {"side__exact": ["SELL"]}
    assert column_texts(browser, "symbol") == ["NVDA", "TSLA"]
    assert column_texts(browser, "side") == ["Sell", "Sell"]
    selected = browser.find_element(
        By.CSS_SELECTOR, "#changelist-filter li.selected a[href='?side__exact=SELL']"
    )
    assert selected.text == "Sell"

    # The same filter typed into the URL gives the same rows; BUY gives the others.
    browser.get(f"{live_server.url}/admin/trades/trade/?side__exact=BUY")
    assert column_texts(browser, "symbol") == ["MSFT", "AAPL"]
    assert set(Trade.objects.filter(side="BUY").values_list("symbol", flat=True)) == {"MSFT", "AAPL"}


def test_issued_key_is_shown_once_and_authenticates_against_the_api(
    browser: WebDriver, live_server: Any, superuser: Any, alpha: Bot
) -> None:
    changelist = "/admin/trades/bot/"
    log_in(browser, live_server, changelist)
    assert not BotKey.objects.filter(bot=alpha).exists()

    run_changelist_action(browser, [alpha.pk], "issue_write_key")
    wait_for(browser, "ul.messagelist li.warning")

    messages = message_texts(browser)
    assert len(messages) == 1
    match = NEW_KEY_MESSAGE.search(messages[0])
    assert match, messages
    assert match["bot"] == "alpha"
    key = match["key"]

    # One write key was stored for the bot, hashed: the plain key is not in the database.
    stored = BotKey.objects.get(bot=alpha)
    assert stored.read_only is False and stored.revoked is False
    assert key.startswith(f"{stored.prefix}.")
    assert key not in stored.hashed_key and stored.is_valid(key)

    response = api_status(live_server, key)
    assert response.status_code == 200, response.text
    assert response.json()["bot"] == "alpha"

    # Loading the page again does not show the key again (nor anywhere in the page).
    browser.get(f"{live_server.url}{changelist}")
    wait_for(browser, "#result_list")
    assert message_texts(browser) == []
    assert key not in browser.page_source
    browser.get(f"{live_server.url}/admin/trades/botkey/{stored.pk}/change/")
    wait_for(browser, "#botkey_form")
    assert key not in browser.page_source


def test_revoking_key_in_change_form_makes_api_refuse_it(
    browser: WebDriver, live_server: Any, superuser: Any, alpha: Bot
) -> None:
    bot_key, key = alpha.issue_key()
    assert api_status(live_server, key).status_code == 200

    change_path = f"/admin/trades/botkey/{bot_key.pk}/change/"
    log_in(browser, live_server, change_path)
    revoked = browser.find_element(By.ID, "id_revoked")
    assert not revoked.is_selected()
    revoked.click()
    browser.find_element(By.CSS_SELECTOR, "#botkey_form input[name=_save]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(EC.url_matches(r"/admin/trades/botkey/(\?.*)?$"))
    wait_for(browser, "ul.messagelist li.success")
    assert "was changed successfully" in message_texts(browser)[0]

    bot_key.refresh_from_db()
    assert bot_key.revoked is True
    response = api_status(live_server, key)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unknown or revoked API key."}


def test_csv_export_action_downloads_selected_trades(
    browser: WebDriver, live_server: Any, superuser: Any, recorded_trades: list[Trade], download_dir: Path
) -> None:
    aapl, _msft, tsla, _nvda = recorded_trades
    log_in(browser, live_server, "/admin/trades/trade/")
    run_changelist_action(browser, [aapl.pk, tsla.pk], "export_csv")

    # Chromium writes to temporary names (".org.chromium.*", "*.crdownload") and renames
    # the file to its final name only once the download is complete.
    deadline = time.monotonic() + WAIT_SECONDS
    while not (files := sorted(download_dir.glob("*.csv"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(files) == 1, list(download_dir.iterdir())
    assert re.fullmatch(r"trades_\d{8}_\d{6}\.csv", files[0].name)

    rows = list(csv.reader(io.StringIO(files[0].read_text())))
    assert rows[0] == [
        "id",
        "bot",
        "external_id",
        "executed_at",
        "trading_day",
        "symbol",
        "side",
        "quantity",
        "price",
        "pnl",
        "strategy",
        "received_at",
    ]
    # Only the two selected trades, oldest first.
    assert [(r[0], r[1], r[2], r[5], r[6], r[9]) for r in rows[1:]] == [
        (str(aapl.pk), "alpha", "t-1", "AAPL", "BUY", ""),
        (str(tsla.pk), "alpha", "t-3", "TSLA", "SELL", "12.50000000"),
    ]
    assert rows[1][4] == "2025-03-14"
