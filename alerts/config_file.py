"""``alerts.yaml``: the rules, channels and summary time as a file (``import_alerts`` / ``export_alerts``).

The format (see docs/ALERTS.md)::

    rules:
      daily-loss-warning:          # the rule's name
        kind: daily_loss           # daily_loss, max_daily_loss, trade_frequency,
        threshold: -500            # position_size, bot_stopped, bot_event
        level: warning             # info, warning, critical
        enabled: true
        cooldown_minutes: 60
      event-crash:
        kind: bot_event
        event: crash               # a bot event kind of the API
        level: critical
        cooldown_minutes: 0
    channels:
      discord:
        kind: discord
        min_level: info
        enabled: true
        rate_limit_per_minute: 5   # the webhook URL never goes in a file
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

from alerts.models import AlertRule, Channel, ChannelKind, Level, RuleKind, SummarySchedule
from alerts.rules import problems
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
            values["kind"] = _choice(value_node, where, RuleKind.values)
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
    defaults = {"event_kind": "", "threshold": None, "enabled": True, "per_trade": False, "bot": None}
    defaults |= {"strategy": "", "symbol": "", "cooldown_minutes": 0 if kind == RuleKind.BOT_EVENT else 60}
    return defaults | values


def _channel(node: yaml.Node, path: str) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": ChannelKind.DISCORD, "min_level": Level.INFO, "enabled": True}
    values["rate_limit_per_minute"] = 5
    for key, key_node, value_node in _mapping(node, path):
        where = f"{path}.{key}"
        if key == "webhook_url":
            raise _error(
                key_node,
                where,
                "the webhook URL is a secret: set DISCORD_WEBHOOK_URL or enter it in the admin",
            )
        if key not in CHANNEL_KEYS:
            raise _error(key_node, where, f"unknown key; expected one of {', '.join(CHANNEL_KEYS)}")
        if key == "kind":
            values[key] = _choice(value_node, where, ChannelKind.values)
        elif key == "min_level":
            values[key] = _choice(value_node, where, Level.values)
        elif key == "enabled":
            values[key] = _bool(value_node, where)
        else:
            values[key] = _int(value_node, where, 1)
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
            else:
                parsed.channels[name] = _channel(item, f"channels.{name}")
    return parsed


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def apply(parsed: Parsed, *, replace: bool = False) -> ImportReport:
    """Write a parsed file in one transaction, rules and channels by name.

    ``replace`` removes the rules (channels) the file does not name, in the
    sections the file has: a file of rules alone never removes a channel.
    """
    report = ImportReport()
    with transaction.atomic():
        for model, items, label in ((AlertRule, parsed.rules, "rule"), (Channel, parsed.channels, "channel")):
            if f"{label}s" not in parsed.sections:
                continue
            for name, values in items.items():
                current = model.objects.filter(name=name).first()
                if current is None:
                    model.objects.create(name=name, **values)
                    report.created.append(f"{label} {name}")
                elif any(getattr(current, key) != value for key, value in values.items()):
                    for key, value in values.items():
                        setattr(current, key, value)
                    current.save()
                    report.updated.append(f"{label} {name}")
                else:
                    report.unchanged.append(f"{label} {name}")
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


# --- writing -------------------------------------------------------------------------


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def export() -> str:
    """The current rules, channels and summary time as alerts.yaml text (no secrets)."""
    rules: dict[str, Any] = {}
    for rule in AlertRule.objects.select_related("bot").order_by("name"):
        item: dict[str, Any] = {"kind": rule.kind}
        if rule.kind == RuleKind.BOT_EVENT:
            item["event"] = rule.event_kind
        if rule.threshold is not None:
            item["threshold"] = _number(rule.threshold)
        item |= {"level": rule.level, "enabled": rule.enabled, "cooldown_minutes": rule.cooldown_minutes}
        if rule.kind == RuleKind.POSITION_SIZE:
            item["per_trade"] = rule.per_trade
        for key, value in (("bot", rule.bot.name if rule.bot else ""), ("strategy", rule.strategy)):
            if value:
                item[key] = value
        if rule.symbol:
            item["symbol"] = rule.symbol
        rules[rule.name] = item
    channels = {
        channel.name: {
            "kind": channel.kind,
            "min_level": channel.min_level,
            "enabled": channel.enabled,
            "rate_limit_per_minute": channel.rate_limit_per_minute,
        }
        for channel in Channel.objects.order_by("name")
    }
    schedule = SummarySchedule.current()
    document = {
        "rules": rules,
        "channels": channels,
        "daily_summary": {"enabled": schedule.enabled, "time": schedule.send_at.strftime("%H:%M")},
    }
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return HEADER + body
