"""Channels as one plug-in family: the registry, routing, every kind at once, the YAML format, the admin."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from alerts.delivery import deliver_pending
from alerts.evaluation import raise_alert
from alerts.models import Alert, AlertRule, AlertState, Channel
from alerts.transports import TRANSPORTS, Setting, Transport, kind_choices, transport_class
from alerts.transports.base import text_value
from tests import ntfy_server, slack_server, telegram_server, webhook_receiver
from tests.channel_fixtures import *  # noqa: F403
from tests.channel_fixtures import (
    make_channel,
    ntfy_config,
    send,
    slack_config,
    telegram_config,
    webhook_config,
)
from tests.discord_server import WEBHOOK_TOKEN, DiscordServer
from tests.harness import ROOT, manage, site_columns, site_env, site_sql
from tests.ntfy_server import NtfyServer
from tests.slack_server import SlackServer
from tests.smtp_server import SmtpServer
from tests.telegram_server import TelegramServer
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db


# --- the registry ---------------------------------------------------------------------------


def test_the_kinds_come_from_the_registry_alone() -> None:
    assert [kind for kind, _ in kind_choices()] == list(TRANSPORTS)
    assert set(TRANSPORTS) == {"discord", "telegram", "ntfy", "slack", "email", "webhook"}
    field = Channel._meta.get_field("kind")
    assert [kind for kind, _ in field.choices] == list(TRANSPORTS)


def test_every_variable_a_transport_declares_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    declared = {s.env for kind in TRANSPORTS for s in transport_class(kind).SETTINGS}
    assert declared - documented == set()


def test_every_secret_setting_is_masked_out_of_text() -> None:
    for kind in TRANSPORTS:
        transport = transport_class(kind)
        for setting in transport.SETTINGS:
            if setting.secret:
                assert transport.secrets_of({setting.key: "https://x.example/abcdefghijklmnopqrstuvwxyz"})


class PagerTransport(Transport):
    """An eighth kind, as a member module would declare it: settings, and how it sends."""

    label = "Pager bridge"
    SETTINGS = (
        Setting("number", "PAGER_NUMBER", "pager number", text_value),
        Setting("key", "PAGER_KEY", "access key", text_value, secret=True),
    )
    sent: list[tuple[str, str]] = []

    def send(self, alert: Alert) -> None:
        if alert.title == "crash":  # a bug in a member, with its secret in the exception
            raise RuntimeError(f"cannot page with key {self.config['key']}")
        PagerTransport.sent.append((self.config["number"], alert.title))


@pytest.fixture
def pager() -> Iterator[None]:
    PagerTransport.sent = []
    # The module as pytest imported it, so the registry finds this very class.
    with mock.patch.dict(TRANSPORTS, {"pager": f"{PagerTransport.__module__}.PagerTransport"}):
        yield


def test_a_new_kind_needs_one_registry_line(pager: None, admin_client: Client, tmp_path: Path) -> None:
    assert ("pager", "Pager bridge") in kind_choices()
    page = admin_client.get("/admin/alerts/channel/add/").content.decode()
    assert "Pager bridge settings" in page and 'name="pager__key"' in page
    (tmp_path / "a.yaml").write_text("channels:\n  pager:\n    kind: pager\n    number: '555'\n")
    call_command("import_alerts", str(tmp_path / "a.yaml"), stdout=StringIO())
    channel = Channel.objects.get(name="pager")
    assert channel.config == {"number": "555"} and not channel.is_configured  # the key is a secret
    Channel.objects.filter(pk=channel.pk).update(config={"number": "555", "key": "k" * 20})
    (alert,) = send(message=f"key {'k' * 20}")
    assert alert.state == AlertState.SENT and PagerTransport.sent == [("555", "Daily loss")]
    assert "k" * 20 not in alert.message


def test_a_crashing_member_is_logged_without_its_secret(
    pager: None, caplog: pytest.LogCaptureFixture
) -> None:
    make_channel("pager", "pager", {"number": "555", "key": "k" * 20})
    (alert,) = send(title="crash")
    assert alert.state == AlertState.PENDING and alert.last_error == "internal error (RuntimeError)"
    assert "cannot page with key kkk…" in caplog.text and "k" * 20 not in caplog.text


# --- every channel at once -----------------------------------------------------------------------


@pytest.fixture
def everywhere(
    discord: DiscordServer,
    telegram: TelegramServer,
    ntfy: NtfyServer,
    slack: SlackServer,
    smtp: SmtpServer,
    receiver: WebhookReceiver,
    fast_http: Any,
) -> dict[str, Any]:
    Channel.objects.filter(name="discord").update(config={"webhook_url": discord.url})
    make_channel("telegram", "telegram", telegram_config(telegram))
    make_channel("ntfy", "ntfy", ntfy_config(ntfy))
    make_channel("slack", "slack", slack_config(slack), min_level="critical")
    make_channel("email", "email", {"to": ["ops@example.com"]})
    make_channel("webhook", "webhook", webhook_config(receiver))
    return {"discord": discord, "telegram": telegram, "ntfy": ntfy, "slack": slack, "email": smtp}


def counts(servers: dict[str, Any], receiver: WebhookReceiver) -> dict[str, int]:
    return {name: len(server.messages) for name, server in servers.items()} | {
        "webhook": len(receiver.payloads)
    }


def test_a_critical_alert_reaches_every_channel_once_and_a_warning_skips_the_critical_only_one(
    everywhere: dict[str, Any], receiver: WebhookReceiver
) -> None:
    alerts = send("critical", title="Max daily loss")
    assert sorted(a.channel.name for a in alerts) == [
        "discord",
        "email",
        "ntfy",
        "slack",
        "telegram",
        "webhook",
    ]
    assert {a.state for a in alerts} == {AlertState.SENT}
    assert counts(everywhere, receiver) == dict.fromkeys(
        ["discord", "telegram", "ntfy", "slack", "email", "webhook"], 1
    )
    warnings = send("warning", title="Daily loss")
    assert "slack" not in {a.channel.name for a in warnings}
    assert counts(everywhere, receiver) == {
        "discord": 2,
        "telegram": 2,
        "ntfy": 2,
        "slack": 1,
        "email": 2,
        "webhook": 2,
    }


def test_one_refusing_service_disables_its_channel_alone(
    everywhere: dict[str, Any], receiver: WebhookReceiver
) -> None:
    everywhere["telegram"].then("status", 401)
    alerts = {a.channel.name: a for a in send("critical")}
    assert alerts["telegram"].state == AlertState.PENDING
    assert {n: a.state for n, a in alerts.items() if n != "telegram"} == dict.fromkeys(
        ["discord", "ntfy", "slack", "email", "webhook"], AlertState.SENT
    )
    assert [c.name for c in Channel.objects.exclude(disabled_reason="")] == ["telegram"]


def digest_received(everywhere: dict[str, Any], receiver: WebhookReceiver) -> dict[str, str]:
    """The last text each service received."""
    return {
        "discord": everywhere["discord"].messages[-1].payload["embeds"][0]["description"],
        "telegram": everywhere["telegram"].texts()[-1],
        "ntfy": everywhere["ntfy"].messages[-1]["message"],
        "slack": everywhere["slack"].messages[-1]["text"],
        "email": everywhere["email"].messages[-1].get_content(),
        "webhook": receiver.payloads[-1]["message"],
    }


def test_a_long_digest_reaches_every_service_as_whole_lines_within_its_limit(
    everywhere: dict[str, Any], receiver: WebhookReceiver
) -> None:
    Channel.objects.update(rate_limit_per_minute=1, min_level="info")
    start = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    for n in range(80):
        # Each digest line is under the 200-character line width, so a whole line ends in END.
        message = f"missing candles for SYM{n:02d} " + "x" * 120 + " END"
        raise_alert(source="test", level="info", title=f"alert {n}", message=message, now=start)
    deliver_pending(now=start)  # one of each channel's minute goes to the oldest alert
    deliver_pending(now=start + dt.timedelta(seconds=61))  # the rest folds into one digest
    texts = digest_received(everywhere, receiver)
    assert set(texts) == {"discord", "telegram", "ntfy", "slack", "email", "webhook"}
    for kind, text in texts.items():
        lines = [line for line in text.splitlines() if re.match(r"^\d\d:\d\d:\d\d \[info\] alert \d+", line)]
        assert lines, kind
        assert all(line.endswith(" END") for line in lines), kind  # no line cut by the service's limit
        more = re.search(r"… and (\d+) more \(see the alert history in the admin\)", text)
        assert more is not None, kind
        assert len(lines) + int(more.group(1)) == 79, kind
    # The short services hold fewer lines than the long ones, and none is cut by its own render.
    assert len(texts["telegram"]) <= 4096 and len(texts["slack"]) <= 4000
    assert len(texts["ntfy"].encode()) <= 4096


# --- routing ----------------------------------------------------------------------------------------


def test_a_rule_that_names_channels_goes_to_them_alone(
    everywhere: dict[str, Any], receiver: WebhookReceiver
) -> None:
    rule = AlertRule.objects.get(name="max-daily-loss")
    rule.channels.set(Channel.objects.filter(name__in=["telegram", "slack"]))
    alerts = raise_alert(source="max_daily_loss", level="critical", title="halt", rule=rule)
    assert sorted(a.channel.name for a in alerts) == ["slack", "telegram"]
    # The channel's minimum level still applies: a warning from the rule skips critical-only slack.
    rule.level = "warning"
    (alert,) = raise_alert(source="max_daily_loss", level="warning", title="halt", rule=rule)
    assert alert.channel.name == "telegram"
    other = AlertRule.objects.get(name="daily-loss-warning")
    assert len(raise_alert(source="daily_loss", level="warning", title="loss", rule=other)) == 5


def test_a_rules_channels_are_ticked_in_its_admin_page(admin_client: Client, fast_http: Any) -> None:
    desk = make_channel("desk", "email", {"to": ["ops@example.com"]})
    rule = AlertRule.objects.get(name="max-daily-loss")
    url = f"/admin/alerts/alertrule/{rule.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200 and f'name="channels" value="{desk.pk}"' in page.content.decode()
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "channels"}
    data |= {"enabled": "on", "bot": "", "channels": [str(desk.pk)]}
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(rule.channels.values_list("name", flat=True)) == ["desk"]


def test_a_rule_whose_channels_are_all_off_stores_its_alert(discord: DiscordServer, fast_http: Any) -> None:
    Channel.objects.filter(name="discord").update(config={"webhook_url": discord.url})
    off = make_channel("off", "discord", {"webhook_url": discord.url}, enabled=False)
    rule = AlertRule.objects.get(name="max-daily-loss")
    rule.channels.set([off])
    (alert,) = raise_alert(source="max_daily_loss", level="critical", title="halt", rule=rule)
    assert alert.state == AlertState.STORED and alert.channel is None


# --- alerts.yaml ---------------------------------------------------------------------------------------


def import_text(tmp_path: Path, text: str, *args: str) -> str:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    out = StringIO()
    call_command("import_alerts", str(path), *args, stdout=out)
    return out.getvalue()


def export() -> str:
    out = StringIO()
    call_command("export_alerts", stdout=out)
    return out.getvalue()


CHANNELS = """channels:
  discord:
    kind: discord
  ops-telegram:
    kind: telegram
    min_level: critical
    chat_id: '-1001234567890'
    api_url: https://telegram.example.org
  phone:
    kind: ntfy
    rate_limit_per_minute: 10
  team:
    kind: slack
    enabled: false
  desk:
    kind: email
    to:
    - ops@example.com
    - trader@example.com
  hub:
    kind: webhook
