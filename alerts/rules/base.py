"""The plug-in family of rule kinds: one base class, one module per kind (its judge).

A judge owns everything about its kind: what a valid rule of it is (``problems``), when
it is judged (``judged_on``), what figure it judges and how (its own ``breached``), the
words of its alert, and its side effect (the max daily loss halts trading). What it
finds it hands back as values (``Breach``, ``Recovery``); ``alerts.evaluation`` turns
them into alerts, with the same dedup, cooldown, silences and outbox for every kind.

This module imports no model of ``alerts`` (``alerts.models`` takes its kind choices and
a rule's problems from the registry above this module), so a rule is named here by
its shape (``Rule``) and a judge's own module, which may use the ORM, names the model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from trades.models import Bot, BotEvent, TradeQuerySet

Problems = dict[str, str]
Fields = Sequence[tuple[str, object]]

# When rules are judged: after a batch of trades is stored, on the periodic pass, on a bot event,
# after heartbeats that carried the bot's state (a ``BotSnapshot``: positions, account, host).
Moment = Literal["trades", "schedule", "event", "state"]

# Figures worked out once per evaluation pass, shared by judges that read the same ones
# (the day rules of one bot, day and scope cost one query together). Keys start with
# the name of what they hold.
Memo = dict[tuple[Any, ...], Any]


class Rule(Protocol):
    """What a judge reads of a stored rule (``alerts.models.AlertRule``)."""

    threshold: Decimal | None
    per_trade: bool
    cooldown_minutes: int
    strategy: str
    symbol: str

    @property
    def scope(self) -> str: ...

    def in_scope(self, trades: TradeQuerySet) -> TradeQuerySet: ...


@dataclass(frozen=True)
class NewTrades:
    """A stored batch, as the judges see it: the bot, its new trades (every trade of the bot from
    ``first_id`` to ``last_id``: ids grow with each stored batch), the trading days they touched.

    A range, not a list of ids: an ``IN`` of a thousand ids is a statement of its own for each
    count, and SQLite's statement cache kept a hundred of them, 200 MB, in a task worker."""

    bot: Bot
    first_id: int
    last_id: int
    days: list[dt.date]

    @classmethod
    def between(cls, bot: Bot, first_id: int, last_id: int) -> NewTrades:
        """The batch of the bot's trades from ``first_id`` to ``last_id``, with the days they touched."""
        trades = _trades_between(bot, first_id, last_id)
        days = sorted(set(trades.order_by().values_list("trading_day", flat=True).distinct()))
        return cls(bot=bot, first_id=first_id, last_id=last_id, days=days)

    def trades(self) -> TradeQuerySet:
        return _trades_between(self.bot, self.first_id, self.last_id)


def _trades_between(bot: Bot, first_id: int, last_id: int) -> TradeQuerySet:
    from trades.models import Trade

    return Trade.objects.filter(bot=bot, pk__gte=first_id, pk__lte=last_id)


@dataclass(frozen=True)
class NewState:
    """Heartbeats with the bot's state arrived (one or several, judged together): the bot, and the
    trading days from the first waiting snapshot's to now's (a snapshot just before the market's
    midnight is judged for its own day)."""

    bot: Bot
    days: list[dt.date]


@dataclass(frozen=True)
class Notice:
    """The words of one alert. ``source``: what raised it (empty: the rule's kind);
    ``level``: empty for the rule's own."""

    title: str
    message: str
    fields: Fields = ()
    source: str = ""
    level: str = ""


@dataclass(frozen=True)
class Breach:
    """The rule is breached for ``subject`` (its dedup key): it alerts when the breach starts,
    and again once per cooldown while it lasts.

    ``alert_subject``: the alert's own subject when it differs (one per bot event).
    ``each_time``: with no cooldown every breach alerts, even two judged at once.
    """

    subject: str
    notice: Notice
    alert_subject: str = ""
    each_time: bool = False


@dataclass(frozen=True)
class Recovery:
    """A breach of ``subject`` is over, if one was on: evaluation ends it, and the judge's
    ``recovered`` words the notice."""

    subject: str


Finding = Breach | Recovery


class Judge:
    """The rules of one kind. A member sets what its threshold means (None: it takes none), when it is
    judged, and implements the judging of those moments."""

    # For the admin's choice of kind: what the kind alerts on.
    summary: ClassVar[str] = ""
    threshold_means: ClassVar[str | None] = None
    takes_event_kind: ClassVar[bool] = False
    takes_per_trade: ClassVar[bool] = False
    # False: the kind judges a bot as a whole, and a rule of it limited to a strategy or a symbol
    # is refused (it would look limited and not be).
    takes_scope: ClassVar[bool] = True
    # A new rule's cooldown in alerts.yaml when the file gives none (None: the model's default).
    default_cooldown_minutes: ClassVar[int | None] = None
    judged_on: ClassVar[frozenset[Moment]] = frozenset()
    # True: a bot with rules of its own of this kind is judged by those alone, not by the
    # general ones too (``alerts.models.rules_judging``).
    own_rule_replaces_general: ClassVar[bool] = False

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}>"

    @property
    def label(self) -> str:
        return self.kind.replace("_", " ")

    @property
    def choice(self) -> str:
        return f"{self.label} ({self.summary})" if self.summary else self.label

    # --- what a valid rule is ---

    def problems(
        self,
        *,
        threshold: Decimal | None,
        event_kind: str = "",
        per_trade: bool = False,
        strategy: str = "",
        symbol: str = "",
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
        for name, value in (("strategy", strategy), ("symbol", symbol)):
            if value and not self.takes_scope:
                found[name] = f"A {self.label} rule judges the bot as a whole; leave the {name} empty."
        return found

    def threshold_problem(self, threshold: Decimal) -> str:
        """What is wrong with a given threshold ("" when nothing); positive unless overridden."""
        if threshold <= 0:
            return f"Must be above 0 ({self.threshold_means}), got {threshold}."
        return ""

    # --- judging: each moment in ``judged_on`` has its method; evaluation passes judged rules only ---

    def after_trades(self, rule: Rule, trades: NewTrades, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        """What a stored batch breaches."""
        return iter(())

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        """What the periodic pass finds for ``bot`` (``today``: the market's trading day of ``now``)."""
        return iter(())

    def on_state(self, rule: Rule, state: NewState, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        """What the bot's newly reported state (positions, account, host) breaches."""
        return iter(())

    def on_event(self, rule: Rule, event: BotEvent, now: dt.datetime) -> Iterator[Finding]:
        """What a bot event of the rule's ``event_kind`` breaches."""
        return iter(())

    def recovered(self, rule: Rule, bot: Bot, since: dt.datetime, now: dt.datetime) -> Notice | None:
        """The notice that a breach which began at ``since`` is over (None: say nothing)."""
        return None
