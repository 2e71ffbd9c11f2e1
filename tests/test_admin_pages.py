"""Every admin page reads on a phone (390 x 844) and at a desk (1400 x 1000), in the real headless Chromium
against the real server: no sideways scroll anywhere, list labels on lists only, editable list columns
labelled, wide sub-tables stacked, and the channel form showing the chosen kind's settings.

One server and one browser serve the whole module (a server start is paid for once); the walk is one
test per size that visits every page and reports every page that does not fit at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from alerts.models import AlertRule
from tests import test_admin_browser as admin_browser
from tests.harness import Site, copy_site_database, free_port, site_env, start_web, stop, wait_for
from tests.test_admin_browser import DESKTOP, PHONE, WAIT_SECONDS

# Long words that cannot wrap: a page that fits with these fits with what a bot sends. 90
# characters: the longest that fits every field it fills ("momentum-" + LONG in a trade's strategy,
# 100 at most; PostgreSQL refuses a longer value where SQLite would keep it).
LONG = "x" * 90
# Every registered model gets one row to open; made through the ORM in the site's own process.
POPULATE = f"""
import datetime as dt
from decimal import Decimal
from axes.models import AccessAttempt, AccessFailureLog
from django.contrib.auth.models import Group
from django_q.models import Task
from django.utils import timezone
from alerts.models import Alert, AlertRule, Channel, DeliveryAttempt, Silence, TradingHalt
from backups.models import BackupRecord
from trades.models import Bot, BotEvent, BotSnapshot, Trade

now = timezone.now()
bot = Bot.objects.get(name="alpha")
bot.issue_key(read_only=True)
bot.events.create(
    event_id="e-1", kind="error", level="error", message="{LONG} " * 3, details={{"why": "{LONG}"}}
)
Trade.objects.create(
    bot=bot, external_id="{LONG}", symbol="AAPL", side="SELL", quantity=Decimal("3"), price=Decimal("101.5"),
    pnl=Decimal("-1234.5"), strategy="momentum-{LONG}", executed_at=now, trading_day=now.date(),
    metadata={{"note": "{LONG}"}},
)
for n in range(20):  # the bot's page lists its last 20 snapshots, the widest figures there are
    BotSnapshot.objects.create(
        bot=bot, taken_at=now - dt.timedelta(seconds=30 * n), positions=[], position_count=500,
        unrealized_pnl=Decimal("-123456789012.34"), equity=Decimal("123456789012.34"),
        cash=Decimal("-123456789012.34"), host_pid=4194304, rss_bytes=10**15, cpu_percent=1234.5,
        memory_available_bytes=10**15, memory_total_bytes=10**15, disk_free_bytes=10**15,
        disk_total_bytes=10**15,
    )
channel = Channel.objects.get(name="discord")
alert = Alert.objects.create(
    channel=channel, bot=bot, level="critical", title="Daily loss {LONG}", message="{LONG} " * 4,
    state="failed", attempts=3, sent_at=now, last_error="{LONG}", fields=[["symbol", "{LONG}"]],
)
for n in range(3):
    DeliveryAttempt.objects.create(alert=alert, channel=channel, status_code=503, error="refused {LONG}",
                                   reached=["{LONG}"], duration_ms=12.5)
Alert.objects.create(channel=channel, bot=bot, level="warning", title="folded", folded_into=alert)
Silence.objects.create(rule=AlertRule.objects.first(), until=now + dt.timedelta(hours=1), reason="{LONG}")
TradingHalt.objects.create(bot=bot, trading_day=now.date(), ends_on=now.date() + dt.timedelta(days=1),
                           reason="{LONG}")
BackupRecord.objects.create(object_name="backups/{LONG}.db.gz", provider="local", kind="sqlite",
                            state="failed", size=123456789, duration=1.5, error="{LONG} " * 3)
Group.objects.create(name="operators")
for n, success in enumerate((True, False)):
    Task.objects.create(id="t" + str(n), name="{LONG}", func="alerts.tasks.deliver", result="{LONG} " * 3,
                        started=now, stopped=now, success=success, group="{LONG}")