rules:
  max-daily-loss:
    kind: max_daily_loss
    threshold: -1000
    level: critical
    channels: [ops-telegram, desk]
"""


def test_channels_of_every_kind_and_rule_channels_round_trip_without_a_secret(tmp_path: Path) -> None:
    import_text(tmp_path, CHANNELS)
    telegram = Channel.objects.get(name="ops-telegram")
    assert (telegram.kind, telegram.min_level) == ("telegram", "critical")
    assert telegram.config == {"chat_id": "-1001234567890", "api_url": "https://telegram.example.org"}
    assert Channel.objects.get(name="desk").config == {"to": ["ops@example.com", "trader@example.com"]}
    rule = AlertRule.objects.get(name="max-daily-loss")
    assert sorted(rule.channels.values_list("name", flat=True)) == ["desk", "ops-telegram"]
    # Secrets entered in the admin stay through a re-import, and never reach the export.
    Channel.objects.filter(name="ops-telegram").update(
        config={**telegram.config, "bot_token": telegram_server.TOKEN}
    )
    Channel.objects.filter(name="phone").update(
        config={"url": "https://ntfy.sh/secret-topic-xyz", "token": ntfy_server.TOKEN}
    )
    text = export()
    for secret in (telegram_server.TOKEN, ntfy_server.TOKEN, "secret-topic-xyz"):
        assert secret not in text
    assert "    channels:\n    - desk\n    - ops-telegram\n" in text
    assert "    chat_id: '-1001234567890'\n" in text
    out = import_text(tmp_path, text)
    assert "updated" not in out
    assert Channel.objects.get(name="ops-telegram").config["bot_token"] == telegram_server.TOKEN
    assert export() == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "channels:\n  t:\n    kind: telegram\n    bot_token: '1:abc'\n",
            "line 4: channels.t.bot_token: the bot token is a secret: set TELEGRAM_BOT_TOKEN",
        ),
        (
            "channels:\n  t:\n    kind: telegram\n    chat_id: general\n",
            "line 4: channels.t.chat_id: must be a numeric chat id",
        ),
        (
            "channels:\n  s:\n    kind: slack\n    chat_id: '1'\n",
            "line 4: channels.s.chat_id: unknown key for a slack channel",
        ),
        (
            "channels:\n  s:\n    kind: sms\n",
            "line 3: channels.s.kind: must be one of discord, telegram, ntfy, slack, email, webhook",
        ),
        (
            "channels:\n  e:\n    kind: email\n    to: [ops@example.com, nobody]\n",
            "line 4: channels.e.to: must be e-mail addresses",
        ),
        (
            "channels:\n  w:\n    kind: webhook\n    secret: 0123456789abcdefgh\n",
            "the signing secret is a secret: set ALERT_WEBHOOK_SECRET",
        ),
        (
            "rules:\n  x:\n    kind: daily_loss\n    threshold: -1\n    level: info\n    channels: [ghost]\n",
            "line 6: rules.x.channels: no channel named 'ghost'",
        ),
        (
            "rules:\n  x:\n    kind: daily_loss\n    threshold: -1\n    level: info\n    channels: discord\n",
            "line 6: rules.x.channels: expected a list of channel names",
        ),
    ],
)
def test_a_bad_channel_names_the_key_and_line_and_changes_nothing(
    tmp_path: Path, text: str, message: str
) -> None:
    before = list(Channel.objects.values()), list(AlertRule.objects.values())
    with pytest.raises(CommandError) as error:
        import_text(tmp_path, text)
    assert message in str(error.value) and "nothing was changed" in str(error.value)
    assert (list(Channel.objects.values()), list(AlertRule.objects.values())) == before


def test_replace_refuses_to_drop_a_channel_a_rule_names(tmp_path: Path) -> None:
    import_text(tmp_path, CHANNELS)
    text = "channels:\n  discord:\n    kind: discord\n"
    with pytest.raises(CommandError, match="channel 'desk' is not in the file and --replace removes it"):
        import_text(tmp_path, text, "--replace", "--yes")
    assert Channel.objects.filter(name="desk").exists()


# --- the admin ------------------------------------------------------------------------------------------


ADD_FORM = {
    "name": "ops-telegram",
    "kind": "telegram",
    "min_level": "warning",
    "enabled": "on",
    "rate_limit_per_minute": "5",
    "disabled_reason": "",
}


def test_a_channel_of_another_kind_is_added_in_the_admin_with_its_secret_write_only(
    admin_client: Client, telegram: TelegramServer, fast_http: Any
) -> None:
    form = ADD_FORM | {
        "telegram__bot_token": telegram_server.TOKEN,
        "telegram__chat_id": telegram_server.CHAT_ID,
        "telegram__api_url": telegram.api_url,
        "discord__webhook_url": "",
    }
    response = admin_client.post("/admin/alerts/channel/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    channel = Channel.objects.get(name="ops-telegram")
    assert channel.config == {
        "bot_token": telegram_server.TOKEN,
        "chat_id": telegram_server.CHAT_ID,
        "api_url": telegram.api_url,
    }
    change = f"/admin/alerts/channel/{channel.pk}/change/"
    page = admin_client.get(change).content.decode()
    assert telegram_server.TOKEN.split(":")[1] not in page
    assert "chat -1001234567890 (entered here)" in page and "Telegram bot settings" in page
    assert "Discord webhook settings" not in page  # a saved channel shows its own kind's settings
    # A blank secret on change keeps the stored one; other fields change.
    edit = {k: v for k, v in form.items() if not k.startswith("discord")} | {
        "telegram__bot_token": "",
        "min_level": "critical",
    }
    assert admin_client.post(change, edit).status_code == 302
    channel.refresh_from_db()
    assert channel.config["bot_token"] == telegram_server.TOKEN and channel.min_level == "critical"
    # "Save and send a test alert" on its page, then the list's action: each sends one.
    response = admin_client.post(change, edit | {"_send_test": "1"}, follow=True)
    assert "ops-telegram: test alert sent" in response.content.decode().lower()
    assert 'name="_send_test"' in response.content.decode()  # back on the channel's page
    response = admin_client.post(
        "/admin/alerts/channel/", {"action": "send_test", "_selected_action": [str(channel.pk)]}, follow=True
    )
    content = response.content.decode()
    assert "ops-telegram: test alert sent" in content.lower()  # the admin capitalises messages
    assert [t.split("\n")[0] for t in telegram.texts()] == ["🔔 Test alert (info)"] * 2


def test_a_wrong_setting_is_a_form_error_naming_the_field(admin_client: Client) -> None:
    form = ADD_FORM | {"telegram__bot_token": telegram_server.TOKEN, "telegram__chat_id": "general"}
    response = admin_client.post("/admin/alerts/channel/add/", form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors == {
        "telegram__chat_id": ["must be a numeric chat id (groups start with -) or @channelname"]
    }
    missing = admin_client.post(
        "/admin/alerts/channel/add/", ADD_FORM | {"telegram__chat_id": telegram_server.CHAT_ID}
    )
    assert missing.context["adminform"].form.errors == {"telegram__bot_token": ["is required"]}
    assert not Channel.objects.filter(name="ops-telegram").exists()


def test_a_refused_form_keeps_what_was_typed_but_never_shows_a_saved_secret(admin_client: Client) -> None:
    """The add form says the name rule before anything is typed; refused, it comes back with the
    token just pasted (only the chosen kind's settings are judged: another kind's junk is not); a
    saved channel's page, refused or not, never holds the saved token."""
    add = "/admin/alerts/channel/add/"
    assert "Letters, digits, hyphens and underscores only" in admin_client.get(add).content.decode()
    typed = ADD_FORM | {
        "name": "ops telegram",  # a space: not a slug
        "telegram__bot_token": telegram_server.TOKEN,
        "telegram__chat_id": telegram_server.CHAT_ID,
        "discord__webhook_url": "not a url",  # another kind's setting: not read
    }
    response = admin_client.post(add, typed)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["name"]
    page = response.content.decode()
    assert f'name="telegram__bot_token" value="{telegram_server.TOKEN}"' in page
    assert admin_client.post(add, typed | {"name": "ops-telegram"}).status_code == 302
    channel = Channel.objects.get(name="ops-telegram")
    assert channel.config["bot_token"] == telegram_server.TOKEN
    # A blank token keeps the saved one; the refused page (a bad chat id) shows neither it nor a value.
    change = f"/admin/alerts/channel/{channel.pk}/change/"
    refused = admin_client.post(
        change, typed | {"name": "ops-telegram", "telegram__bot_token": "", "telegram__chat_id": "general"}
    )
    assert list(refused.context["adminform"].form.errors) == ["telegram__chat_id"]
    assert telegram_server.TOKEN.split(":")[1] not in refused.content.decode()
    assert 'name="telegram__bot_token" value=' not in refused.content.decode()
    channel.refresh_from_db()
    assert channel.config["bot_token"] == telegram_server.TOKEN


