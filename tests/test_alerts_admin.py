"""The alerts admin: thresholds edited from the list, a webhook never shown, warnings, actions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Success

from alerts.models import Alert, AlertRule, AlertState, Channel, DeliveryAttempt, Silence, TradingHalt
from monitorsite.health import HEARTBEAT_TASK
from tests.alert_fixtures import *  # noqa: F403  (the discord, channel and fast_http fixtures)
from tests.alert_fixtures import RULE_CASES
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
    DeliveryAttempt.objects.create(
        alert=alert, channel=channel, status_code=450, error="deferred", reached=["desk@example.com"]
    )
    listing = admin_client.get("/admin/alerts/alert/?state__exact=failed").content.decode()
    assert "Loss" in listing and "By state" in listing
    detail = admin_client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert "HTTP 503" in detail and "503" in detail and "desk@example.com" in detail


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
    from tests.queued import queued

    assert [task.func() for task in queued()] == ["alerts.tasks.deliver"]


def test_an_admin_resumes_trading_after_a_halt(admin_client: Client, bot: Bot, api: Any) -> None:
    today = timezone.localdate(timezone.now(), timezone=dt.UTC)
    halt = TradingHalt.objects.create(
        bot=bot,
        trading_day=today - dt.timedelta(days=1),
        ends_on=today + dt.timedelta(days=3),
        reason="max daily loss",
    )
    assert api.get("/api/v1/status/").json()["trading_allowed"] is False
    action = {"action": "resume_trading", "_selected_action": [str(halt.pk)]}
    # The action asks first (the cockpit's banner posts the same form) and changes nothing yet.
    question = admin_client.post("/admin/alerts/tradinghalt/", action)
    assert question.status_code == 200 and b"Yes, resume trading" in question.content
    halt.refresh_from_db()
    assert halt.resumed_at is None
    admin_client.post("/admin/alerts/tradinghalt/", {**action, "confirmed": "yes"})
    halt.refresh_from_db()
    assert halt.resumed_at is not None and halt.resumed_by == "admin"
    assert api.get("/api/v1/status/").json()["trading_allowed"] is True


def test_every_alerts_admin_page_renders(admin_client: Client) -> None:
    for model in ("alertrule", "channel", "silence", "alert", "tradinghalt", "summaryschedule"):
        assert admin_client.get(f"/admin/alerts/{model}/").status_code == 200, model
        assert admin_client.get(f"/admin/alerts/{model}/add/").status_code in (200, 403), model


# --- what the actions write: the querysets' methods they call ---------------------------

NOW = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


def make_alert(channel: Channel | None, state: str, **fields: Any) -> Alert:
    return Alert.objects.create(
        channel=channel, source="test", level="warning", title=state, state=state, **fields
    )


def test_resend_puts_finished_alerts_back_and_leaves_those_on_their_way(channel: Channel) -> None:
    failed = make_alert(channel, AlertState.FAILED, attempts=10, last_error="HTTP 503", held=True)
    sent = make_alert(channel, AlertState.SENT, attempts=1)
    untouched = [make_alert(channel, state, attempts=2) for state in ("pending", "sending", "folded")]

    assert Alert.objects.filter(channel=channel).resend(NOW) == 2

    failed.refresh_from_db()
    assert (failed.state, failed.attempts, failed.last_error, failed.held) == ("pending", 0, "", False)
    sent.refresh_from_db()
    assert (sent.state, sent.attempts) == ("pending", 0)
    assert [(a.state, a.attempts) for a in Alert.objects.filter(pk__in=[a.pk for a in untouched])] == [
        ("folded", 2),
        ("sending", 2),
        ("pending", 2),
    ]
    assert Alert.objects.count() == 5  # a reset, not a copy


def test_an_alert_a_worker_claims_while_it_is_resent_is_not_sent_twice(channel: Channel) -> None:
    from django.db import connection

    alert = make_alert(channel, AlertState.FAILED, attempts=10)
    claims: list[int] = []

    def worker_claims_first(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # Another admin's resend and a worker's claim land between this resend's read and its write.
        if sql.lstrip().upper().startswith("UPDATE") and not claims:
            claims.append(0)
            claims[0] = Alert.objects.filter(pk=alert.pk).update(state=AlertState.SENDING, attempts=1)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(worker_claims_first):
        assert Alert.objects.filter(pk=alert.pk).resend(NOW) == 0

    assert claims == [1]
    alert.refresh_from_db()
    assert (alert.state, alert.attempts) == (AlertState.SENDING, 1)


def test_resend_copies_an_alert_stored_without_a_channel_to_the_channels_now_configured(
    channel: Channel,
) -> None:
    stored = make_alert(None, AlertState.STORED, message="body", fields=[["Bot", "alpha"]])

    assert Alert.objects.filter(pk=stored.pk).resend(NOW) == 1

    copy = Alert.objects.exclude(pk=stored.pk).get()
    assert (copy.channel, copy.state, copy.created_at) == (channel, AlertState.PENDING, NOW)
    assert (copy.title, copy.message, copy.fields, copy.level) == (
        "stored",
        "body",
        [["Bot", "alpha"]],
        "warning",
    )
    stored.refresh_from_db()
    assert stored.state == AlertState.STORED


def test_resuming_channels_clears_only_the_disabled_ones(channel: Channel) -> None:
    other = Channel.objects.create(name="spare", kind="discord", disabled_reason="")
    Channel.objects.filter(pk=channel.pk).update(
        disabled_reason="webhook deleted (HTTP 404)", disabled_at=NOW
    )

    assert Channel.objects.filter(pk__in=[channel.pk, other.pk]).resume() == 1
    assert Channel.objects.filter(pk__in=[channel.pk, other.pk]).resume() == 0

    channel.refresh_from_db()
    assert (channel.disabled_reason, channel.disabled_at) == ("", None)


def test_resuming_an_already_resumed_halt_changes_nothing_and_keeps_the_first_resumer(bot: Bot) -> None:
    day = dt.date(2026, 1, 15)
    halt = TradingHalt.objects.create(
        bot=bot, trading_day=day, ends_on=day + dt.timedelta(days=1), reason="x"
    )

    assert TradingHalt.objects.filter(pk=halt.pk).resume(by="alice", now=NOW) == 1
    assert TradingHalt.objects.filter(pk=halt.pk).resume(by="bob", now=NOW + dt.timedelta(minutes=1)) == 0

    halt.refresh_from_db()
    assert (halt.resumed_by, halt.resumed_at) == ("alice", NOW)
    assert TradingHalt.objects.in_force(bot, day) is None


# --- every rule of a rule kind's judge, through the admin's real forms ------------------


def rule_form(kind: str, threshold: str, event_kind: str, per_trade: bool, **extra: str) -> dict[str, str]:
    data = {
        "name": "new-rule",
        "kind": kind,
        "event_kind": event_kind,
        "threshold": threshold,
        "level": "warning",
        "enabled": "on",
        "cooldown_minutes": "60",
        "bot": "",
        "strategy": "",
        "symbol": "",
        **extra,
    }
    if per_trade:
        data["per_trade"] = "on"
    return data


def form_errors(response: Any) -> dict[str, Any]:
    return dict(response.context["adminform"].form.errors)


@pytest.mark.parametrize(("kind", "threshold", "event_kind", "per_trade", "refused"), RULE_CASES)
def test_the_add_form_applies_the_rule_kinds_judge(
    admin_client: Client, kind: str, threshold: str, event_kind: str, per_trade: bool, refused: str | None
) -> None:
    before = AlertRule.objects.count()
    response = admin_client.post(
        "/admin/alerts/alertrule/add/", rule_form(kind, threshold, event_kind, per_trade)
    )
    if refused is None:
        assert response.status_code == 302, form_errors(response)
        rule = AlertRule.objects.get(name="new-rule")
        assert rule.problems == {} and rule.threshold == (Decimal(threshold) if threshold else None)
    else:
        assert response.status_code == 200
        assert list(form_errors(response)) == [refused]  # the field is named, and only it
        assert AlertRule.objects.count() == before


@pytest.mark.parametrize(("kind", "threshold", "event_kind", "per_trade", "refused"), RULE_CASES)
def test_the_change_form_applies_the_rule_kinds_judge(
    admin_client: Client, kind: str, threshold: str, event_kind: str, per_trade: bool, refused: str | None
) -> None:
    rule = AlertRule.objects.get(name="trade-frequency")
    before = list(AlertRule.objects.filter(pk=rule.pk).values())
    response = admin_client.post(
        f"/admin/alerts/alertrule/{rule.pk}/change/",
        rule_form(kind, threshold, event_kind, per_trade, name="trade-frequency"),
    )
    if refused is None:
        assert response.status_code == 302, form_errors(response)
        rule.refresh_from_db()
        assert (rule.kind, rule.event_kind, rule.problems) == (kind, event_kind, {})
    else:
        assert response.status_code == 200
        assert list(form_errors(response)) == [refused]
        assert list(AlertRule.objects.filter(pk=rule.pk).values()) == before


def list_edit(admin_client: Client, rows: list[tuple[AlertRule, str]]) -> Any:
    data = {"form-TOTAL_FORMS": str(len(rows)), "form-INITIAL_FORMS": str(len(rows)), "_save": "Save"}
    for n, (rule, threshold) in enumerate(rows):
        data |= {
            f"form-{n}-id": str(rule.pk),
            f"form-{n}-threshold": threshold,
            f"form-{n}-level": rule.level,
            f"form-{n}-cooldown_minutes": str(rule.cooldown_minutes),
        }
        if rule.enabled:
            data[f"form-{n}-enabled"] = "on"
    return admin_client.post("/admin/alerts/alertrule/", data)


@pytest.mark.parametrize(
    ("name", "threshold", "refused"),
    [
        ("max-daily-loss", "", True),  # cleared from the list: would read as 0 and halt every bot
        ("max-daily-loss", "0", True),
        ("max-daily-loss", "-0.01", False),
        ("daily-loss-warning", "500", True),
        ("trade-frequency", "-5", True),
        ("trade-frequency", "0", True),
        ("trade-frequency", "1", False),
        ("position-size", "0", True),
        ("position-size", "0.01", False),
        ("bot-stopped", "", True),
        ("bot-stopped", "0", True),
        ("bot-stopped", "1", False),
        ("event-crash", "5", True),  # a bot event rule takes no threshold
        ("event-crash", "", False),
    ],
)
def test_the_rule_lists_inline_edit_applies_the_judge_and_a_refusal_changes_nothing(
    admin_client: Client, name: str, threshold: str, refused: bool
) -> None:
    rule = AlertRule.objects.get(name=name)
    # A valid edit of another row in the same save: refused with it, or saved with it.
    other = AlertRule.objects.get(
        name="daily-loss-warning" if name != "daily-loss-warning" else "trade-frequency"
    )
    other_new = "-321" if other.kind == "daily_loss" else "77"
    before = list(AlertRule.objects.order_by("pk").values())
    response = list_edit(admin_client, [(rule, threshold), (other, other_new)])
    if refused:
        assert response.status_code == 200
        formset = response.context["cl"].formset
        errors = [form.errors for form in formset.forms]
        assert errors[0].keys() == {"threshold"} and not errors[1], errors
        assert b"threshold" in response.content
        assert list(AlertRule.objects.order_by("pk").values()) == before
    else:
        assert response.status_code == 302
        rule.refresh_from_db()
        other.refresh_from_db()
        assert rule.threshold == (Decimal(threshold) if threshold else None)
        assert str(other.threshold) == f"{other_new}.00"


def test_a_list_edit_of_a_rule_broken_elsewhere_names_the_field_it_cannot_show(admin_client: Client) -> None:
    AlertRule.objects.filter(name="event-crash").update(event_kind="")
    rule = AlertRule.objects.get(name="event-crash")
    response = list_edit(admin_client, [(rule, "")])
    assert response.status_code == 200
    (form,) = response.context["cl"].formset.forms
    assert "event_kind" in " ".join(form.non_field_errors())


def test_a_stored_rule_that_breaks_its_kinds_rules_is_flagged_in_the_list_and_in_health(
    admin_client: Client,
) -> None:
    from alerts.health import rules as rules_health

    assert rules_health() == {"ok": True}
    AlertRule.objects.filter(name="max-daily-loss").update(threshold=None)
    page = admin_client.get("/admin/alerts/alertrule/")
    text = page.content.decode()
    assert "not judged" in text and "max-daily-loss is not evaluated until it is fixed" in text
    state = rules_health()
    assert state["ok"] is False and state["broken_rules"] == ["max-daily-loss"]
    assert "threshold" in state["reason"]
    now = timezone.now()  # the task cluster is alive: only the rule is wrong
    Success.objects.create(id="0" * 32, name="beat", func=HEARTBEAT_TASK, started=now, stopped=now)
    response = admin_client.get("/api/v1/health/")
    assert response.status_code == 200 and response.json()["status"] == "degraded"
    assert response.json()["components"]["alert_rules"]["broken_rules"] == ["max-daily-loss"]


# --- silences ---------------------------------------------------------------------------


def silence_form(**fields: Any) -> dict[str, Any]:
    data = {
        "rule": "",
        "reason": "",
        "until_0": "",
        "until_1": "",
        "repeat": "",
        "start_time": "",
        "end_time": "",
    }
    return data | fields


@pytest.mark.parametrize(
    ("fields", "refused"),
    [
        ({"until_0": "2099-01-20", "until_1": "12:00"}, None),
        ({}, "until"),  # once, with no end
        ({"until_0": "2099-01-20", "until_1": "12:00", "start_time": "09:30"}, "start_time"),
        ({"repeat": "trading_days", "start_time": "09:30", "end_time": "09:35"}, None),
        ({"repeat": "trading_days", "start_time": "09:30"}, "end_time"),
        ({"repeat": "trading_days", "start_time": "09:35", "end_time": "09:30"}, "end_time"),
        ({"repeat": "trading_days", "start_time": "09:30", "end_time": "09:30"}, "end_time"),
        ({"repeat": "trading_days", "start_time": "09:30", "end_time": "09:35", "days": ["sat"]}, "days"),
        ({"repeat": "weekdays", "days": ["sat"], "start_time": "00:00", "end_time": "06:00"}, None),
        ({"repeat": "weekdays", "days": ["sun"], "start_time": "20:00", "end_time": "00:00"}, None),
        ({"repeat": "weekdays", "start_time": "00:00", "end_time": "06:00"}, "days"),
    ],
)
def test_the_silence_form_checks_a_repeating_window(
    admin_client: Client, fields: dict[str, Any], refused: str | None
) -> None:
    response = admin_client.post("/admin/alerts/silence/add/", silence_form(**fields))
    if refused is None:
        assert response.status_code == 302, form_errors(response)
        assert Silence.objects.count() == 1
    else:
        assert response.status_code == 200
        assert refused in form_errors(response)
        assert not Silence.objects.exists()


def test_a_repeating_silence_shows_its_window_in_the_list(admin_client: Client) -> None:
    Silence.objects.create(repeat="weekdays", days="sat", start_time=dt.time(0), end_time=dt.time(6))
    page = admin_client.get("/admin/alerts/silence/")
    assert "sat 00:00-06:00" in page.content.decode()
    silence = Silence.objects.get()
    page = admin_client.get(f"/admin/alerts/silence/{silence.pk}/change/")
    assert page.status_code == 200 and page.context["adminform"].form.initial["days"] == ["sat"]
