"""The cockpit's live part (``/admin/cockpit/live/``), which the page's script asks for every 15 s:
staff only, the page's own markup without the app list, and an ETag that stays the same while
nothing happened (304) and changes with a trade, a halt or an age crossing a whole minute.

Every moment is fixed (``timezone.now`` mocked), so "nothing happened" is exactly that."""

from __future__ import annotations

import datetime as dt
import gzip
import re
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from alerts.models import TradingHalt
from monitorsite.admin_site import CSRF_PLACEHOLDER, REFRESH_SECONDS
from tests.conftest import stored_trade
from tests.state_fixtures import client_for, host, post_state
from tests.test_cockpit import THURSDAY, utc
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
LIVE = "/admin/cockpit/live/"
NOW = utc(THURSDAY, 11)
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)


def ask(client: Client, at: dt.datetime, etag: str | None = None) -> tuple[int, str, str]:
    """The live part at ``at``, sent ``If-None-Match: etag``: (status, ETag, body)."""
    headers = {} if etag is None else {"HTTP_IF_NONE_MATCH": etag}
    with mock.patch("django.utils.timezone.now", return_value=at):
        response = client.get(LIVE, **headers)
    return response.status_code, response.get("ETag", ""), response.content.decode()


def trade(bot: Bot, n: int, pnl: str, at: dt.datetime) -> None:
    Trade.objects.record_batch(bot, [stored_trade(n, pnl=Decimal(pnl), executed_at=at)])


def test_an_unchanged_cockpit_answers_304_and_a_new_trade_200_with_a_new_etag(
    admin_client: Client, bot: Bot
) -> None:
    trade(bot, 1, "12.50", NOW - MINUTE)
    status, first, body = ask(admin_client, NOW)
    assert status == 200 and re.fullmatch(r'"[0-9a-f]{32}"', first), (status, first)
    assert '<dd class="today-pnl"><span class="pnl-pos">12.50</span></dd>' in body

    status, etag, body = ask(admin_client, NOW + 5 * SECOND, first)
    assert (status, etag, body) == (304, first, "")

    trade(bot, 2, "30", NOW + 6 * SECOND)
    status, second, body = ask(admin_client, NOW + 7 * SECOND, first)
    assert status == 200 and second != first
    assert '<dd class="today-pnl"><span class="pnl-pos">42.50</span></dd>' in body
    assert ask(admin_client, NOW + 8 * SECOND, second)[0] == 304
    # An ETag that is not the current one (an old one, or another cockpit's) gets the part.
    assert ask(admin_client, NOW + 9 * SECOND, '"0123"')[0] == 200