attempt = dict(user_agent="{LONG} " * 2, ip_address="127.0.0.1", username="{LONG}", http_accept="{LONG}",
               path_info="/admin/login/{LONG}", attempt_time=now)
AccessAttempt.objects.create(**attempt, get_data="{LONG}", post_data="{LONG}", failures_since_start=1)
AccessFailureLog.objects.create(**attempt, locked_out=False)
"""


@pytest.fixture(scope="module")
def pages_site(tmp_path_factory: pytest.TempPathFactory, migrated_template: Any) -> Iterator[Site]:
    """The web server on a copy of the migrated database, with a row of every kind to open."""
    tmp = tmp_path_factory.mktemp("pages")
    copy_site_database(migrated_template, tmp / "trades.db")
    port = free_port()
    site = Site(url=f"http://127.0.0.1:{port}", env=site_env(tmp), tmp=tmp, processes=[])
    start_web(site, port)
    try:
        wait_for(f"{site.url}/api/v1/health/")
        site.create_bot("alpha")
        site.manage("shell", "-c", POPULATE)
        site.admin_session()  # makes the admin user (admin / admin-password-for-tests)
        yield site
    finally:
        for process in site.processes:
            stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with admin_browser.chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def admin(browser: WebDriver, pages_site: Site) -> WebDriver:
    """The browser, logged in to the site's admin."""
    admin_browser.admin_log_in(browser, pages_site.url)
    return browser


def open_page(driver: WebDriver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete" and d.find_elements(By.ID, "content")
        )
    )


def every_page(driver: WebDriver, url: str) -> list[str]:
    """The index, and every registered model's list, add page (when it has one) and first row's page."""
    open_page(driver, f"{url}/admin/")
    lists = sorted(
        {
            a.get_attribute("href")
            for a in driver.find_elements(By.CSS_SELECTOR, "#content-main .module th[scope=row] a")
        }
    )
    assert len(lists) >= 12, lists
    pages = [f"{url}/admin/"]
    for link in lists:
        pages.append(link)
        open_page(driver, link)
        rows = driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr th a, #result_list tbody tr td a")
        change = next(
            (a.get_attribute("href") for a in rows if "/change/" in (a.get_attribute("href") or "")), None
        )
        if change:
            pages.append(change)
        if driver.find_elements(By.CSS_SELECTOR, ".object-tools a.addlink"):
            pages.append(f"{link}add/")
    return pages


# What overflows sideways: the document itself, or any box that scrolls its content sideways.
OVERFLOW = """
const inner = window.innerWidth;
const found = [];
if (document.documentElement.scrollWidth > inner) {
    // Name the innermost boxes that reach past the window's right edge, to say what to fix.
    const past = [...document.querySelectorAll('#container *')].filter(
        (el) => el.getBoundingClientRect().right > inner + 1 && ![...el.children].some(
            (child) => child.getBoundingClientRect().right > inner + 1));
    const names = past.slice(0, 3).map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
    found.push(`the page is ${document.documentElement.scrollWidth} px wide (${names.join(', ')})`);
}
for (const el of document.querySelectorAll('#container *')) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || el.closest('.visually-hidden')) continue;  // for screen readers
    if (el.tagName === 'TEXTAREA' || el.tagName === 'SELECT') continue;
    const name = `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${el.className}`;
    const wider = el.scrollWidth - el.clientWidth;
    // (A button that shows an icon moves its words off to the left: text-indent -3000px.)
    if (style.overflowX === 'hidden' && wider > 1 && parseFloat(style.textIndent) >= 0) {
        found.push(`${name} cuts off ${wider} px`);
    } else if (['auto', 'scroll'].includes(style.overflowX) && wider > 1) {
        found.push(`${name} scrolls ${el.scrollWidth} px in ${el.clientWidth}`);
    } else if (style.overflowX === 'scroll' && !style.display.startsWith('table')) {
        found.push(`${name} always shows a sideways scroll bar`);
    }
}
return found;
"""


