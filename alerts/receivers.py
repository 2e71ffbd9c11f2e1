"""How alerts hears about trades, the bot's reported state, bot events and site problems
(connected in AlertsConfig.ready).

Each receiver only queues work or writes an outbox row; none may raise into
the request or task that sent the signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from alerts.models import AlertRule, PendingEvaluation, PendingStateEvaluation, any_rule_judged_on
from alerts.tasks import enqueue
from trades.models import Bot, BotEvent, BotSnapshot

logger = logging.getLogger(__name__)


def on_trades_recorded(sender: Any, bot: Bot, trade_ids: list[int], **kwargs: Any) -> None:
    """Queue an evaluation of the batch, unless one for this bot already waits (it covers the batch)."""
    try:
        if not trade_ids or not any_rule_judged_on("trades"):
            return
        if PendingEvaluation.objects.request(bot, min(trade_ids), timezone.now()):
            enqueue("alerts.tasks.evaluate_trades", bot.pk, list(trade_ids), on_failure=_forget(bot.pk))
    except Exception:
        logger.exception("alerts: could not queue the evaluation of %d trade(s)", len(trade_ids))


def _forget(bot_id: int) -> Callable[[], None]:
    """If the task cannot be queued, drop the request, so the next batch queues one."""
    return lambda: PendingEvaluation.objects.filter(bot_id=bot_id).delete()


def on_state_reported(sender: Any, bot: Bot, snapshot: BotSnapshot, **kwargs: Any) -> None:
    """Queue an evaluation of the bot's new state, unless one already waits (it judges the newest
    state, so it covers this one): a heartbeat every few seconds queues one task per queue wait."""
    try:
        if not any_rule_judged_on("state"):
            return
        if PendingStateEvaluation.objects.request(bot, snapshot.taken_at, timezone.now()):
            enqueue("alerts.tasks.evaluate_state", bot.pk, on_failure=_forget_state(bot.pk))
    except Exception:
        logger.exception("alerts: could not queue the evaluation of %s's state", bot)


def _forget_state(bot_id: int) -> Callable[[], None]:
    return lambda: PendingStateEvaluation.objects.filter(bot_id=bot_id).delete()


def on_bot_event(sender: Any, instance: BotEvent, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Queue the event's alert, when a rule for its kind is on (no task for events nobody alerts on)."""
    if not created or raw:
        return
    try:
        rules = AlertRule.objects.enabled().judged_on("event").filter(event_kind=instance.kind)
        if rules.exists():
            enqueue("alerts.tasks.alert_for_event", instance.pk)
    except Exception:
        logger.exception("alerts: could not queue the alert for event %s", instance.pk)


def on_site_alert(
    sender: Any, kind: str, level: str, title: str, message: str = "", subject: str = "", **kwargs: Any
) -> None:
    from alerts.evaluation import alert_for_site_problem

    try:
        if alert_for_site_problem(kind=kind, level=level, title=title, message=message, subject=subject):
            enqueue("alerts.tasks.deliver")
    except Exception:
        logger.exception("alerts: could not record the site alert %s", kind)


def on_summary_requested(sender: Any, day: Any, bot: Bot | None = None, **kwargs: Any) -> str:
    """``daily_summary --send``: write the summary to the outbox and send it now."""
    from alerts.summary import send_now

    return send_now(day, bot)


def on_period_summary_requested(
    sender: Any, start: Any, end: Any, bot: Bot | None = None, **kwargs: Any
) -> str:
    """``period_summary --send``: write the report to the outbox and send it now."""
    from alerts.summary import send_period_now

    return send_period_now(start, end, bot)
