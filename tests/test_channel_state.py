"""A channel's state is what its last sends did, and a test send says its own result once.

Against a real Telegram loopback stand-in and a port where nothing listens: the channel goes
failing at its first failed send (health says so at once, naming it), stays failing since
that first failure, and is working again at the next success.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from alerts.delivery import deliver_pending, send_test_alert
from alerts.health import outbox
from alerts.models import Alert, AlertState, Channel
from tests.channel_fixtures import *  # noqa: F403
from tests.channel_fixtures import make_channel, send, telegram_config
from tests.harness import free_port, manage, site_env, site_sql
from tests.telegram_server import TOKEN, TelegramServer
from trades.formats import format_market_time

pytestmark = pytest.mark.django_db
T = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)
KEY = TOKEN.split(":")[1]  # the secret half of the bot token, which rides in the URL's path


@pytest.fixture
def closed() -> str:
    """A loopback address where nothing listens: every connection is refused."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def phone(telegram: TelegramServer, closed: str, fast_http: Any) -> Channel:
    """A Telegram channel whose Bot API URL points at the closed port (the other channels are off)."""
    Channel.objects.update(enabled=False)
    return make_channel(
        "phone-telegram", "telegram", {**telegram_config(telegram), "api_url": f"http://{closed}"}
    )


def point_at(channel: Channel, api_url: str) -> None:
    Channel.objects.filter(pk=channel.pk).update(config={**channel.config, "api_url": api_url})


def test_a_channel_at_a_closed_port_goes_failing_at_once_and_works_again_at_the_next_success(
    phone: Channel, telegram: TelegramServer, closed: str
) -> None:
    # Now, not a fixed day: health also counts alerts unsent for 5 minutes, and these are not.
    start = timezone.now()
    assert outbox()["ok"] is True  # nothing failed yet
    send(now=start)
    phone.refresh_from_db()
    assert phone.failing_since == start and phone.consecutive_failures == 1
    assert phone.last_error == f"cannot reach {closed}: connection refused (3 tries)"
    assert phone.state_words == f"failing since {format_market_time(start)} (1 send): {phone.last_error}"
    # Health is degraded right after the first failed send, naming the channel and why.
    health = outbox()
    assert health["ok"] is False and health["failing_channels"] == ["phone-telegram"]
    assert health["reason"] == f"channel phone-telegram {phone.failing_words}"
    assert KEY not in health["reason"] and KEY not in phone.last_error

    # 10 s on: a second alert fails (the first waits for its retry, 30 s after its failure).
    send(now=start + dt.timedelta(seconds=10))
    phone.refresh_from_db()
    assert phone.failing_since == start  # since the first failure in a row, not the latest
    assert phone.consecutive_failures == 2 and phone.last_failure_at == start + dt.timedelta(seconds=10)

    point_at(phone, telegram.api_url)
    back = start + dt.timedelta(seconds=20)
    send(now=back)
    phone.refresh_from_db()
    assert phone.failing_since is None and phone.consecutive_failures == 0 and phone.last_error == ""
    assert phone.last_success_at == back and phone.state_words == "working"
    assert outbox() == {"ok": True, "unsent": 0}


def test_a_disabled_failing_channel_leaves_health_alone(phone: Channel) -> None:
    send()
    assert outbox()["ok"] is False
    Channel.objects.filter(pk=phone.pk).update(enabled=False)
    assert outbox()["ok"] is True  # the operator switched it off: nothing to deliver there


def test_a_host_that_does_not_exist_is_named_with_name_not_found(phone: Channel) -> None:
    point_at(phone, "http://no-such-host.invalid")
    send(now=T)
    phone.refresh_from_db()
    assert phone.last_error == "cannot reach no-such-host.invalid: name not found (3 tries)"


def test_an_answer_from_the_service_is_named_with_its_host_and_status(
    phone: Channel, telegram: TelegramServer
) -> None:
    point_at(phone, telegram.api_url)
    Channel.objects.filter(pk=phone.pk).update(
        config={
            **phone.config,
            "api_url": telegram.api_url,
            "bot_token": "123456789:wrongwrongwrongwrongwrong",
        }
    )
    send(now=T)
    phone.refresh_from_db()
    assert phone.last_error.startswith(
        f"Telegram refused the bot or chat (HTTP 401 from {telegram.host}: Unauthorized)"
    )
    assert phone.failing_since == T and phone.is_suspended
    assert "wrongwrongwrong" not in phone.last_error


def test_a_token_the_service_echoes_back_is_masked_in_the_channels_error(
    phone: Channel, telegram: TelegramServer
) -> None:
    point_at(phone, telegram.api_url)
    telegram.then("echo", times=3)
    send(now=T)
    phone.refresh_from_db()
    assert phone.last_error.startswith(f"{telegram.host} answered HTTP 502: Bad Gateway: POST /bot")
    assert KEY not in phone.last_error and KEY not in outbox()["reason"]


# --- a test send: its own result, once, never retried ---------------------------------------


def test_a_failed_test_send_says_failed_once_and_is_not_retried(
    phone: Channel, telegram: TelegramServer, closed: str
) -> None:
    (result,) = send_test_alert([phone])
    assert not result.ok
    assert result.words == f"failed: cannot reach {closed}: connection refused (3 tries)"
    (alert,) = Alert.objects.filter(channel=phone)
    assert alert.state == AlertState.FAILED and alert.attempts == 1
    phone.refresh_from_db()
    assert phone.is_failing  # a test send is a send: the channel shows it
    # The channel works now; a delivery run still leaves the failed test alert alone.
    point_at(phone, telegram.api_url)
    deliver_pending()
    assert telegram.messages == []
    alert.refresh_from_db()
    assert alert.state == AlertState.FAILED


