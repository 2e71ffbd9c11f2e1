"""One judge per rule kind: what a valid rule of that kind is, and how it judges.

The admin's add and change forms, the rule list's inline edits, ``import_alerts``
and evaluation all ask the judge of the rule's kind, so they cannot disagree.
A rule stored before a check existed (or written around the admin) that the
judge refuses is never evaluated: it is flagged in the admin and in health.

``JUDGES`` is the one registry: a kind without a judge here is not a kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from alerts.models import RuleKind

if TYPE_CHECKING:
    from alerts.models import AlertRule

Problems = dict[str, str]


@dataclass(frozen=True)
class Judge:
    """The rules of one kind. ``threshold_means``: what its threshold counts (None: takes none)."""

    kind: str
    threshold_means: str | None = None
    takes_event_kind: bool = False
    takes_per_trade: bool = False
    # How evaluation compares in SQL, for kinds judged by a database filter.
    lookup: ClassVar[str] = ""

    def problems(
        self, *, threshold: Decimal | None, event_kind: str = "", per_trade: bool = False
    ) -> Problems:
        """Field name -> what is wrong with it; empty when the rule is valid."""
        found: Problems = {}
        if self.threshold_means is None:
            if threshold is not None:
                found["threshold"] = f"A {self.label} rule takes no threshold; leave it empty."
        elif threshold is None:
            found["threshold"] = f"A {self.label} rule needs a threshold ({self.threshold_means})."
        elif problem := self.threshold_problem(threshold):
            found["threshold"] = problem
        if self.takes_event_kind and not event_kind:
            found["event_kind"] = "A bot event rule needs the event kind it alerts on."
        if not self.takes_event_kind and event_kind:
            found["event_kind"] = "Only bot event rules take an event kind; leave it empty."
        if per_trade and not self.takes_per_trade:
            found["per_trade"] = "Only position size rules alert per trade."
        return found

    def threshold_problem(self, threshold: Decimal) -> str:
        """What is wrong with a given threshold ("" when nothing); positive unless overridden."""
        if threshold <= 0:
            return f"Must be above 0 ({self.threshold_means}), got {threshold}."
        return ""

    def breached(self, value: Decimal | int, threshold: Decimal) -> bool:
        raise NotImplementedError(f"{self.kind} rules are not judged on a number")

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ")


class LossLimit(Judge):
    """Daily loss, max daily loss: the day's realized P&L at or below a negative limit."""

    def threshold_problem(self, threshold: Decimal) -> str:
        if threshold >= 0:
            return (
                "A loss limit is negative (the realized P&L at or below which it alerts, e.g. -500), "
                f"got {threshold}."
            )
        return ""

    def breached(self, value: Decimal | int, threshold: Decimal) -> bool:
        return value <= threshold


class TradeCount(Judge):
    """Trade frequency: more trades in the trading day than the limit."""

    def threshold_problem(self, threshold: Decimal) -> str:
        if threshold <= 0 or threshold != threshold.to_integral_value():
            return f"Must be a whole number of trades above 0, got {threshold}."
        return ""

    def breached(self, value: Decimal | int, threshold: Decimal) -> bool:
        return value > threshold


class Notional(Judge):
    """Position size: a fill's quantity x price above the limit (compared in SQL with ``__gt``)."""

    lookup: ClassVar[str] = "gt"

    def breached(self, value: Decimal | int, threshold: Decimal) -> bool:
        return value > threshold


class MissedHeartbeats(Judge):
    """Bot stopped: no heartbeat for longer than the threshold, in minutes of market hours."""

    def breached(self, value: Decimal | int, threshold: Decimal) -> bool:
        return value > threshold


JUDGES: dict[str, Judge] = {
    RuleKind.DAILY_LOSS: LossLimit(RuleKind.DAILY_LOSS, "realized P&L, negative, e.g. -500"),
    RuleKind.MAX_DAILY_LOSS: LossLimit(RuleKind.MAX_DAILY_LOSS, "realized P&L, negative, e.g. -1000"),
    RuleKind.TRADE_FREQUENCY: TradeCount(RuleKind.TRADE_FREQUENCY, "trades in a day, e.g. 50"),
    RuleKind.POSITION_SIZE: Notional(
        RuleKind.POSITION_SIZE, "a fill's notional, e.g. 1000", takes_per_trade=True
    ),
    RuleKind.BOT_STOPPED: MissedHeartbeats(RuleKind.BOT_STOPPED, "minutes without a heartbeat, e.g. 10"),
    RuleKind.BOT_EVENT: Judge(RuleKind.BOT_EVENT, takes_event_kind=True),
}


def judge_for(kind: str) -> Judge:
    return JUDGES[kind]


def problems(values: dict[str, Any]) -> Problems:
    """What is wrong with a rule given as its fields (kind, threshold, event_kind, per_trade)."""
    kind = values.get("kind")
    if kind not in JUDGES:
        return {"kind": f"Unknown rule kind {kind!r}; one of {', '.join(JUDGES)}."}
    return JUDGES[kind].problems(
        threshold=values.get("threshold"),
        event_kind=values.get("event_kind") or "",
        per_trade=bool(values.get("per_trade")),
    )


def rule_problems(rule: AlertRule) -> Problems:
    """What is wrong with a stored rule (empty: it is judged)."""
    fields = ("kind", "threshold", "event_kind", "per_trade")
    return problems({name: getattr(rule, name) for name in fields})


def describe(found: Problems) -> str:
    """One line for the admin, health and logs: ``threshold: …; event_kind: …``."""
    return "; ".join(f"{name}: {text}" for name, text in found.items())
