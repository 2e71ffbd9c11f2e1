"""alerts.yaml: the defaults after migrate, export/import round trip, and bad files changing nothing."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from alerts.models import AlertRule, Channel, SummarySchedule
from tests.alert_fixtures import RULE_CASES
from trades.models import Bot

pytestmark = pytest.mark.django_db


def export() -> str:
    out = StringIO()
    call_command("export_alerts", stdout=out)
    return out.getvalue()


def import_file(tmp_path: Path, text: str, *args: str) -> str:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("import_alerts", str(path), *args, stdout=out)
    return out.getvalue()


def snapshot() -> list[Any]:
    return [
        list(AlertRule.objects.order_by("name").values()),
        list(Channel.objects.order_by("name").values()),
        list(SummarySchedule.objects.values()),
    ]


def test_migrate_creates_the_original_defaults() -> None:
    rules = {r.name: r for r in AlertRule.objects.all()}
    assert (rules["daily-loss-warning"].threshold, rules["daily-loss-warning"].level) == (-500, "warning")
    assert (rules["max-daily-loss"].threshold, rules["max-daily-loss"].level) == (-1000, "critical")
    assert rules["trade-frequency"].threshold == 50
    assert rules["position-size"].threshold == 1000 and rules["position-size"].per_trade is False
    # Quiet by default, as the original trade_alerts were: switched off, and info when on.
    assert (rules["position-size"].enabled, rules["position-size"].level) == (False, "info")
    assert all(rule.enabled for name, rule in rules.items() if name != "position-size")
    assert all(rule.problems == {} for rule in rules.values())  # every default passes its judge
    assert rules["bot-stopped"].kind == "bot_stopped"
    levels = {r.event_kind: r.level for r in rules.values() if r.kind == "bot_event"}
    assert levels == {
        "crash": "critical",
        "connection_lost": "critical",
        "db_write_failure": "critical",
        "risk_limit": "critical",
        "connection_retry": "warning",
        "data_quality": "warning",
        "startup": "info",
        "shutdown": "info",
        "market_open": "info",
        "market_close": "info",
    }
    assert Channel.objects.get().name == "discord"
    schedule = SummarySchedule.current()
    assert schedule.enabled and schedule.send_at.strftime("%H:%M") == "16:05"


def test_the_export_reads_like_the_documented_format() -> None:
    text = export()
    assert "daily-loss-warning:\n    kind: daily_loss\n    threshold: -500\n    level: warning\n" in text
    assert "event-crash:\n    kind: bot_event\n    event: crash\n    level: critical\n" in text
    assert "daily_summary:\n  enabled: true\n  time: '16:05'\n" in text
    assert "webhook" not in text


def test_export_then_import_is_an_exact_round_trip(tmp_path: Path) -> None:
    Bot.objects.create(name="alpha")
    AlertRule.objects.create(
        name="alpha-tsla-loss",
        kind="daily_loss",
        threshold="-250.75",
        level="critical",
        cooldown_minutes=15,
        bot=Bot.objects.get(),
        strategy="meanrev",
        symbol="tsla",
    )
    AlertRule.objects.filter(name="position-size").update(per_trade=True, enabled=False)
    SummarySchedule.objects.update(send_at="16:30", enabled=False)
    Channel.objects.update(rate_limit_per_minute=9, min_level="warning")
    first = export()
    before = snapshot()
    AlertRule.objects.all().delete()
    Channel.objects.all().delete()
    SummarySchedule.objects.all().delete()
    import_file(tmp_path, first)
    assert export() == first
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("id", "lease_until")} for r in rows]  # noqa: E731
    assert [strip(part) for part in snapshot()] == [strip(part) for part in before]


def test_importing_changes_only_what_differs_and_keeps_rules_not_in_the_file(tmp_path: Path) -> None:
    text = "rules:\n  daily-loss-warning:\n    kind: daily_loss\n    threshold: -750\n    level: warning\n"
    out = import_file(tmp_path, text)
    assert "updated: rule daily-loss-warning" in out
    assert "kept (not in the file): " in out and "rule bot-stopped" in out and "channel" not in out
    assert AlertRule.objects.get(name="daily-loss-warning").threshold == -750
    assert AlertRule.objects.count() == 20  # the seeded rules


def test_replace_needs_yes_and_then_removes_what_the_file_lacks(tmp_path: Path) -> None:
    text = "rules:\n  only-one:\n    kind: trade_frequency\n    threshold: 10\n    level: info\n"
    with pytest.raises(CommandError, match="add --yes"):
        import_file(tmp_path, text, "--replace")
    assert AlertRule.objects.count() == 20
    import_file(tmp_path, text, "--replace", "--yes")
    assert list(AlertRule.objects.values_list("name", flat=True)) == ["only-one"]
    assert Channel.objects.count() == 1  # the file has no channels section: channels untouched


GOOD_HEAD = "rules:\n  daily-loss-warning:\n    kind: daily_loss\n    threshold: -1\n    level: warning\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD_HEAD + "  broken:\n    kind: daily_loss\n    threshold: [1\n",
            "line 9: not valid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence that starts on line 8)",
        ),
        (
            GOOD_HEAD + "  x:\n    kind: daily_loss\n    treshold: -5\n    level: info\n",
            "line 8: rules.x.treshold: unknown key",
        ),
        (
            GOOD_HEAD + "  x:\n    kind: daily_loss\n    threshold: lots\n    level: info\n",
            "line 8: rules.x.threshold: must be a number, got 'lots'",
        ),
        (
            GOOD_HEAD + "  x:\n    kind: daily_loss\n    threshold: 1\n    level: loud\n",
            "line 9: rules.x.level: must be one of info, warning, critical, got 'loud'",
        ),
        (GOOD_HEAD + "  x:\n    kind: bot_event\n    level: info\n", "line 7: rules.x: 'event' is missing"),
        (
            GOOD_HEAD + "  x:\n    kind: bot_event\n    event: explosion\n    level: info\n",
            "line 8: rules.x.event: must be one of startup",
        ),
        (
            GOOD_HEAD + "  x:\n    kind: daily_loss\n    level: info\n",
            "line 7: rules.x: 'threshold' is missing",
        ),
        (
            GOOD_HEAD + "  x:\n    kind: daily_loss\n    threshold: 1\n    level: info\n    bot: ghost\n",
            "line 10: rules.x.bot: no bot named 'ghost'",
        ),
        (
            GOOD_HEAD + "  x:\n    kind: daily_loss\n    threshold: 1\n    level: info\n    enabled: maybe\n",
            "line 10: rules.x.enabled: must be true or false",
        ),
        (
            GOOD_HEAD + "  daily-loss-warning:\n    kind: daily_loss\n",
            "line 6: rules.daily-loss-warning: given twice",
        ),
        (
            GOOD_HEAD + "channels:\n  discord:\n    webhook_url: https://discord.com/api/webhooks/1/secret\n",
            "line 8: channels.discord.webhook_url: the webhook URL is a secret",
        ),
        (
            GOOD_HEAD + "channels:\n  discord:\n    rate_limit_per_minute: 0\n",
            "line 8: channels.discord.rate_limit_per_minute: must be a whole number of at least 1",
        ),
        (
            GOOD_HEAD + "daily_summary:\n  time: 16:05\n",
            'line 7: daily_summary.time: must be a quoted time like "16:05"',
        ),
        (GOOD_HEAD + "alerts: {}\n", "line 6: alerts: unknown section"),
        ("- just\n- a list\n", "line 1: file: expected a mapping"),
    ],
)
def test_a_bad_file_names_the_key_and_line_and_changes_nothing(
    tmp_path: Path, text: str, message: str
) -> None:
    before = snapshot()
    with pytest.raises(CommandError) as error:
        import_file(tmp_path, text)
    assert message in str(error.value)
    assert "nothing was changed" in str(error.value)
    assert "\n" not in str(error.value)
    assert snapshot() == before


def test_a_missing_file_is_one_readable_line(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"cannot read .*missing.yaml: No such file"):
        call_command("import_alerts", str(tmp_path / "missing.yaml"))


def test_export_to_a_file(tmp_path: Path) -> None:
    call_command("export_alerts", str(tmp_path / "out.yaml"), stdout=StringIO())
    assert (tmp_path / "out.yaml").read_text() == export()


def rule_yaml(kind: str, threshold: str, event_kind: str, per_trade: bool) -> str:
    text = f"rules:\n  new-rule:\n    kind: {kind}\n    level: warning\n"
    if threshold:
        text += f"    threshold: {threshold}\n"
    if event_kind:
        text += f"    event: {event_kind}\n"
    if per_trade:
        text += "    per_trade: true\n"
    return text


YAML_KEY = {"event_kind": "event"}


@pytest.mark.parametrize(("kind", "threshold", "event_kind", "per_trade", "refused"), RULE_CASES)
def test_the_import_applies_the_same_judge_as_the_admin(
    tmp_path: Path, kind: str, threshold: str, event_kind: str, per_trade: bool, refused: str | None
) -> None:
    before = snapshot()
    text = rule_yaml(kind, threshold, event_kind, per_trade)
    if refused is None:
        import_file(tmp_path, text)
        rule = AlertRule.objects.get(name="new-rule")
        assert rule.problems == {} and rule.kind == kind
        return
    with pytest.raises(CommandError) as error:
        import_file(tmp_path, text)
    key = YAML_KEY.get(refused, refused)
    assert f"rules.new-rule.{key}:" in str(error.value) or f"rules.new-rule: '{key}' is missing" in str(
        error.value
    )
    assert "nothing was changed" in str(error.value)
    assert snapshot() == before
