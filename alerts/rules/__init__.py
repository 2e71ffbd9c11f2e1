"""Rule kinds: the one list of them, each kind's judge imported on first use.

A kind that is not in ``RULE_KINDS`` is not a kind. The admin's choice of kind (the
model field's choices), the kinds ``alerts.yaml`` accepts, health's broken-rule check
and evaluation (which rules run after new trades, on the schedule, on an event) all
follow from it. Adding a kind: its module here (a ``base.Judge``), one line below, its
tests.

The layering, each floor importing only from the floors below it:

1. ``alerts.rules`` (this registry) and ``alerts.rules.base`` (the judge base class and
   what a judge finds): no model of ``alerts``, so ``alerts.models`` can stand on them.
2. ``alerts.models``: a rule's kind choices and its problems come from floor 1.
3. ``alerts.rules.<kind>``: the judges. They read trades, heartbeats and events through
   the ORM and record halts; the registry names them by dotted path and imports one
   when it is first asked for, never at import time, so floor 1 does not stand on them.
4. ``alerts.evaluation``: finds the rules that apply when, asks their judges, and turns
   what they find into alerts (conditions, dedup, cooldown, the outbox).

A rule stored before a check existed (or written around the admin) that its judge
refuses is never evaluated: it is flagged in the admin and in health.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.utils.module_loading import import_string

from alerts.rules.base import Judge, Moment, Problems

RULE_KINDS: dict[str, str] = {
    "daily_loss": "alerts.rules.daily_loss.DailyLoss",
    "max_daily_loss": "alerts.rules.daily_loss.MaxDailyLoss",
    "trade_frequency": "alerts.rules.trade_frequency.TradeFrequency",
    "position_size": "alerts.rules.position_size.PositionSize",
    "bot_stopped": "alerts.rules.bot_stopped.BotStopped",
    "bot_event": "alerts.rules.bot_event.ReportedEvent",
    "host_disk": "alerts.rules.host.HostDisk",
    "host_memory": "alerts.rules.host.HostMemory",
    "bot_restart": "alerts.rules.bot_restart.BotRestart",
    "trade_rate_anomaly": "alerts.rules.anomaly.TradeRateAnomaly",
    "pnl_anomaly": "alerts.rules.anomaly.PnlAnomaly",
}

# The fields of a rule its judge decides on (the admin's forms, alerts.yaml, stored rules).
JUDGED_FIELDS = ("kind", "threshold", "event_kind", "per_trade", "strategy", "symbol")


@functools.cache
def judge_for(kind: str) -> Judge:
    """The judge of ``kind`` (KeyError for a kind not in ``RULE_KINDS``)."""
    return import_string(RULE_KINDS[kind])(kind)


def kind_choices() -> list[tuple[str, str]]:
    """The rule kinds, for the model field's choices (a callable: a new kind needs no migration)."""
    return [(kind, judge_for(kind).choice) for kind in RULE_KINDS]


def kinds_where(test: Callable[[Judge], bool]) -> list[str]:
    """The kinds whose judge passes ``test``."""
    return [kind for kind in RULE_KINDS if test(judge_for(kind))]


def kinds_judged_on(moment: Moment) -> list[str]:
    """The kinds judged after new trades (``trades``), on the schedule, on a bot event or after
    heartbeats that carried the bot's state (``state``)."""
    return kinds_where(lambda judge: moment in judge.judged_on)


def problems(values: dict[str, Any]) -> Problems:
    """What is wrong with a rule given as its ``JUDGED_FIELDS``; empty when its judge accepts it."""
    kind = values.get("kind")
    if kind not in RULE_KINDS:
        return {"kind": f"Unknown rule kind {kind!r}; one of {', '.join(RULE_KINDS)}."}
    return judge_for(kind).problems(
        threshold=values.get("threshold"),
        event_kind=values.get("event_kind") or "",
        per_trade=bool(values.get("per_trade")),
        strategy=values.get("strategy") or "",
        symbol=values.get("symbol") or "",
    )


def describe(found: Problems) -> str:
    """One line for the admin, health and logs: ``threshold: …; event_kind: …``."""
    return "; ".join(f"{name}: {text}" for name, text in found.items())