def sideways(driver: WebDriver) -> list[str]:
    return driver.execute_script(OVERFLOW)


def before(css: str) -> str:
    """JavaScript: the text a ``::before`` shows on the element ``el`` ("" when none), for ``css``."""
    return f"""
const shown = (el) => {{
    const style = getComputedStyle(el, '::before');
    return ['none', 'normal'].includes(style.content) || style.display === 'none' ? ''
        : style.content.replace(/^"|"$/g, '');
}};
{css}"""


# On a list: every visible cell but the select box shows its column's head as its label.
UNLABELLED_CELLS = before("""
const heads = [...document.querySelectorAll('#result_list thead th')].map(
    (th) => (th.querySelector('.text') || th).textContent.trim().toLowerCase());
const found = [];
for (const row of document.querySelectorAll('#result_list tbody tr')) {
    [...row.children].forEach((cell, i) => {
        if (cell.tagName !== 'TD' || cell.classList.contains('action-checkbox')) return;
        if (getComputedStyle(cell).display === 'none') return;
        if (shown(cell).toLowerCase() !== heads[i]) {
            found.push(`${cell.className} shows ${JSON.stringify(shown(cell))}, its column is ${heads[i]}`);
        }
    });
}
return found;
""")

# On a row's page: no label outside the sub-tables (whose cells are labelled by their own heads).
STRAY_LABELS = before("""
return [...document.querySelectorAll('#content-main *')]
    .filter((el) => !el.closest('.inline-group .tabular') && shown(el))
    .map((el) => `${el.tagName.toLowerCase()}.${el.className} shows ${JSON.stringify(shown(el))}`);
""")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desk"])
def test_no_admin_page_scrolls_sideways(admin: WebDriver, pages_site: Site, size: tuple[int, int]) -> None:
    """Every page at this size, every problem named at once: sideways scroll anywhere; on a phone, a
    list cell without its column's label, or a label on a row's page (outside its sub-tables)."""
    admin.set_window_size(*size)
    ((alert,),) = pages_site.sql("SELECT alert_id FROM alerts_deliveryattempt GROUP BY alert_id")
    pages = [*every_page(admin, pages_site.url), f"{pages_site.url}/admin/alerts/alert/{alert}/change/"]
    kinds = {"list": 0, "add": 0, "change": 0}
    offending = []
    for page in pages:
        open_page(admin, page)
        path = urlsplit(page).path
        problems = sideways(admin)
        on_list = bool(admin.find_elements(By.CSS_SELECTOR, "body.change-list"))
        on_form = bool(admin.find_elements(By.CSS_SELECTOR, "body.change-form"))
        kinds["list"] += on_list
        kinds["add" if path.endswith("/add/") else "change"] += on_form
        if size == PHONE and on_list:
            problems += admin.execute_script(UNLABELLED_CELLS)
        if size == PHONE and on_form:
            problems += admin.execute_script(STRAY_LABELS)
        offending += [f"{path}: {problem}" for problem in problems]
    assert not offending, "\n".join(offending)
    # The walk saw what it was meant to: every list, an add page and a row's page of most models.
    assert kinds["list"] >= 17 and kinds["add"] >= 7 and kinds["change"] >= 16, kinds


def cells(driver: WebDriver, css: str) -> list[dict[str, Any]]:
    """The cells ``css`` finds: their text, label, whether shown, and whether inside the window."""
    return driver.execute_script(
        before("""
return [...document.querySelectorAll(arguments[0])].map((el) => {
    const box = el.getBoundingClientRect();
    return {field: el.className, text: el.innerText.trim(), label: shown(el),
            visible: box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== 'hidden',
            inside: box.left >= 0 && box.right <= window.innerWidth};
});"""),
        css,
    )


