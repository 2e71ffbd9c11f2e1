"""Work the task cluster does for alerts. Every task logs its failure instead of raising it:
a broken rule or an unreachable Discord must not fill the cluster's failure table or stop it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction

from alerts import delivery, evaluation, rules, summary
from alerts.models import PendingEvaluation, PendingStateEvaluation
from trades.models import BotEvent

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Every rule kind's judge is imported with the tasks: the cluster loads this module before it forks
# (``manage.py qcluster``'s preload), so its workers share the judges' code (and what they import:
# ``trades.hours``, ``statistics``) instead of each importing its own copy on its first evaluation
# (4 to 5 MiB over the cluster's processes, bench/footprint.py).
for _kind in rules.RULE_KINDS:
    rules.judge_for(_kind)


def _logged(func: Callable[..., T]) -> Callable[..., T | None]:
    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> T | None:
        try:
            return func(*args, **kwargs)
        except Exception:
            logger.exception("alerts: task %s failed", func.__name__)
            return None

    return run


@_logged
def evaluate_trades(bot_id: int, trade_ids: list[int]) -> int:
    """The evaluation of the bot's new trades (this batch, and any that joined it while it waited).

    What it raises is sent from this same task: no second queue hop.
    """
    first_id = PendingEvaluation.objects.claim(bot_id)
    if first_id is None:
        return 0  # an earlier task took the request over and judged these trades
    raised = evaluation.evaluate_new_trades(bot_id, first_id)
    return delivery.deliver_pending() if raised else 0


@_logged
def evaluate_state(bot_id: int) -> int:
    """The evaluation of the bot's newly reported state (every snapshot that arrived while it waited),
    then what it raised is sent."""
    since = PendingStateEvaluation.objects.claim(bot_id)
    if since is None:
        return 0  # an earlier task took the request over and judged this state
    raised = evaluation.evaluate_state(bot_id, since)
    return delivery.deliver_pending() if raised else 0


@_logged
def alert_for_event(event_id: int) -> int:
    event = BotEvent.objects.select_related("bot").filter(pk=event_id).first()
    if event is None:
        return 0
    raised = evaluation.alert_for_event(event)
    return delivery.deliver_pending() if raised else 0


@_logged
def evaluate_schedule() -> int:
    """The periodic pass (bot stopped, daily thresholds), then whatever waits in the outbox."""
    evaluation.evaluate_schedule()
    return delivery.deliver_pending()


@_logged
def deliver() -> int:
    return delivery.deliver_pending()


@_logged
def send_daily_summary_if_due() -> int:
    return len(summary.send_if_due())


@_logged
def send_weekly_report_if_due() -> int:
    return len(summary.send_weekly_if_due())


def enqueue(func: str, *args: Any, on_failure: Callable[[], Any] | None = None) -> None:
    """Queue a task once the current transaction commits; a failure to queue is logged, never raised.

    Its success is not kept among django-q2's results (a failure is): these tasks come with
    every batch and every heartbeat that carries state, and django-q2 keeps only the newest
    ``save_limit`` successes. A flood of them once pushed out the cluster's own heartbeat,
    its proof of life for health, which then said the cluster had never run."""

    def submit() -> None:
        try:
            from django_q.tasks import async_task

            async_task(func, *args, save=False)
        except Exception:
            logger.exception("alerts: could not queue %s", func)
            if on_failure is not None:
                try:
                    on_failure()
                except Exception:
                    logger.exception("alerts: could not undo the queueing of %s", func)

    try:
        transaction.on_commit(submit)
    except Exception:
        logger.exception("alerts: could not queue %s", func)
