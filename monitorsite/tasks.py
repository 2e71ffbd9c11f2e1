"""Tasks of the site itself, run by the django-q2 cluster."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.utils import timezone
from django.utils.module_loading import import_string

from trades import market

logger = logging.getLogger(__name__)


def cluster_heartbeat() -> dt.datetime:
    """Does nothing but finish: its success record is the cluster's proof of life."""
    return timezone.now()


def run_on_trading_day(task: str, **kwargs: Any) -> Any:
    """Run ``task`` (a dotted path) only when today, in market time, is a trading day.

    Schedules declared with ``trading_days_only`` fire through this, so a cron
    time such as 16:05 on weekdays skips weekends and exchange holidays.
    """
    day = market.today()
    if not market.is_trading_day(day):
        logger.info("skipped %s: %s is not a trading day", task, day)
        return None
    return import_string(task)(**kwargs)