def test_an_alerts_attempts_and_sent_at_show_on_a_phone(admin: WebDriver, pages_site: Site) -> None:
    admin.set_window_size(*PHONE)
    ((alert,),) = pages_site.sql("SELECT alert_id FROM alerts_deliveryattempt GROUP BY alert_id")
    open_page(admin, f"{pages_site.url}/admin/alerts/alert/{alert}/change/")
    for field in ("attempts", "sent_at"):
        (row,) = cells(admin, f"fieldset .form-row.field-{field}")
        assert row["visible"] and row["inside"] and not row["label"], row
    assert cells(admin, "fieldset .form-row.field-attempts .readonly")[0]["text"] == "3"
    # The delivery attempts stack, one block each, every cell labelled by its column and in the window.
    attempts = cells(admin, "#delivery_attempts-group tbody td[class^=field-]")
    assert len(attempts) == 3 * 6
    assert {c["label"] for c in attempts} == {
        "At",
        "Channel",
        "Status code",
        "Error",
        "Reached",
        "Took",
    }
    assert all(c["visible"] and c["inside"] for c in attempts), attempts
    assert [c["text"] for c in attempts if c["field"] == "field-status_code"] == ["503"] * 3
    # On the alert list the same two columns wait for the alert's page: the list stays short.
    open_page(admin, f"{pages_site.url}/admin/alerts/alert/")
    assert not any(
        c["visible"] for c in cells(admin, "#result_list td.field-attempts, #result_list td.field-sent_at")
    )


def test_a_bots_keys_stack_on_a_phone(admin: WebDriver, pages_site: Site) -> None:
    admin.set_window_size(*PHONE)
    ((bot,),) = pages_site.sql("SELECT id FROM trades_bot WHERE name = 'alpha'")
    open_page(admin, f"{pages_site.url}/admin/trades/bot/{bot}/change/")
    keys = cells(admin, "#keys-group tbody td[class^=field-]")
    assert len(keys) == 2 * 6  # the write key create_bot made, and a read-only one
    assert {c["label"] for c in keys} == {"Name", "Prefix", "Read only", "Created", "Expires", "Revoked"}
    assert all(c["visible"] and c["inside"] for c in keys), keys
    # The expiry is still editable there: its date box is inside the window.
    boxes = cells(admin, "#keys-group tbody td.field-expiry_date input")
    assert boxes and all(c["visible"] and c["inside"] for c in boxes), boxes


@pytest.mark.parametrize(
    ("path", "editable"),
    [
        ("/admin/alerts/alertrule/", {"threshold", "level", "enabled", "cooldown minutes"}),
        ("/admin/alerts/channel/", {"minimum level", "enabled", "rate limit per minute"}),
        ("/admin/alerts/summaryschedule/", {"enabled", "send at", "weekly report", "weekly report at"}),
    ],
    ids=["rules", "channels", "summary"],
)
def test_editable_list_columns_are_labelled_on_a_phone(
    admin: WebDriver, pages_site: Site, path: str, editable: set[str]
) -> None:
    admin.set_window_size(*PHONE)
    open_page(admin, f"{pages_site.url}{path}")
    boxes = cells(admin, "#result_list tbody td:not(.action-checkbox):has(input:not([type=hidden]), select)")
    assert {c["label"].lower() for c in boxes} == editable
    assert all(c["visible"] and c["inside"] for c in boxes), boxes
    # At a desk the column heads say it, and the cells carry no label of their own.
    admin.set_window_size(*DESKTOP)
    assert not any(c["label"] for c in cells(admin, "#result_list tbody td"))
    heads = {c["text"].lower() for c in cells(admin, "#result_list thead th .text") if c["visible"]}
    assert editable <= heads, heads


def settings_shown(driver: WebDriver) -> list[str]:
    """The kinds whose settings the channel form shows."""
    return [
        fieldset.get_attribute("class").split("kind-")[1].split()[0]
        for fieldset in driver.find_elements(By.CSS_SELECTOR, "fieldset.channel-settings")
        if fieldset.is_displayed()
    ]


