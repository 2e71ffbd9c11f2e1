"""The registry of rule kinds (``alerts.rules.RULE_KINDS``): the one list the admin, alerts.yaml,
health and evaluation take the kinds from, so a kind added there works everywhere and a kind
that is not there is refused everywhere, with the kinds named."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import ClassVar
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils.html import escape

from alerts import rules
from alerts.evaluation import evaluate_schedule, evaluate_trades
from alerts.health import rules as rules_health
from alerts.models import Alert, AlertRule
from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, Notice, Rule
from tests.alert_fixtures import RULE_CASES
from tests.conftest import stored_trade
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
NY = ZoneInfo("America/New_York")


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, 15, hour, minute, tzinfo=NY)  # a Thursday, a trading day


def import_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("import_alerts", str(path), stdout=out)
    return out.getvalue()


def offered_kinds(admin_client: Client) -> list[str]:
    form = admin_client.get("/admin/alerts/alertrule/add/").context["adminform"].form
    return [value for value, _ in form.fields["kind"].choices if value]


def test_every_registered_kind_is_offered_in_the_admin_and_accepted_by_import_alerts(
    admin_client: Client, tmp_path: Path
) -> None:
    assert offered_kinds(admin_client) == list(rules.RULE_KINDS)
    # One valid rule of each kind, from the cases every judge is tried with.
    valid = {kind: (threshold, event) for kind, threshold, event, _, refused in RULE_CASES if refused is None}
    assert set(valid) == set(rules.RULE_KINDS)  # every kind has its judge's cases
    text = "rules:\n"
    for kind, (threshold, event) in valid.items():
        text += f"  new-{kind.replace('_', '-')}:\n    kind: {kind}\n    level: warning\n"
        text += f"    threshold: {threshold}\n" if threshold else ""
        text += f"    event: {event}\n" if event else ""
    import_file(tmp_path, text)
    made = dict(AlertRule.objects.filter(name__startswith="new-").values_list("kind", "name"))
    assert set(made) == set(rules.RULE_KINDS)
    assert all(rule.problems == {} for rule in AlertRule.objects.filter(name__startswith="new-"))


def test_an_unknown_kind_is_refused_by_import_alerts_naming_the_kinds(tmp_path: Path) -> None:
    before = list(AlertRule.objects.values())
    text = "rules:\n  gains:\n    kind: daily_gain\n    threshold: 500\n    level: info\n"
    with pytest.raises(CommandError) as refused:
        import_file(tmp_path, text)
    kinds = ", ".join(rules.RULE_KINDS)
    message = str(refused.value)
    assert f"alerts.yaml: line 3: rules.gains.kind: must be one of {kinds}, got 'daily_gain'" in message
    assert list(AlertRule.objects.values()) == before


def test_an_unknown_kind_is_not_offered_by_the_admin_and_refused_there(admin_client: Client) -> None:
    assert "daily_gain" not in offered_kinds(admin_client)
    form = {"name": "gains", "kind": "daily_gain", "threshold": "500", "level": "info", "enabled": "on"}
    form |= {"cooldown_minutes": "60"}
    response = admin_client.post("/admin/alerts/alertrule/add/", form)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["kind"]
    assert not AlertRule.objects.filter(name="gains").exists()


def test_a_stored_rule_of_an_unknown_kind_is_flagged_naming_the_kinds_and_never_judged(
    bot: Bot, admin_client: Client, tmp_path: Path
) -> None:
    AlertRule.objects.exclude(name="daily-loss-warning").update(enabled=False)
    AlertRule.objects.filter(name="daily-loss-warning").update(kind="daily_gain")  # written around the admin
    problem = f"kind: Unknown rule kind 'daily_gain'; one of {', '.join(rules.RULE_KINDS)}."
    state = rules_health()
    assert state["ok"] is False and state["broken_rules"] == ["daily-loss-warning"]
    assert problem in state["reason"]
    assert escape(problem) in admin_client.get("/admin/alerts/alertrule/").content.decode()
    ids = Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal("-900"), executed_at=at(11))]).ids
    assert evaluate_trades(bot.pk, ids, now=at(11)) == []
    assert evaluate_schedule(now=at(11, 5)) == []
    # The file still holds it as it is, so an export shows what is wrong rather than failing.
    out = StringIO()
    call_command("export_alerts", stdout=out)
    assert "daily-loss-warning:\n    kind: daily_gain\n" in out.getvalue()


# --- a kind added by its module and one registry line ------------------------------------------


class BusyBot(Judge):
    """A stand-in kind, as a new member would be written: more trades in the bot's history than
    the threshold, judged on the schedule only."""

    summary = "more trades ever than the threshold"
    threshold_means = "trades, e.g. 3"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"schedule"})

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        count = Trade.objects.for_bot(bot).count()
        if rule.threshold is not None and count > rule.threshold:
            notice = Notice(title=f"{bot.name}: {count} trades", message="More trades than the limit.")
            yield Breach(subject=f"bot-{bot.pk}", notice=notice)


@pytest.fixture
def busy_bot_kind() -> Iterator[None]:
    rules.judge_for.cache_clear()
    with mock.patch.dict(rules.RULE_KINDS, {"busy_bot": f"{__name__}.BusyBot"}):
        yield
    rules.judge_for.cache_clear()


def test_a_kind_added_by_one_registry_line_is_offered_accepted_judged_and_needs_no_migration(
    bot: Bot, admin_client: Client, tmp_path: Path, busy_bot_kind: None
) -> None:
    AlertRule.objects.update(enabled=False)
    assert "busy_bot" in offered_kinds(admin_client)
    form = {"name": "busy", "kind": "busy_bot", "threshold": "0", "level": "info", "enabled": "on"}
    form |= {"cooldown_minutes": "60"}
    refused = admin_client.post("/admin/alerts/alertrule/add/", form)
    assert list(refused.context["adminform"].form.errors) == ["threshold"]  # the base judge's own check
    assert admin_client.post("/admin/alerts/alertrule/add/", form | {"threshold": "2"}).status_code == 302
    import_file(tmp_path, "rules:\n  busy-too:\n    kind: busy_bot\n    threshold: 3\n    level: warning\n")
    assert AlertRule.objects.get(name="busy-too").cooldown_minutes == 60  # the model's default
    assert rules_health() == {"ok": True}

    ids = Trade.objects.record_batch(bot, [stored_trade(n, executed_at=at(10, n)) for n in range(3)]).ids
    assert evaluate_trades(bot.pk, ids, now=at(11)) == []  # judged on the schedule, not after trades
    evaluate_schedule(now=at(11))
    (alert,) = Alert.objects.all()  # 3 trades: above 2, not above 3
    assert (alert.source, alert.rule.name, alert.title) == ("busy_bot", "busy", "alpha: 3 trades")
    evaluate_schedule(now=at(11, 30))
    assert Alert.objects.count() == 1  # the shared cooldown holds it back
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)  # the choices are a callable