def test_the_list_shows_kind_masked_destination_state_and_last_success(
    admin_client: Client, everywhere: dict[str, Any], receiver: WebhookReceiver
) -> None:
    everywhere["slack"].then("error", "channel_is_archived")
    send("critical")
    page = admin_client.get("/admin/alerts/channel/").content.decode()
    for secret in (
        WEBHOOK_TOKEN,
        telegram_server.TOKEN.split(":")[1],
        ntfy_server.TOPIC,
        ntfy_server.TOKEN,
        slack_server.SECRET,
        webhook_receiver.SECRET,
    ):
        assert secret not in page
    for label in (
        "Discord webhook",
        "Telegram bot",
        "ntfy topic",
        "Slack incoming webhook",
        "E-mail",
        "JSON webhook",
    ):
        assert label in page
    assert "ops@example.com" in page and "chat -1001234567890" in page
    assert "working" in page and "⚠ disabled" in page and "channel_is_archived" in page
    assert "never" in page  # the disabled slack channel has no success yet


def test_the_migration_moves_a_channels_own_webhook_url_into_its_settings(tmp_path: Path) -> None:
    # A database of its own, migrated by the real command: the test database stays as it is.
    env = site_env(tmp_path)
    url = f"https://discord.com/api/webhooks/1/{WEBHOOK_TOKEN}"
    manage(env, "migrate", "alerts", "0003_weekly_report")
    columns = site_columns(env, "alerts_channel")
    assert "webhook_url" in columns and "config" not in columns
    site_sql(
        env,
        "INSERT INTO alerts_channel (name, kind, webhook_url, min_level, enabled, "
        "rate_limit_per_minute, disabled_reason) VALUES ('own', 'discord', ?, 'info', TRUE, 5, '')",
        url,
    )
    manage(env, "migrate")
    config = dict(site_sql(env, "SELECT name, config FROM alerts_channel"))
    assert json.loads(config["own"]) == {"webhook_url": url}
    assert json.loads(config["discord"]) == {}  # no URL of its own: DISCORD_WEBHOOK_URL
