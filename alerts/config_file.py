"""``alerts.yaml``: the rules, channels and summary time as a file (``import_alerts`` / ``export_alerts``).

The format (see docs/ALERTS.md)::

    rules:
      daily-loss-warning:          # the rule's name
        kind: daily_loss           # daily_loss, max_daily_loss, trade_frequency, position_size,
        threshold: -500            # bot_stopped, bot_event, host_disk, host_memory, bot_restart
        level: warning             # info, warning, critical
        enabled: true
        cooldown_minutes: 60
      event-crash:
        kind: bot_event
        event: crash               # a bot event kind of the API
        level: critical
        cooldown_minutes: 0
        channels: [ops-telegram]   # only these channels (default: every one that takes the level)
    channels:
      discord:
        kind: discord              # discord, telegram, ntfy, slack, email, webhook
        min_level: info
        enabled: true
        rate_limit_per_minute: 5   # the webhook URL never goes in a file
      ops-telegram:
        kind: telegram
        min_level: critical
        chat_id: "-1001234567890"  # settings that are not secret; the bot token is entered in the admin
    daily_summary:
      enabled: true
      time: "16:05"                # market time

The whole file is checked before anything is written; an error names the
key and its line, and changes nothing. Exporting what was imported gives the
same text back.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from django.db import transaction

from alerts.models import AlertRule, Channel, Level, SummarySchedule
from alerts.rules import RULE_KINDS, judge_for, problems
from alerts.transports import TRANSPORTS, transport_class
from trades.models import Bot, EventKind

RULE_KEYS = (
    "kind",
    "event",
    "threshold",
    "level",
    "enabled",
    "cooldown_minutes",
    "per_trade",
    "bot",
    "strategy",
    "symbol",
    "channels",
)
CHANNEL_KEYS = ("kind", "min_level", "enabled", "rate_limit_per_minute")
SUMMARY_KEYS = ("enabled", "time")
YAML_KEYS = {"event_kind": "event"}  # a model field whose key in the file differs
SECTIONS = ("rules", "channels", "daily_summary")
NAME = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
HEADER = "# Alert rules, channels and the daily summary of the trading-bot monitor (see docs/ALERTS.md).\n"


class ConfigFileError(Exception):
    """A problem in the file, naming the key and the line."""


@dataclass
class Parsed:
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, Any] | None = None
    sections: set[str] = field(default_factory=set)
    rule_nodes: dict[str, yaml.Node] = field(default_factory=dict)


# --- reading -------------------------------------------------------------------


def _error(node: yaml.Node, path: str, problem: str) -> ConfigFileError:
    return ConfigFileError(f"line {node.start_mark.line + 1}: {path}: {problem}")


def _mapping(node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise _error(node, path, "expected a mapping of keys to values")
    seen: set[str] = set()
    pairs = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _error(key_node, path, "keys must be plain names")
        key = str(key_node.value)
        if key in seen:
            raise _error(key_node, f"{path}.{key}", "given twice")
        seen.add(key)
        pairs.append((key, key_node, value_node))
    return pairs


_constructor = yaml.SafeLoader("")


def _scalar(node: yaml.Node, path: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise _error(node, path, "expected a single value")
    return _constructor.construct_object(node, deep=True)


def _choice(node: yaml.Node, path: str, choices: list[str]) -> str:
    value = _scalar(node, path)
    if value not in choices:
        raise _error(node, path, f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _bool(node: yaml.Node, path: str) -> bool:
    value = _scalar(node, path)
    if not isinstance(value, bool):
        raise _error(node, path, f"must be true or false, got {value!r}")
    return value


def _int(node: yaml.Node, path: str, minimum: int) -> int:
    value = _scalar(node, path)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(node, path, f"must be a whole number of at least {minimum}, got {value!r}")
    return value


def _decimal(node: yaml.Node, path: str) -> Decimal:
    value = _scalar(node, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(node, path, f"must be a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _error(node, path, f"must be a number, got {value!r}") from None
    if not number.is_finite() or number != number.quantize(Decimal("0.01")) or abs(number) >= 10**18:
        raise _error(node, path, f"must be a finite number with at most 2 decimals, got {value!r}")
    return number


def _text(node: yaml.Node, path: str, limit: int) -> str:
    value = _scalar(node, path)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise _error(node, path, f"must be text of at most {limit} characters")
    return value


def _rule(name: str, node: yaml.Node, path: str) -> dict[str, Any]:
    pairs = _mapping(node, path)
    values: dict[str, Any] = {}
    nodes: dict[str, yaml.Node] = {}
    for key, key_node, value_node in pairs:
        where = f"{path}.{key}"
        nodes[key] = value_node
        if key not in RULE_KEYS:
            raise _error(key_node, where, f"unknown key; expected one of {', '.join(RULE_KEYS)}")
        if key == "kind":
            values["kind"] = _choice(value_node, where, list(RULE_KINDS))
        elif key == "event":
            values["event_kind"] = _choice(value_node, where, EventKind.values)
        elif key == "threshold":
            values["threshold"] = _decimal(value_node, where)
        elif key == "level":
            values["level"] = _choice(value_node, where, Level.values)
        elif key in ("enabled", "per_trade"):
            values[key] = _bool(value_node, where)
        elif key == "cooldown_minutes":
            values[key] = _int(value_node, where, 0)
        elif key == "bot":
            bot_name = _text(value_node, where, 100)
            bot = Bot.objects.filter(name=bot_name).first()
            if bot_name and bot is None:
                raise _error(value_node, where, f"no bot named {bot_name!r}")
            values["bot"] = bot
        elif key == "channels":
            values["channels"] = _names(value_node, where)
        else:
            values[key] = _text(value_node, where, 100 if key == "strategy" else 32)
    for required in ("kind", "level"):
        if required not in values:
            raise _error(node, path, f"'{required}' is missing")
    kind = values["kind"]
    # The kind's judge decides, as it does for the admin's forms and for evaluation.
    for name, problem in problems({"kind": kind, **values}).items():
        key = YAML_KEYS.get(name, name)
        if key in nodes:
            raise _error(nodes[key], f"{path}.{key}", problem)
        raise _error(node, path, f"'{key}' is missing: {problem}")
    cooldown = judge_for(kind).default_cooldown_minutes
    if cooldown is None:
        cooldown = AlertRule._meta.get_field("cooldown_minutes").get_default()
    defaults = {"event_kind": "", "threshold": None, "enabled": True, "per_trade": False, "bot": None}
    defaults |= {"strategy": "", "symbol": "", "cooldown_minutes": cooldown}
    return defaults | values


def _names(node: yaml.Node, path: str) -> list[str]:
    """A list of channel names (checked against the channels once the whole file is read)."""
    if not isinstance(node, yaml.SequenceNode):
        raise _error(node, path, "expected a list of channel names, e.g. [discord, ops-telegram]")
    names = []
    for item in node.value:
        name = _scalar(item, path)
        if not isinstance(name, str) or not NAME.match(name):
            raise _error(item, path, f"expected a channel name, got {name!r}")
        names.append(name)
    return names


def _channel(node: yaml.Node, path: str) -> dict[str, Any]:
    """A channel: its delivery keys and its kind's settings that are not secret (checked by its transport)."""
    values: dict[str, Any] = {"kind": "discord", "min_level": Level.INFO, "enabled": True}
    values["rate_limit_per_minute"] = 5
    pairs = _mapping(node, path)
    for key, _key_node, value_node in pairs:
        if key == "kind":
            values["kind"] = _choice(value_node, f"{path}.kind", list(TRANSPORTS))
    transport = transport_class(values["kind"])
    settings = {s.key: s for s in transport.SETTINGS}
    config: dict[str, Any] = {}
    for key, key_node, value_node in pairs:
        where = f"{path}.{key}"
        if key == "kind":
            continue
        if key in settings:
            setting = settings[key]
            if setting.secret:
                raise _error(
                    key_node,
                    where,
                    f"the {setting.label} is a secret: set {setting.env} or enter it in the admin",
                )
            if isinstance(value_node, yaml.SequenceNode):
                raw: Any = [_scalar(item, where) for item in value_node.value]
            else:
                raw = _scalar(value_node, where)
            try:
                config[key] = setting.check(raw if isinstance(raw, list) else str(raw))
            except ValueError as exc:
                raise _error(value_node, where, str(exc)) from None
        elif key not in CHANNEL_KEYS:
            expected = [*CHANNEL_KEYS, *(s.key for s in transport.SETTINGS if not s.secret)]
            raise _error(
                key_node,
                where,
                f"unknown key for a {values['kind']} channel; expected one of {', '.join(expected)}",
            )
        elif key == "min_level":
            values[key] = _choice(value_node, where, Level.values)
        elif key == "enabled":
            values[key] = _bool(value_node, where)
        else:
            values[key] = _int(value_node, where, 1)
    if config:
        values["settings"] = config
    return values


