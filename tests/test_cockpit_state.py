"""The cockpit shows each bot's own state, posted through the real API: its open positions (the
largest few), its day P&L with them marked to market, its account, and its host in plain words,
coloured near the host rules' limits, and old figures shown as of their time."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from html import unescape
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from monitorsite import cockpit
from tests.conftest import stored_trade
from tests.state_fixtures import GB, MB, client_for, host, position, post_state
from tests.test_cockpit import THURSDAY, utc
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
NOW = utc(THURSDAY, 11)
SECOND = dt.timedelta(seconds=1)
GRACE = dt.timedelta(minutes=10)  # the bot-stopped rule's default


def card(bot: Bot, now: dt.datetime = NOW) -> cockpit.BotCard:
    (found,) = [each for each in cockpit.build(now=now).bots if each.bot.pk == bot.pk]
    return found


def page(admin_client: Client, now: dt.datetime = NOW) -> str:
    with mock.patch("django.utils.timezone.now", return_value=now):
        return admin_client.get("/admin/").content.decode()


def card_html(html: str, name: str) -> str:
    start = html.index(f'data-bot="{name}"')
    end = html.find('<div class="bot-card', start)
    return html[start : end if end > 0 else len(html)]


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", html))).strip()


def realized(bot: Bot, pnl: str) -> None:
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal(pnl), executed_at=utc(THURSDAY, 10))])


def test_long_and_short_positions_the_day_pnl_with_them_and_the_account(
    admin_client: Client, bot: Bot
) -> None:
    realized(bot, "-20")
    post_state(
        client_for(bot),
        NOW - dt.timedelta(minutes=1),
        positions=[position("AAPL", 10, 100, 90), position("TSLA", -5, 200, 480)],
        equity=98480,
        cash=20000,
    )
    shown = card(bot)
    assert shown.day_pnl is not None and shown.day_pnl.total == Decimal("-1520")
    assert [(r.symbol, r.quantity, r.side, r.unrealized) for r in shown.positions.rows] == [
        ("TSLA", "-5", "short", Decimal("-1400")),  # the largest |unrealized| first
        ("AAPL", "10", "long", Decimal("-100")),
    ]
    html = card_html(page(admin_client), "alpha")
    assert "Day P&amp;L <strong" in html
    assert "Day P&L -1,520.00 (realized -20.00, open -1,500.00)" in text(html)
    assert "2 open positions, unrealized -1,500.00" in text(html)
    assert "TSLA -5 @ 200.00 → 480.00 -1,400.00" in text(html)
    assert "AAPL 10 @ 100.00 → 90.00 -100.00" in text(html)
    assert '<li class="position position-short">' in html
    assert '<span class="pnl-neg">-1,400.00</span>' in html
    assert "equity 98,480.00, cash 20,000.00" in text(html)
    assert "as of" not in html  # all of it current


def test_a_gaining_position_is_green(admin_client: Client, bot: Bot) -> None:
    post_state(client_for(bot), NOW, positions=[position("NVDA", -3, 150, 140)])
    html = card_html(page(admin_client), "alpha")
    assert '<span class="position-pnl"><span class="pnl-pos">30.00</span></span>' in html


def test_many_positions_show_the_largest_few_and_count_the_rest(admin_client: Client, bot: Bot) -> None:
    # Gains of up to +25 (S049, S099...), losses of up to -24, and one loss of -30 (S000).
    positions = [position(f"S{n:03d}", 1, 100, 100 + (n % 50) - 24) for n in range(1, 500)]
    positions.insert(0, position("S000", 1, 100, 70))
    post_state(client_for(bot), NOW, positions=positions)
    shown = card(bot).positions
    assert shown is not None and shown.count == 500
    assert len(shown.rows) == cockpit.SHOWN_POSITIONS == 5
    assert shown.more == 495
    # The largest by |unrealized P&L|, a loss or a gain; a tie by symbol.
    assert [row.symbol for row in shown.rows] == ["S000", "S049", "S099", "S149", "S199"]
    html = card_html(page(admin_client), "alpha")
    assert html.count('<li class="position') == 5
    assert "495 more" in text(html)


def test_exactly_the_shown_number_of_positions_says_no_more(admin_client: Client, bot: Bot) -> None:
    post_state(client_for(bot), NOW, positions=[position(f"S{n}", 1, 10, 11) for n in range(5)])
    assert card(bot).positions.more == 0
    assert "more</div>" not in card_html(page(admin_client), "alpha")
    post_state(client_for(bot), NOW, positions=[position(f"S{n}", 1, 10, 11) for n in range(6)])
    assert "1 more" in text(card_html(page(admin_client), "alpha"))


def test_a_flat_bot_says_so_and_its_day_pnl_is_the_realized_one(admin_client: Client, bot: Bot) -> None:
    realized(bot, "35.5")
    post_state(client_for(bot), NOW, positions=[])
    html = text(card_html(page(admin_client), "alpha"))
    assert "Flat: no open position" in html
    assert "Day P&L 35.50 (realized 35.50, open 0.00)" in html


def test_a_bot_that_never_reported_its_state_shows_none_of_it(admin_client: Client, bot: Bot) -> None:
    Bot.objects.create(name="beta")
    post_state(client_for(bot), NOW, status="trading")  # a bare heartbeat: no snapshot
    html = page(admin_client)
    for name in ("alpha", "beta"):
        part = card_html(html, name)
        assert "bot-positions" not in part and "bot-host" not in part and "Day P&amp;L" not in part
        assert "bot-account" not in part
    assert card(bot).positions is None and card(bot).host is None


def test_positions_from_an_earlier_day_are_shown_as_of_then_without_a_day_pnl(
    admin_client: Client, bot: Bot
) -> None:
    post_state(
        client_for(bot), utc(THURSDAY - dt.timedelta(days=1), 15), positions=[position("AAPL", 1, 1, 2)]
    )
    shown = card(bot)
    assert shown.day_pnl is None  # nothing reported today: the day is judged on realized P&L
    assert "as of 2026-01-14 15:00:00 EST" in text(card_html(page(admin_client), "alpha"))


# --- the host in plain words ------------------------------------------------------------------


def test_the_host_in_plain_words(admin_client: Client, bot: Bot) -> None:
    started = NOW - dt.timedelta(hours=3, minutes=12)
    disk_free = int(Decimal("3.1") * GB)
    figures = host(
        disk_free=disk_free,
        disk_total=50 * GB,
        memory_available=160 * MB,
        memory_total=2 * GB,
        started_at=started,
    )
    post_state(client_for(bot), NOW, host=figures)
    html = text(card_html(page(admin_client), "alpha"))
    assert "disk 6.2% free (3.1 GB of 50.0 GB)" in html
    assert "memory 7.8% available (160.0 MB of 2.0 GB)" in html
    assert "up 3 h 12 min, pid 4242, RSS 120.0 MB, CPU 3.5%" in html


@pytest.mark.parametrize(
    ("free_mb", "level"),
    [
        (99, "warning"),  # 9.9%: below the host rules' 10%
        (100, "caution"),  # exactly 10%: the rule does not fire yet
        (199, "caution"),  # 19.9%
        (200, "ok"),  # exactly 20%
    ],
)
def test_the_disks_colour_at_the_host_rules_limit(
    admin_client: Client, bot: Bot, free_mb: int, level: str
) -> None:
    post_state(client_for(bot), NOW, host=host(disk_free=free_mb * MB, disk_total=1000 * MB))
    (disk, memory, _process) = card(bot).host.lines
    assert disk.level == level and memory.level == "ok"
    assert f'<li class="host-line host-{level}">disk ' in card_html(page(admin_client), "alpha")


@pytest.mark.parametrize(("available_mb", "level"), [(99, "warning"), (100, "caution"), (200, "ok")])
def test_the_memorys_colour_at_the_host_rules_limit(bot: Bot, available_mb: int, level: str) -> None:
    post_state(client_for(bot), NOW, host=host(memory_available=available_mb * MB, memory_total=1000 * MB))
    assert card(bot).host.lines[1].level == level
    assert card(bot).host.level == level


def test_host_figures_older_than_the_grace_are_shown_as_of_their_time(admin_client: Client, bot: Bot) -> None:
    taken = NOW
    post_state(client_for(bot), taken, host=host(started_at=taken - dt.timedelta(hours=1), disk_free=1 * GB))
    at_grace = page(admin_client, taken + GRACE)
    assert "as of" not in card_html(at_grace, "alpha")
    assert "up 1 h 10 min" in text(card_html(at_grace, "alpha"))  # counted to now while current
    stale = card_html(page(admin_client, taken + GRACE + SECOND), "alpha")
    assert "host figures as of 2026-01-15 11:00:00 EST" in text(stale)
    assert "up 1 h, pid 4242" in text(stale)  # up to when they were taken, not to now
    # An old full disk keeps its warning colour: it may be why the bot went quiet.
    assert '<li class="host-line host-warning">disk 2.0% free' in stale


def test_the_newest_snapshot_answers_what_it_has_and_older_ones_the_rest(bot: Bot) -> None:
    client = client_for(bot)
    post_state(client, NOW - dt.timedelta(hours=1), host=host(disk_free=1 * GB), equity=5000)
    post_state(client, NOW, positions=[position("AAPL", 1, 10, 12)])
    shown = card(bot)
    assert shown.positions.count == 1 and shown.account.equity == Decimal(5000)
    assert shown.host.lines[0].level == "warning" and shown.host.as_of == "as of 2026-01-15 10:00:00 EST"


def test_the_cockpits_state_queries_do_not_grow_with_positions_or_snapshots(bot: Bot) -> None:
    client = client_for(bot)
    everything = {"positions": [position("AAPL", 1, 10, 12)], "equity": 1, "host": host()}
    post_state(client, NOW - dt.timedelta(minutes=2), **everything)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            cockpit.bot_state_views(bot, NOW, THURSDAY, Decimal(0), GRACE)
        return len(captured)

    few = queries()
    for n in range(20):
        post_state(client, NOW - dt.timedelta(seconds=60 - n), **{**everything, "positions": [
            position(f"S{i}", 1, 10, 12) for i in range(50)
        ]})  # fmt: skip
    assert queries() == few <= 3  # the newest snapshot, the day's, the one before the day


# --- the bot's page in the admin --------------------------------------------------------------


def test_the_bots_page_lists_its_last_20_snapshots_newest_first(admin_client: Client, bot: Bot) -> None:
    client = client_for(bot)
    for n in range(21):
        post_state(
            client,
            NOW + dt.timedelta(seconds=n),
            positions=[position("AAPL", 10, 100, 90)] * 0
            + [position(f"S{i}", 1, 10, 12) for i in range(n % 3)],
            equity=1000 + n,
        )
    post_state(client, NOW + dt.timedelta(minutes=5), host=host(disk_free=99 * MB, disk_total=1000 * MB))
    html = admin_client.get(f"/admin/trades/bot/{bot.pk}/change/").content.decode()
    group = html[html.index('id="snapshots-group"') :]
    group = group[: group.index("</table>")]
    heads = [text(head) for head in re.findall(r'<th class="column-[^"]*">(.*?)</th>', group, re.S)]
    rows = re.findall(r'<tr class="form-row[^"]*"[^>]*>(.*?)</tr>', group, re.S)
    assert len(rows) == 20
    cells = [
        [text(cell) for cell in re.findall(r'<td class="field-[^"]*">(.*?)</td>', row, re.S)] for row in rows
    ]
    cells = [list(zip(heads, row, strict=True)) for row in cells]
    newest, second, oldest = dict(cells[0]), dict(cells[1]), dict(cells[-1])
    assert newest == {
        "Time": "2026-01-15 11:05:00 EST",
        "Positions": "-",  # not reported by that heartbeat
        "Unrealized P&L": "-",
        "Equity": "-",
        "Cash": "-",
        "Disk free": "9.9% (99.0 MB)",
        "Memory available": "50.0% (1.0 GB)",
        "RSS": "120.0 MB",
        "CPU": "3.5%",
    }
    assert second["Time"] == "2026-01-15 11:00:20 EST" and second["Positions"] == "2"  # 20 % 3
    assert (
        second["Unrealized P&L"] == "4.00" and second["Equity"] == "1,020.00" and second["Disk free"] == "-"
    )
    assert oldest["Time"] == "2026-01-15 11:00:02 EST"  # of 22 snapshots, 11:00:00 and :01 are left out
    assert re.findall(r'<input(?![^>]*type="hidden")', group) == []  # shown, never a field to change


def test_the_bots_page_saves_while_new_snapshots_arrive(admin_client: Client, bot: Bot) -> None:
    """The snapshots are view-only: saving the bot's page (its name, say) changes none of them, even
    when a heartbeat has pushed the oldest listed one out since the page was opened."""
    client = client_for(bot)
    for n in range(20):
        post_state(client, NOW + dt.timedelta(seconds=n), equity=n)
    url = f"/admin/trades/bot/{bot.pk}/change/"
    html = admin_client.get(url).content.decode()
    form = html[html.index('id="bot_form"') :]
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    data.update({"name": "alpha-renamed", "is_active": "on", "_save": "Save"})
    post_state(client, NOW + dt.timedelta(minutes=1), equity=99)
    before = list(bot.snapshots.order_by("id").values_list("id", "equity", "taken_at"))
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    bot.refresh_from_db()
    assert bot.name == "alpha-renamed"
    assert list(bot.snapshots.order_by("id").values_list("id", "equity", "taken_at")) == before


def test_a_new_bots_page_has_no_snapshots_and_adds_the_bot(admin_client: Client, db: None) -> None:
    page = admin_client.get("/admin/trades/bot/add/")
    assert page.status_code == 200 and "snapshots-group" not in page.content.decode()
    html = page.content.decode()
    data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    data.update({"name": "gamma", "is_active": "on", "_save": "Save"})
    assert admin_client.post("/admin/trades/bot/add/", data).status_code == 302
    assert Bot.objects.filter(name="gamma").exists()


def test_a_bot_without_snapshots_says_so_on_its_page(admin_client: Client, bot: Bot) -> None:
    html = admin_client.get(f"/admin/trades/bot/{bot.pk}/change/").content.decode()
    assert 'id="snapshots-group"' in html and 'class="form-row has_original' not in html


def test_the_days_pnl_says_how_old_its_positions_are_once_past_the_grace(
    admin_client: Client, bot: Bot
) -> None:
    post_state(client_for(bot), NOW, positions=[position("AAPL", 10, 100, 90)])
    at_grace = card_html(page(admin_client, NOW + GRACE), "alpha")
    assert "Day P&amp;L" in at_grace and "as of" not in at_grace
    stale = card_html(page(admin_client, NOW + GRACE + SECOND), "alpha")
    day_line = stale.split('class="bot-day-pnl"', 1)[1].split("</div>", 1)[0]
    assert "as of 2026-01-15 11:00:00 EST" in text(day_line)
