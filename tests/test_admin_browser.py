"""The admin in a real browser: headless Chromium driven by Selenium against ``live_server``.

Chromium and chromedriver come from Debian's packages (``scripts/test.sh`` installs
them); both paths are given to Selenium so selenium-manager never downloads a driver.
The live server runs in another thread on its own connections, so every test here
uses ``transactional_db``: the data it creates is committed where the server sees it.

Set ``ADMIN_TRADES_SCREENSHOT=/path.png`` to keep the screenshot of the trade list.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

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


@contextlib.contextmanager
def chromium(download_dir: Path | None = None) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own throw-away profile (downloads into ``download_dir``)."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if download_dir is not None:
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
def browser(download_dir: Path) -> Iterator[WebDriver]:
    with chromium(download_dir) as driver:
        yield driver


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


def downloaded(download_dir: Path, pattern: str = "*.csv") -> Path:
    """The one file Chromium has finished downloading into ``download_dir``.

    Chromium first reserves the final name with an empty file, writes into a temporary
    ("*.crdownload", ".org.chromium.*") and renames that over the reservation once the download
    is complete; so a file of the final name is whole only when it is not empty and no
    temporary is left beside it.
    """
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        entries = list(download_dir.iterdir()) if download_dir.exists() else []
        files = sorted(download_dir.glob(pattern))
        temporaries = [e.name for e in entries if e.name.endswith(".crdownload") or e.name.startswith(".")]
        if files and not temporaries and all(f.stat().st_size > 0 for f in files):
            assert len(files) == 1, entries
            return files[0]
        assert time.monotonic() < deadline, f"no finished download after {WAIT_SECONDS} s: {entries}"
        time.sleep(0.1)


def log_in(
    driver: WebDriver,
    live_server: Any,
    next_path: str,
    *,
    username: str = ADMIN_USERNAME,
    password: str = ADMIN_PASSWORD,
) -> None:
    """Log in through the admin's own login form and land on ``next_path``."""
    driver.get(f"{live_server.url}/admin/login/?next={next_path}")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
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

    assert browser.find_element(By.CSS_SELECTOR, "#content h1").text == "Select trade to view"
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
    files = [downloaded(download_dir)]
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


# --- the cockpit and the admin on a phone, against the real server and task cluster ------

PHONE = (390, 844)
DESKTOP = (1400, 1000)
# A copy of the phone screenshot beside the checkout, for a reviewer to look at, when that folder exists.
COCKPIT_PHONE_COPY = Path("/work/cockpit-phone.png")