def _summary(node: yaml.Node, path: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, key_node, value_node in _mapping(node, path):
        where = f"{path}.{key}"
        if key not in SUMMARY_KEYS:
            raise _error(key_node, where, f"unknown key; expected one of {', '.join(SUMMARY_KEYS)}")
        if key == "enabled":
            values["enabled"] = _bool(value_node, where)
        else:
            raw = _scalar(value_node, where)
            try:
                if not isinstance(raw, str):
                    raise ValueError
                values["send_at"] = dt.time.fromisoformat(raw)
            except ValueError:
                raise _error(value_node, where, f'must be a quoted time like "16:05", got {raw!r}') from None
    return values


def parse(text: str) -> Parsed:
    """Check the whole file; raises ConfigFileError naming the key and line of the first problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark else ""
        where = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            where = f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise ConfigFileError(f"{line}not valid YAML: {exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"not valid YAML: {exc}") from None
    parsed = Parsed()
    if root is None:
        return parsed
    for section, key_node, value_node in _mapping(root, "file"):
        if section not in SECTIONS:
            raise _error(key_node, section, f"unknown section; expected one of {', '.join(SECTIONS)}")
        parsed.sections.add(section)
        if section == "daily_summary":
            parsed.summary = _summary(value_node, section)
            continue
        if isinstance(value_node, yaml.ScalarNode) and value_node.value in ("", "~", "null"):
            continue  # an empty section
        for name, name_node, item in _mapping(value_node, section):
            if not NAME.match(name):
                raise _error(
                    name_node, f"{section}.{name}", "names are letters, digits, - and _ (at most 100)"
                )
            if section == "rules":
                parsed.rules[name] = _rule(name, item, f"rules.{name}")
                parsed.rule_nodes[name] = item
            else:
                parsed.channels[name] = _channel(item, f"channels.{name}")
    known = set(parsed.channels) | set(Channel.objects.values_list("name", flat=True))
    for name, values in parsed.rules.items():
        unknown = [c for c in values.get("channels", []) if c not in known]
        if unknown:
            node = next(v for k, _, v in _mapping(parsed.rule_nodes[name], name) if k == "channels")
            raise _error(node, f"rules.{name}.channels", f"no channel named {unknown[0]!r}")
    return parsed


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def apply(parsed: Parsed, *, replace: bool = False) -> ImportReport:
    """Write a parsed file in one transaction, channels and rules by name.

    ``replace`` removes the rules (channels) the file does not name, in the
    sections the file has: a file of rules alone never removes a channel.
    A channel's settings from the file join the secrets it already holds
    (which no file carries); without settings in the file they are left as they are.
    """
    _check_removed_channels(parsed, replace)
    report = ImportReport()
    with transaction.atomic():
        for model, items, label in ((Channel, parsed.channels, "channel"), (AlertRule, parsed.rules, "rule")):
            if f"{label}s" not in parsed.sections:
                continue
            for name, values in items.items():
                _write(model, name, dict(values), label, report)
            others = model.objects.exclude(name__in=list(items))
            names = [f"{label} {n}" for n in others.values_list("name", flat=True)]
            if replace:
                others.delete()
                report.removed += names
            else:
                report.kept += names
        if parsed.summary:
            schedule = SummarySchedule.current()
            for key, value in parsed.summary.items():
                setattr(schedule, key, value)
            schedule.save()
    return report


def _check_removed_channels(parsed: Parsed, replace: bool) -> None:
    """``--replace`` never removes a channel that a rule kept after the import still names.

    Dropping it silently would widen that rule to every channel.
    """
    if not replace or "channels" not in parsed.sections:
        return
    doomed = set(Channel.objects.exclude(name__in=list(parsed.channels)).values_list("name", flat=True))
    routes = {name: set(values.get("channels", [])) for name, values in parsed.rules.items()}
    for rule in AlertRule.objects.filter(channels__name__in=doomed).distinct().prefetch_related("channels"):
        if rule.name not in routes and "rules" not in parsed.sections:
            routes[rule.name] = {c.name for c in rule.channels.all()}
    for name, names in sorted(routes.items()):
        if names & doomed:
            raise ConfigFileError(
                f"rules.{name}.channels: channel {sorted(names & doomed)[0]!r} is not in the file "
                "and --replace removes it"
            )


def _write(model: type[Any], name: str, values: dict[str, Any], label: str, report: ImportReport) -> None:
    current = model.objects.filter(name=name).first()
    channel_names = values.pop("channels", None) if model is AlertRule else None
    settings = values.pop("settings", None) if model is Channel else None
    if settings is not None:
        kept: dict[str, Any] = {}
        if current is not None and current.kind == values["kind"]:
            secret = {s.key for s in transport_class(current.kind).SETTINGS if s.secret}
            kept = {k: v for k, v in current.config.items() if k in secret}
        values["config"] = {**kept, **settings}
    elif model is Channel and current is not None and current.kind != values["kind"]:
        values["config"] = {}  # another kind's settings mean nothing to this one
    changed = current is None or any(getattr(current, key) != value for key, value in values.items())
    if current is None:
        current = model.objects.create(name=name, **values)
        report.created.append(f"{label} {name}")
    elif changed:
        for key, value in values.items():
            setattr(current, key, value)
        current.save()
    if channel_names is not None or model is AlertRule:
        wanted = set(channel_names or [])
        have = set(current.channels.values_list("name", flat=True))
        if wanted != have:
            current.channels.set(Channel.objects.filter(name__in=wanted))
            changed = True
    if f"{label} {name}" in report.created:
        return
    (report.updated if changed else report.unchanged).append(f"{label} {name}")


# --- writing -------------------------------------------------------------------------


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _exported_channel(channel: Channel) -> dict[str, Any]:
    """A channel's keys and its own settings that are not secret; never a secret."""
    item: dict[str, Any] = {
        "kind": channel.kind,
        "min_level": channel.min_level,
        "enabled": channel.enabled,
        "rate_limit_per_minute": channel.rate_limit_per_minute,
    }
    if channel.kind in TRANSPORTS:
        for setting in transport_class(channel.kind).SETTINGS:
            value = channel.config.get(setting.key)
            if value and not setting.secret:
                item[setting.key] = value
    return item


def export() -> str:
    """The current rules, channels and summary time as alerts.yaml text (no secrets)."""
    rules: dict[str, Any] = {}
    for rule in AlertRule.objects.select_related("bot").prefetch_related("channels").order_by("name"):
        judge = judge_for(rule.kind) if rule.kind in RULE_KINDS else None
        item: dict[str, Any] = {"kind": rule.kind}
        if judge is not None and judge.takes_event_kind:
            item["event"] = rule.event_kind
        if rule.threshold is not None:
            item["threshold"] = _number(rule.threshold)
        item |= {"level": rule.level, "enabled": rule.enabled, "cooldown_minutes": rule.cooldown_minutes}
        if judge is not None and judge.takes_per_trade:
            item["per_trade"] = rule.per_trade
        for key, value in (("bot", rule.bot.name if rule.bot else ""), ("strategy", rule.strategy)):
            if value:
                item[key] = value
        if rule.symbol:
            item["symbol"] = rule.symbol
        names = sorted(c.name for c in rule.channels.all())
        if names:
            item["channels"] = names
        rules[rule.name] = item
    channels = {channel.name: _exported_channel(channel) for channel in Channel.objects.order_by("name")}
    schedule = SummarySchedule.current()
    document = {
        "rules": rules,
        "channels": channels,
        "daily_summary": {"enabled": schedule.enabled, "time": schedule.send_at.strftime("%H:%M")},
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return HEADER + body
