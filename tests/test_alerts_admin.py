"""The alerts admin: thresholds edited from the list, a webhook never shown, warnings, actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, AlertRule, AlertState, Channel, DeliveryAttempt, TradingHalt
from tests.alert_fixtures import *  # noqa: F403  (the discord, channel and fast_http fixtures)
from tests.discord_server import WEBHOOK_TOKEN, DiscordServer
from trades.models import Bot

pytestmark = pytest.mark.django_db


def test_a_threshold_is_edited_straight_from_the_rule_list(admin_client: Client) -> None:
    url = "/admin/alerts/alertrule/?kind__exact=daily_loss"
    page = admin_client.get(url)
    assert page.status_code == 200 and b'name="form-0-threshold"' in page.content
    rule = AlertRule.objects.get(name="daily-loss-warning")
    response = admin_client.post(
        url,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(rule.pk),
            "form-0-threshold": "-250",
            "form-0-level": "critical",
            "form-0-enabled": "on",
            "form-0-cooldown_minutes": "15",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    rule.refresh_from_db()
    assert (rule.threshold, rule.level, rule.cooldown_minutes) == (-250, "critical", 15)


def test_the_webhook_url_is_never_shown_whole(admin_client: Client, channel: Channel) -> None:
    for url in ("/admin/alerts/channel/", f"/admin/alerts/channel/{channel.pk}/change/"):
        content = admin_client.get(url).content.decode()
        assert WEBHOOK_TOKEN not in content and WEBHOOK_TOKEN[:10] not in content
        assert "/api/webhooks/" in content  # the masked form identifies it


def test_an_empty_url_field_keeps_the_webhook_and_a_new_one_replaces_it(
    admin_client: Client, channel: Channel, discord: DiscordServer
) -> None:
    form = {
        "name": "discord",
        "kind": "discord",
        "discord__webhook_url": "",
        "min_level": "warning",
        "enabled": "on",
        "rate_limit_per_minute": "7",
        "disabled_reason": "",
    }
    url = f"/admin/alerts/channel/{channel.pk}/change/"
    assert admin_client.post(url, form).status_code == 302
    channel.refresh_from_db()
    assert (channel.config["webhook_url"], channel.min_level, channel.rate_limit_per_minute) == (
        discord.url,
        "warning",
        7,
    )
    Channel.objects.filter(pk=channel.pk).update(disabled_reason="HTTP 404", disabled_at=timezone.now())
    new_url = discord.url.replace(WEBHOOK_TOKEN, "another-token-xyz")
    assert admin_client.post(url, {**form, "discord__webhook_url": new_url}).status_code == 302
    channel.refresh_from_db()
    assert channel.config == {"webhook_url": new_url}
    assert channel.disabled_reason == ""  # a new URL is a fresh start
    assert admin_client.post(url, {**form, "use_environment": "on"}).status_code == 302
    channel.refresh_from_db()
    assert channel.config == {} and channel.uses_environment


def test_a_disabled_channel_shows_a_warning(admin_client: Client, channel: Channel) -> None:
    Channel.objects.filter(pk=channel.pk).update(disabled_reason="Discord refused the webhook (HTTP 404)")
    content = admin_client.get("/admin/alerts/channel/", follow=True).content.decode()
    assert "Channel discord is disabled: Discord refused the webhook (HTTP 404)" in content
    assert "⚠ disabled" in content


def test_the_test_alert_action_sends_through_the_channel(
    admin_client: Client, channel: Channel, discord: DiscordServer
) -> None:
    response = admin_client.post(
        "/admin/alerts/channel/", {"action": "send_test", "_selected_action": [str(channel.pk)]}, follow=True
    )
    assert "Discord: test alert sent" in response.content.decode()
    assert discord.titles() == ["🔔 Test alert (info)"]


def test_alert_history_shows_state_filters_and_attempts(admin_client: Client, channel: Channel) -> None:
    alert = Alert.objects.create(
        channel=channel, source="daily_loss", level="warning", title="Loss", state="failed"
    )
    DeliveryAttempt.objects.create(
        alert=alert, channel=channel, status_code=503, error="HTTP 503", duration_ms=12
    )
    listing = admin_client.get("/admin/alerts/alert/?state__exact=failed").content.decode()
    assert "Loss" in listing and "By state" in listing
    detail = admin_client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert "HTTP 503" in detail and "503" in detail


def test_resend_puts_failed_alerts_back_in_the_outbox(
    admin_client: Client, channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    alert = Alert.objects.create(
        channel=channel, source="test", level="info", title="x", state=AlertState.FAILED, attempts=10
    )
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/alerts/alert/", {"action": "resend", "_selected_action": [str(alert.pk)]})
    alert.refresh_from_db()
    assert (alert.state, alert.attempts) == (AlertState.PENDING, 0)
    from django_q.models import OrmQ

    assert [task.func() for task in OrmQ.objects.all()] == ["alerts.tasks.deliver"]


def test_an_admin_resumes_trading_after_a_halt(admin_client: Client, bot: Bot, api: Any) -> None:
    today = timezone.localdate(timezone.now(), timezone=dt.UTC)
    halt = TradingHalt.objects.create(
        bot=bot,
        trading_day=today - dt.timedelta(days=1),
        ends_on=today + dt.timedelta(days=3),
        reason="max daily loss",
    )
    assert api.get("/api/v1/status/").json()["trading_allowed"] is False
    admin_client.post(
        "/admin/alerts/tradinghalt/", {"action": "resume_trading", "_selected_action": [str(halt.pk)]}
    )
    halt.refresh_from_db()
    assert halt.resumed_at is not None and halt.resumed_by == "admin"
    assert api.get("/api/v1/status/").json()["trading_allowed"] is True


def test_every_alerts_admin_page_renders(admin_client: Client) -> None:
    for model in ("alertrule", "channel", "silence", "alert", "tradinghalt", "summaryschedule"):
        assert admin_client.get(f"/admin/alerts/{model}/").status_code == 200, model
        assert admin_client.get(f"/admin/alerts/{model}/add/").status_code in (200, 403), model