def test_a_successful_test_send_says_where_it_went_and_mends_the_channel(
    phone: Channel, telegram: TelegramServer
) -> None:
    send(now=T)
    point_at(phone, telegram.api_url)
    (result,) = send_test_alert([Channel.objects.get(pk=phone.pk)])
    assert result.ok and result.words == "sent to chat -1001234567890"
    assert telegram.texts()[0].startswith("🔔 Test alert (info)")
    phone.refresh_from_db()
    assert phone.state_words == "working"


def test_the_admin_action_reports_the_test_sends_result_once(
    admin_client: Client, phone: Channel, closed: str
) -> None:
    response = admin_client.post(
        "/admin/alerts/channel/", {"action": "send_test", "_selected_action": [str(phone.pk)]}, follow=True
    )
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [
        f"phone-telegram: test alert failed: cannot reach {closed}: connection refused (3 tries)"
    ]
    page = response.content.decode()
    assert "pending" not in page.lower() and "gave up" not in page


def test_send_test_alert_exits_non_zero_only_when_every_channel_failed(
    phone: Channel, telegram: TelegramServer, closed: str
) -> None:
    out = StringIO()
    with pytest.raises(CommandError, match="reached no channel"):
        call_command("send_test_alert", stdout=out)
    assert out.getvalue().splitlines() == [
        f"phone-telegram: failed: cannot reach {closed}: connection refused (3 tries)"
    ]
    make_channel("desk-telegram", "telegram", telegram_config(telegram))
    out = StringIO()
    call_command("send_test_alert", stdout=out)  # one channel took it: success
    assert out.getvalue().splitlines() == [
        "desk-telegram: sent to chat -1001234567890",
        f"phone-telegram: failed: cannot reach {closed}: connection refused (3 tries)",
    ]


def test_the_channel_list_and_page_show_failing_then_working(
    admin_client: Client, phone: Channel, telegram: TelegramServer, closed: str
) -> None:
    send(now=T)
    listing = admin_client.get("/admin/alerts/channel/").content.decode()
    assert "failing since 2026-01-15 10:00:00 EST (1 send)" in listing and closed in listing
    assert "connection refused" in listing and KEY not in listing
    page = admin_client.get(f"/admin/alerts/channel/{phone.pk}/change/").content.decode()
    assert "failing since 2026-01-15 10:00:00 EST" in page and "connection refused" in page
    point_at(phone, telegram.api_url)
    send(now=T + dt.timedelta(minutes=5))
    listing = admin_client.get("/admin/alerts/channel/").content.decode()
    assert "failing since" not in listing and "2026-01-15 10:05:00 EST" in listing  # its last success


def test_the_cockpit_names_a_failing_channel_until_it_works_again(
    admin_client: Client, phone: Channel, telegram: TelegramServer, closed: str
) -> None:
    send()
    page = admin_client.get("/admin/").content.decode()
    site = page[page.index('id="cockpit-site"') :]
    assert "alert delivery</span>: channel phone-telegram failing since" in site
    assert f"cannot reach {closed}: connection refused" in site
    point_at(phone, telegram.api_url)
    send()
    page = admin_client.get("/admin/").content.decode()
    assert "phone-telegram failing" not in page and "alert delivery</span>: ok" in page


def test_the_migration_keeps_each_channels_last_success_and_ends_old_test_alerts_retries(
    tmp_path: Path,
) -> None:
    # A database of its own, migrated by the real command: the test database stays as it is.
    env = site_env(tmp_path)
    manage(env, "migrate", "alerts", "0006_what_a_delivery_attempt_reached")
    ((discord,),) = site_sql(env, "SELECT id FROM alerts_channel WHERE name = 'discord'")
    insert = (
        "INSERT INTO alerts_alert (channel_id, source, subject, level, title, message, fields, state,"
        " created_at, sent_at, attempts, last_error, held)"
        " VALUES (?, ?, ?, 'info', 't', '', '[]', ?, ?, ?, 0, '', FALSE)"
    )
    site_sql(env, insert, discord, "daily_loss", "", "sent", "2026-01-14 15:00:00", "2026-01-14 15:00:01")
    site_sql(env, insert, discord, "daily_loss", "", "sent", "2026-01-15 15:00:00", "2026-01-15 15:00:02")
    site_sql(env, insert, discord, "test", "test-2026-01-15T15:05:00", "pending", "2026-01-15 15:05:00", None)
    site_sql(env, insert, discord, "test", "test-2026-01-15T15:06:00", "sent", "2026-01-15 15:06:00", None)
    site_sql(env, insert, discord, "test", "bot-1:2026-01-15", "pending", "2026-01-15 15:07:00", None)
    manage(env, "migrate")
    assert site_sql(env, "SELECT last_success_at FROM alerts_channel WHERE id = ?", discord) == [
        ("2026-01-15 15:00:02",)
    ]
    assert site_sql(
        env, "SELECT source, state FROM alerts_alert WHERE created_at >= '2026-01-15 15:05' ORDER BY id"
    ) == [
        ("test_alert", "failed"),  # a test alert still waiting has had its one try
        ("test_alert", "sent"),
        ("test", "pending"),  # not a test alert's subject: left as it was
    ]