def test_the_live_part_is_compressed_and_its_weak_etag_still_answers_304(
    admin_client: Client, bot: Bot
) -> None:
    """Compressed (it carries no CSRF token for BREACH to guess at); compressing makes its ETag weak,
    and If-None-Match compares weakly: the browser's next check still gets its 304."""
    trade(bot, 1, "12.50", NOW - MINUTE)
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        response = admin_client.get(LIVE, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert b"12.50" in gzip.decompress(response.content)
    assert response["ETag"] == "W/" + ask(admin_client, NOW)[1]
    assert ask(admin_client, NOW + SECOND, response["ETag"])[0] == 304


def test_a_heartbeat_age_changes_the_etag_only_when_it_crosses_a_whole_minute(
    admin_client: Client, bot: Bot
) -> None:
    Bot.objects.filter(pk=bot.pk).update(last_heartbeat_at=NOW)
    status, etag, body = ask(admin_client, NOW + SECOND)
    assert status == 200 and "heartbeat 0\xa0minutes ago" in body
    assert ask(admin_client, NOW + MINUTE - SECOND, etag)[0] == 304  # still "0 minutes ago"
    status, later, body = ask(admin_client, NOW + MINUTE, etag)
    assert status == 200 and later != etag and "heartbeat 1\xa0minute ago" in body


def test_a_bots_uptime_counts_whole_minutes_so_the_etag_holds_between_them(
    admin_client: Client, bot: Bot
) -> None:
    """Up 5 min 30 s at the heartbeat: "up 5 min" until 6:00 exactly, then "up 6 min"."""
    post_state(client_for(bot), NOW, host=host(started_at=NOW - 5 * MINUTE - 30 * SECOND))
    status, etag, body = ask(admin_client, NOW + SECOND)
    assert status == 200 and "up 5 min, pid 4242" in body
    assert ask(admin_client, NOW + 29 * SECOND, etag)[0] == 304
    status, later, body = ask(admin_client, NOW + 30 * SECOND, etag)
    assert status == 200 and later != etag and "up 6 min, pid 4242" in body


def test_a_halts_resume_form_keeps_the_etag_and_carries_a_placeholder_for_the_pages_token(
    admin_client: Client, bot: Bot
) -> None:
    """A CSRF token is masked anew at every render: the part carries a fixed placeholder instead
    (the script puts the page's token in its place), so a halt does not make every answer differ."""
    TradingHalt.objects.create(
        bot=bot,
        trading_day=THURSDAY,
        ends_on=dt.date(2026, 1, 16),
        reason="max daily loss: -1,200",
        created_at=NOW,
    )
    status, etag, body = ask(admin_client, NOW + SECOND)
    assert status == 200 and "Trading halted: alpha" in body
    assert f'<input type="hidden" name="csrfmiddlewaretoken" value="{CSRF_PLACEHOLDER}">' in body
    assert ask(admin_client, NOW + 2 * SECOND, etag)[0] == 304
    # The page itself still carries a real token in the same form.
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        page = admin_client.get("/admin/").content.decode()
    tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert tokens and CSRF_PLACEHOLDER not in tokens


def test_the_live_part_is_the_pages_own_without_the_app_list(admin_client: Client, bot: Bot) -> None:
    trade(bot, 1, "-4.25", NOW - MINUTE)
    _, _, part = ask(admin_client, NOW)
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        page = admin_client.get("/admin/").content.decode()
    inside = page[page.index('<div id="cockpit-live"') : page.index('<p class="quiet cockpit-updated"')]
    inside = inside[inside.index(">") + 1 : inside.rindex("</div>")]  # the live div's content
    assert re.sub(r'value="[^"]*"', "", inside) == re.sub(r'value="[^"]*"', "", part)
    assert 'id="cockpit-bots"' in part and 'id="cockpit-alerts"' in part and 'id="cockpit-site"' in part
    assert "app-trades" not in part and "<script" not in part and "Updated" not in part


def test_the_page_updates_every_15_s_with_a_script_and_reloads_every_30_s_without(
    admin_client: Client, bot: Bot
) -> None:
    page = admin_client.get("/admin/").content.decode()
    assert REFRESH_SECONDS == 15
    assert f'<div id="cockpit-live" data-live-url="{LIVE}" data-refresh-seconds="15">' in page
    assert '<script src="/static/monitorsite/cockpit.js" defer></script>' in page
    head = page[: page.index("</head>")]
    # The only reload is inside <noscript>: a browser running the script never reloads the page.
    assert re.findall(r"<noscript>\s*<meta http-equiv=\"refresh\" content=\"30\">\s*</noscript>", head)
    assert page.count('http-equiv="refresh"') == 1


def test_the_live_part_is_for_staff_only(client: Client, bot: Bot) -> None:
    trade(bot, 1, "12.50", NOW - MINUTE)
    response = client.get(LIVE)  # no session: the login page, not the figures
    assert response.status_code == 302 and response["Location"] == f"/admin/login/?next={LIVE}"
    client.force_login(get_user_model().objects.create_user("viewer", password="not-staff-password"))
    response = client.get(LIVE)  # signed in but not staff: the same
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert b"12.50" not in response.content and b"alpha" not in response.content