@pytest.fixture
def discord() -> Iterator[Any]:
    from tests.discord_server import DiscordServer

    server = DiscordServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class TradingSite:
    site: Any
    key: str
    discord: Any

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        return self.site.sql(statement, *params)

    def api(self, path: str) -> Any:
        response = requests.get(
            f"{self.site.url}{path}", headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def trading_site(site: Any, discord: Any) -> TradingSite:
    """The site with its task cluster; a bot that traded today past its max daily loss (so halted)."""
    from tests.harness import clear_of_market_midnight

    clear_of_market_midnight(10)  # today's figures and the halt belong to one trading day
    ts = TradingSite(site, site.create_bot("alpha"), discord)
    ts.sql(
        "UPDATE alerts_channel SET config = ? WHERE name = 'discord'",
        json.dumps({"webhook_url": discord.url}),
    )
    ts.sql("UPDATE alerts_summaryschedule SET enabled = FALSE, weekly_enabled = FALSE")
    site.admin_session()  # makes the admin user (admin / admin-password-for-tests)
    site.start_cluster()
    now = dt.datetime.now(dt.UTC)
    fills = [
        ("c-1", "AAPL", "BUY", None),
        ("c-2", "AAPL", "SELL", 310.25),
        ("c-3", "MSFT", "SELL", -85.5),
        ("c-4", "TSLA", "SELL", 42),
        ("c-5", "NVDA", "SELL", -1300.75),  # past the default max daily loss (-1000): halts
    ]
    body = [
        {
            "external_id": external_id,
            "symbol": symbol,
            "side": side,
            "quantity": 3,
            "price": 101.5,
            "pnl": pnl,
            "strategy": "momentum",
            "executed_at": (now - dt.timedelta(seconds=50 - i)).isoformat(),
        }
        for i, (external_id, symbol, side, pnl) in enumerate(fills)
    ]
    auth = {"Authorization": f"Bearer {ts.key}"}
    assert requests.post(f"{site.url}/api/v1/trades/", json=body, headers=auth, timeout=30).status_code == 201
    assert requests.post(
        f"{site.url}/api/v1/heartbeat/", json={"status": "trading"}, headers=auth, timeout=30
    ).ok
    deadline = time.monotonic() + 120
    while not ts.sql("SELECT id FROM alerts_tradinghalt WHERE resumed_at IS NULL"):
        assert time.monotonic() < deadline, site.log("qcluster.log")[-3000:]
        time.sleep(0.2)
    return ts


def admin_log_in(driver: WebDriver, url: str) -> None:
    """Log in as the site's admin user (``Site.admin_session`` makes it) and land on the cockpit."""
    log_in(driver, SimpleNamespace(url=url), "/admin/", username="admin", password="admin-password-for-tests")
    wait_for(driver, "#cockpit-bots")


def page_width(driver: WebDriver) -> tuple[int, int]:
    return driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")


def text_of(driver: WebDriver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def read_cockpit(driver: WebDriver, ts: TradingSite) -> None:
    """Every figure the cockpit shows for the bot equals the API's."""
    from trades.formats import format_money, format_rate

    daily = ts.api("/api/v1/summary/daily/")
    period = ts.api("/api/v1/summary/period/")
    card = "#cockpit-bots .bot-card[data-bot='alpha']"
    # Halted by the max daily loss: the card says so (in capitals), its heartbeat state beside.
    assert text_of(driver, f"{card} .bot-state") == "HALTED"
    assert text_of(driver, f"{card} .bot-heartbeat").startswith("heartbeat ")
    assert text_of(driver, f"{card} .heartbeat-state") == "running"
    assert text_of(driver, f"{card} .bot-market").startswith(("market open, closes", "market closed, opens"))
    assert "(trading)" in text_of(driver, f"{card} .bot-heartbeat")
    assert text_of(driver, f"{card} .today-trades") == str(daily["total_trades"]) == "5"
    assert (
        text_of(driver, f"{card} .today-pnl") == format_money(Decimal(str(daily["total_pnl"]))) == "-1,034.00"
    )
    assert text_of(driver, f"{card} .today-win-rate") == format_rate(daily["win_rate"]) == "50.0%"
    assert text_of(driver, f"{card} .period-pnl") == format_money(Decimal(str(period["total_pnl"])))
    # The chart is drawn by the server: an inline SVG, nothing fetched from another host.
    assert driver.find_elements(By.CSS_SELECTOR, f"{card} svg.pnl-chart polyline")
    hosts = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
    )
    assert set(hosts) <= {urlsplit(ts.site.url).netloc}, hosts
    halt = text_of(driver, ".cockpit-halt")
    status = ts.api("/api/v1/status/")
    assert status["trading_allowed"] is False
    assert "Trading halted: alpha" in halt and status["reason"].split(";")[0] in halt
    alerts = driver.find_elements(By.CSS_SELECTOR, ".cockpit-alerts li")
    assert alerts and "level-critical" in alerts[0].get_attribute("class")  # critical first
    # Each with its message and its delivery state, as stored.
    ((title, message, state),) = ts.sql(
        "SELECT title, message, state FROM alerts_alert WHERE level = 'critical'"
        " ORDER BY created_at DESC LIMIT 1"
    )
    shown = alerts[0].text.lower()
    assert title.lower() in shown and message[:60].lower() in shown and f"{state} to discord" in shown
    assert "task cluster" in text_of(driver, "#cockpit-site") and "Last good backup" in text_of(
        driver, "#cockpit-site"
    )
    # The page updates itself every 15 s (cockpit.js); its 30 s reload is only for a browser without scripts.
    assert text_of(driver, ".cockpit-updated").endswith("; updates every 15 s.")
    assert driver.find_elements(By.CSS_SELECTOR, "meta[http-equiv=refresh]") == []
    # Trading comes first among the apps, and the header says what the site is.
    captions = [
        c.text.lower() for c in driver.find_elements(By.CSS_SELECTOR, "#content-main .module caption")
    ]
    assert captions[:3] == ["trading", "alerts", "backups"], captions
    assert text_of(driver, "#site-name") == "Trading bot monitor"


def every_list_fits(driver: WebDriver, url: str) -> list[str]:
    """Every admin list reached from the index, checked for sideways scrolling; the lists visited."""
    driver.get(f"{url}/admin/")
    links = sorted(
        {
            a.get_attribute("href")
            for a in driver.find_elements(By.CSS_SELECTOR, "#content-main .module th[scope=row] a")
        }
    )
    assert len(links) >= 10, links
    for link in links:
        driver.get(link)
        wait_for(driver, "#content")
        width, inner = page_width(driver)
        assert width <= inner, f"{link}: {width} px wide in a {inner} px window"
    return links


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_cockpit_and_admin_lists_against_the_real_site(
    browser: WebDriver, trading_site: TradingSite, tmp_path: Path, size: tuple[int, int]
) -> None:
    url = trading_site.site.url
    browser.set_window_size(*size)
    admin_log_in(browser, url)
    inner = browser.execute_script("return window.innerWidth")
    assert inner <= size[0]
    read_cockpit(browser, trading_site)
    width, inner = page_width(browser)
    assert width <= inner, f"the cockpit is {width} px wide in a {inner} px window"
    if size == PHONE:
        shot = tmp_path / "cockpit-phone.png"
        assert browser.save_screenshot(str(shot)) and shot.read_bytes().startswith(b"\x89PNG")
        if COCKPIT_PHONE_COPY.parent.is_dir():
            shutil.copy(shot, COCKPIT_PHONE_COPY)
    # On the trade list, money has two decimals and times their seconds and zone.
    browser.get(f"{url}/admin/trades/trade/")
    assert "-1,300.75" in column_texts(browser, "pnl_shown")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T", column_texts(browser, "executed_at")[0])
    assert column_texts(browser, "quantity_shown")[0] == "3"
    every_list_fits(browser, url)


def test_operator_tasks_on_a_phone(browser: WebDriver, trading_site: TradingSite, download_dir: Path) -> None:
    ts, url = trading_site, trading_site.site.url
    browser.set_window_size(*PHONE)
    admin_log_in(browser, url)

    # Resume the halted bot from the banner: a question first, then the bot may trade.
    browser.find_element(By.CSS_SELECTOR, ".cockpit-halt button.resume-trading").click()
    wait_for(browser, "#confirm-resume")
    assert "alpha" in text_of(browser, ".halts-to-resume")
    assert ts.api("/api/v1/status/")["trading_allowed"] is False  # nothing changed by asking
    browser.find_element(By.ID, "confirm-resume").click()
    wait_for(browser, "ul.messagelist li")
    done, quiet = message_texts(browser)
    assert done == "Trading resumed for 1 halt(s)."
    assert quiet.startswith("Max daily loss will not halt alpha again until ")  # capfirst: the admin's
    assert quiet.endswith(" (the next trading day).")
    assert ts.api("/api/v1/status/")["trading_allowed"] is True
    assert ts.sql("SELECT resumed_by FROM alerts_tradinghalt") == [("admin",)]
    browser.get(f"{url}/admin/")
    assert not browser.find_elements(By.CSS_SELECTOR, ".cockpit-halt")
    assert text_of(browser, ".cockpit-resumed .quiet-until") == "m" + quiet[1:]

    # Change a threshold from the rule list.
    browser.get(f"{url}/admin/alerts/alertrule/?q=max-daily-loss")
    (rule_id,) = ts.sql("SELECT id FROM alerts_alertrule WHERE name = 'max-daily-loss'")[0]
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1
    threshold = rows[0].find_element(By.CSS_SELECTOR, "input[name$='-threshold']")
    threshold.clear()
    threshold.send_keys("-2500")
    browser.find_element(By.CSS_SELECTOR, "#changelist-form input[name=_save]").click()
    wait_for(browser, "ul.messagelist li.success")
    assert ts.sql("SELECT threshold FROM alerts_alertrule WHERE id = ?", rule_id) == [(-2500,)]

    # A silence that ended a minute ago is refused where it is typed, naming the field.
    browser.get(f"{url}/admin/alerts/silence/add/")
    Select(browser.find_element(By.ID, "id_rule")).select_by_visible_text("bot-stopped")
    ended = dt.datetime.now(dt.UTC).astimezone(ZoneInfo("America/New_York")) - dt.timedelta(minutes=1)
    browser.find_element(By.ID, "id_until_0").send_keys(ended.strftime("%Y-%m-%d"))
    browser.find_element(By.ID, "id_until_1").send_keys(ended.strftime("%H:%M:%S"))
    browser.find_element(By.ID, "id_reason").send_keys("maintenance")
    browser.find_element(By.CSS_SELECTOR, "input[name=_save]").click()
    wait_for(browser, ".errornote")
    assert "Must be in the future" in text_of(browser, ".field-until .errorlist")
    # Silence a rule for an hour with the quick choice: the end is computed when saved.
    Select(browser.find_element(By.ID, "id_quick_end")).select_by_visible_text("for an hour")
    before = dt.datetime.now(dt.UTC)
    browser.find_element(By.CSS_SELECTOR, "input[name=_save]").click()
    wait_for(browser, "ul.messagelist li.success")
    ((name, reason, until),) = ts.sql(
        "SELECT r.name, s.reason, s.until FROM alerts_silence s JOIN alerts_alertrule r ON r.id = s.rule_id"
    )
    assert (name, reason) == ("bot-stopped", "maintenance")
    ends = dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC)
    # An hour from the press, with 60 s for a loaded machine between the press and the save.
    assert dt.timedelta(hours=1) <= ends - before < dt.timedelta(hours=1, seconds=60)

    # A test alert reaches the (loopback) Discord webhook.
    before = len(ts.discord.messages)
    browser.get(f"{url}/admin/alerts/channel/")
    (channel_id,) = ts.sql("SELECT id FROM alerts_channel WHERE name = 'discord'")[0]
    run_changelist_action(browser, [channel_id], "send_test")
    wait_for(browser, "ul.messagelist li")
    assert [m for m in message_texts(browser) if m.lower().startswith("discord: test alert sent to ")]
    ts.discord.wait_for_messages(before + 1, timeout=60)
    assert any("test" in title.lower() for title in ts.discord.titles())

    # Export the trades as CSV from the trade list.
    browser.get(f"{url}/admin/trades/trade/")
    browser.find_element(By.ID, "action-toggle").click()
    Select(browser.find_element(By.CSS_SELECTOR, "#changelist-form select[name=action]")).select_by_value(
        "export_csv"
    )
    browser.find_element(By.CSS_SELECTOR, "#changelist-form .actions button[name=index]").click()
    rows = list(csv.reader(io.StringIO(downloaded(download_dir).read_text())))
    assert [row[2] for row in rows[1:]] == ["c-1", "c-2", "c-3", "c-4", "c-5"]


