"""Rules over one bot's trading day (daily loss, max daily loss, trade frequency).

Judged after new trades (each trading day the batch touched) and on the schedule
(today, so an edited threshold counts without waiting for a trade); a member whose figure
moves with the bot's open positions (the daily losses) is judged after heartbeats that
carried its state too (``state``: the days of the snapshots that waited).

No flapping: the breach's subject is the bot's trading day, and it is not ended when
the figure crosses back within that day, so however often P&L crosses the limit it
alerts at the first breach and then at most once per cooldown (while breached). The
next trading day is a new subject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar

from alerts.rules.base import Breach, Finding, Judge, Memo, Moment, NewState, NewTrades, Notice, Rule
from trades.models import Bot, Trade
from trades.summary import DayFigures


def day_totals(rule: Rule, bot: Bot, day: dt.date, memo: Memo) -> DayFigures:
    """One query per bot, day and scope in an evaluation pass, shared by every day rule."""
    key = ("day_totals", bot.pk, day, rule.strategy, rule.symbol)
    if key not in memo:
        memo[key] = rule.in_scope(Trade.objects.for_bot(bot)).day_figures(day)
    return memo[key]


def day_subject(bot_id: int, day: dt.date) -> str:
    """The subject of a day rule's breach (and its alerts): the bot's trading day."""
    return f"bot-{bot_id}:{day.isoformat()}"


class DayRule(Judge):
    """A member says which figure of the day it judges, when it is breached, and in what words."""

    judged_on: ClassVar[frozenset[Moment]] = frozenset({"trades", "schedule"})

    def after_trades(self, rule: Rule, trades: NewTrades, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        for day in trades.days:
            yield from self.judge_day(rule, trades.bot, day, now, memo)

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        return self.judge_day(rule, bot, today, now, memo)

    def on_state(self, rule: Rule, state: NewState, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        for day in state.days:
            yield from self.judge_day(rule, state.bot, day, now, memo)

    def judge_day(
        self, rule: Rule, bot: Bot, day: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        figure = self.measure(rule, bot, day, memo)
        threshold = rule.threshold
        if threshold is None or not self.breached(figure, threshold):
            return
        words = self.words(bot, day, figure, threshold)
        fields = [("Bot", bot.name), ("Trading day", day.isoformat()), *words.fields]
        if rule.strategy or rule.symbol:
            fields.append(("Scope", rule.scope))
        message = " ".join(part for part in (words.message, self.consequence(bot, day, figure, now)) if part)
        notice = Notice(title=words.title, message=message, fields=fields)
        yield Breach(subject=day_subject(bot.pk, day), notice=notice)

    # --- what a member says ---

    def measure(self, rule: Rule, bot: Bot, day: dt.date, memo: Memo) -> Any:
        """The figure the member judges (by default ``figure`` of the day's totals in the rule's scope)."""
        return self.figure(day_totals(rule, bot, day, memo))

    def figure(self, totals: DayFigures) -> Decimal | int:
        raise NotImplementedError

    def breached(self, figure: Any, threshold: Decimal) -> bool:
        raise NotImplementedError

    def words(self, bot: Bot, day: dt.date, figure: Any, threshold: Decimal) -> Notice:
        """The title, the message and the fields of the figure (after the bot and the day)."""
        raise NotImplementedError

    def consequence(self, bot: Bot, day: dt.date, figure: Any, now: dt.datetime) -> str:
        """The breach's side effect, done before it alerts (on every breach, even one within its
        cooldown), told in a sentence added to the message ("": none)."""
        return ""