def test_the_channel_form_shows_the_chosen_kind_and_keeps_a_typed_token(
    admin: WebDriver, pages_site: Site
) -> None:
    admin.set_window_size(*PHONE)
    open_page(admin, f"{pages_site.url}/admin/alerts/channel/add/")
    assert settings_shown(admin) == ["discord"]  # the kind chosen by default
    help_text = admin.find_element(By.CSS_SELECTOR, ".form-row.field-name .help").text
    assert "letters, digits, hyphens and underscores" in help_text.lower()
    kind = Select(admin.find_element(By.ID, "id_kind"))
    kind.select_by_value("telegram")
    assert settings_shown(admin) == ["telegram"]
    kind.select_by_value("ntfy")
    assert settings_shown(admin) == ["ntfy"]
    kind.select_by_value("telegram")
    # A name with a space is refused by the server; the token just pasted is still in its box.
    token = "123456789:AAH-typed-in-the-browser-0123456789ab"
    admin.find_element(By.ID, "id_name").send_keys("phone telegram")
    admin.find_element(By.ID, "id_telegram__bot_token").send_keys(token)
    admin.find_element(By.ID, "id_telegram__chat_id").send_keys("-1001234567890")
    admin.find_element(By.CSS_SELECTOR, "input[name=_save]").click()
    WebDriverWait(admin, WAIT_SECONDS).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".errornote"))
    assert "slug" in admin.find_element(By.CSS_SELECTOR, ".form-row.field-name .errorlist").text.lower()
    assert settings_shown(admin) == ["telegram"]  # the chosen kind, still chosen
    assert not sideways(admin)  # the refused form, its error words included, fits the phone
    assert admin.find_element(By.ID, "id_telegram__bot_token").get_attribute("value") == token
    assert admin.find_element(By.ID, "id_telegram__chat_id").get_attribute("value") == "-1001234567890"
    assert not pages_site.sql("SELECT id FROM alerts_channel WHERE kind = 'telegram'")
    # Corrected, it saves; the saved token is never put back into the page.
    name = admin.find_element(By.ID, "id_name")
    name.clear()
    name.send_keys("phone-telegram")
    admin.find_element(By.CSS_SELECTOR, "input[name=_continue]").click()
    WebDriverWait(admin, WAIT_SECONDS).until(lambda d: "/change/" in d.current_url)
    assert pages_site.sql("SELECT name FROM alerts_channel WHERE kind = 'telegram'") == [("phone-telegram",)]
    assert token.split(":")[1] not in admin.page_source


@pytest.mark.django_db
def test_list_cells_carry_their_columns_name_and_a_rows_page_none(admin_client: Any) -> None:
    """Without a browser: the labels are in a list's cells (escaped), and nowhere on a row's page."""
    rules = admin_client.get("/admin/alerts/alertrule/").content.decode()
    assert re.search(r'<td data-label="threshold" class="field-threshold">\s*<input', rules)
    assert 'data-label="cooldown minutes"' in rules
    assert 'data-label="action' not in rules and 'data-label="<' not in rules  # no select-box label
    channels = admin_client.get("/admin/alerts/channel/").content.decode()
    assert 'data-label="minimum level"' in channels
    rule = AlertRule.objects.get(name="max-daily-loss")
    assert "data-label" not in admin_client.get(f"/admin/alerts/alertrule/{rule.pk}/change/").content.decode()
    assert "data-label" not in admin_client.get("/admin/alerts/channel/add/").content.decode()


def test_a_label_is_escaped() -> None:
    from monitorsite.templatetags.admin_lists import labelled

    row = [
        '<td class="action-checkbox"><input></td>',
        '<th class="field-name">x</th>',
        '<td class="field-pnl">1</td>',
    ]
    headers = [{"text": '<input type="checkbox">'}, {"text": "name"}, {"text": 'P&L "net"'}]
    assert labelled(row, headers) == [
        row[0],
        row[1],
        '<td data-label="P&amp;L &quot;net&quot;" class="field-pnl">1</td>',
    ]