def test_a_bot_whose_client_closed_is_shown_stopped_then_running_at_both_sizes(
    browser: WebDriver, site: Any, tmp_path: Path
) -> None:
    """The real monitor_client beats, then closes (its shutdown event), against the real server."""
    from monitor_client import Monitor

    key = site.create_bot("beta")
    site.admin_session()  # makes the admin user
    monitor = Monitor(site.url, key, tmp_path / "spool", backoff_base=0.05, backoff_max=0.5, linger=0.0)
    monitor.start_heartbeats(every=60)
    assert monitor.flush(timeout=30)
    deadline = time.monotonic() + WAIT_SECONDS
    while not site.sql("SELECT last_heartbeat_at FROM trades_bot WHERE name = 'beta'")[0][0]:
        assert time.monotonic() < deadline, "no heartbeat reached the site"
        time.sleep(0.1)
    assert monitor.close(timeout=30)
    ((stopped_at,),) = site.sql("SELECT stopped_at FROM trades_bot WHERE name = 'beta'")
    assert stopped_at is not None
    shown = (
        dt.datetime.fromisoformat(stopped_at)
        .replace(tzinfo=dt.UTC)
        .astimezone(ZoneInfo("America/New_York"))
        .strftime("%Y-%m-%d %H:%M:%S %Z")
    )
    card = "#cockpit-bots .bot-card[data-bot='beta']"
    admin_log_in(browser, site.url)
    for size in (PHONE, DESKTOP):
        browser.set_window_size(*size)
        browser.get(f"{site.url}/admin/")
        wait_for(browser, card)
        assert text_of(browser, f"{card} .bot-state") == f"STOPPED AT {shown}"  # shown in capitals
        assert "state-shut-down" in browser.find_element(By.CSS_SELECTOR, card).get_attribute("class")
        width, inner = page_width(browser)
        assert width <= inner, f"the cockpit is {width} px wide in a {inner} px window at {size}"
    browser.get(f"{site.url}/admin/trades/bot/")
    assert column_texts(browser, "stopped") == [f"stopped at {shown}"]
    # The next heartbeat says it runs again.
    auth = {"Authorization": f"Bearer {key}"}
    assert requests.post(f"{site.url}/api/v1/heartbeat/", json={}, headers=auth, timeout=30).ok
    browser.get(f"{site.url}/admin/")
    wait_for(browser, card)
    assert text_of(browser, f"{card} .bot-state") == "RUNNING"


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_channel_at_a_closed_port_shows_failing_then_working_again(
    browser: WebDriver, site: Any, size: tuple[int, int]
) -> None:
    """The operator's path: a test send to a Telegram channel whose Bot API URL refuses connections,
    then to the (loopback) Bot API: the list says what each send did."""
    from tests import telegram_server
    from tests.harness import free_port

    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    telegram = telegram_server.TelegramServer().start()
    try:
        config = {"bot_token": telegram_server.TOKEN, "chat_id": telegram_server.CHAT_ID}
        site.sql("UPDATE alerts_channel SET enabled = FALSE")
        site.sql(
            "INSERT INTO alerts_channel (name, kind, config, min_level, enabled, rate_limit_per_minute,"
            " disabled_reason, consecutive_failures, last_error) VALUES ('phone-telegram', 'telegram', ?,"
            " 'info', TRUE, 5, '', 0, '')",
            json.dumps({**config, "api_url": f"http://{closed}"}),
        )
        ((channel_id,),) = site.sql("SELECT id FROM alerts_channel WHERE name = 'phone-telegram'")
        site.admin_session()  # makes the admin user
        browser.set_window_size(*size)
        admin_log_in(browser, site.url)

        browser.get(f"{site.url}/admin/alerts/channel/")
        run_changelist_action(browser, [channel_id], "send_test")
        wait_for(browser, "ul.messagelist li")
        # (The admin's style capitalises a message's first letter.)
        assert [m.lower() for m in message_texts(browser)] == [
            f"phone-telegram: test alert failed: cannot reach {closed}: connection refused (3 tries)"
        ]
        state = text_of(browser, f"#result_list tr:has(input[value='{channel_id}']) .field-status")
        assert state.startswith("⚠ failing since ") and f"(1 send): cannot reach {closed}" in state
        assert telegram_server.TOKEN.split(":")[1] not in browser.page_source
        width, inner = page_width(browser)
        assert width <= inner, f"the channel list is {width} px wide in a {inner} px window"

        site.sql(
            "UPDATE alerts_channel SET config = ? WHERE id = ?",
            json.dumps({**config, "api_url": telegram.api_url}),
            channel_id,
        )
        browser.get(f"{site.url}/admin/alerts/channel/")
        run_changelist_action(browser, [channel_id], "send_test")
        wait_for(browser, "ul.messagelist li")
        assert [m.lower() for m in message_texts(browser)] == [
            f"phone-telegram: test alert sent to chat {telegram_server.CHAT_ID}"
        ]
        row = f"#result_list tr:has(input[value='{channel_id}'])"
        assert text_of(browser, f"{row} .field-status") == "working"
        assert text_of(browser, f"{row} .field-last_success") != "never"
        assert len(telegram.messages) == 1
    finally:
        telegram.stop()
