"""What ``GET /api/v1/health/`` reports: can the site store data, and is the task cluster working."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

HEARTBEAT_TASK = "monitorsite.tasks.cluster_heartbeat"

# For the health registry. Log shipping is not vital: while Loki is away the site
# is "degraded" (the file log still has everything), never unavailable. The check
# lives with the shipper in monitor_client, which needs no Django.
CHECKS = {"log_shipping": {"check": "monitor_client.loki.shipping_health", "vital": False}}

logger = logging.getLogger(__name__)
_last_down: frozenset[str] | None = None


def database_state() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def task_cluster_state() -> dict[str, Any]:
    """Alive when the cluster ran its heartbeat task recently.

    A finished task proves more than a running process: the scheduler fired,
    a worker picked the task up and could write the result.
    """
    from django_q.models import Success

    try:
        last = (
            Success.objects.filter(func=HEARTBEAT_TASK)
            .order_by("-stopped")
            .values_list("stopped", flat=True)
            .first()
        )
    except DatabaseError as exc:
        return {"ok": False, "error": type(exc).__name__}
    if last is None:
        return {"ok": False, "last_heartbeat": None, "reason": "the task cluster has not run yet"}
    age = (timezone.now() - last).total_seconds()
    state: dict[str, Any] = {"ok": age <= settings.CLUSTER_STALE_AFTER_SECONDS}
    state.update(last_heartbeat=last, age_seconds=round(age, 1))
    if not state["ok"]:
        state["reason"] = f"no heartbeat for {int(age)} s"
    return state


def components() -> dict[str, dict[str, Any]]:
    db = database_state()
    cluster = task_cluster_state() if db["ok"] else {"ok": False, "reason": "database unreachable"}
    return {"database": db, "task_cluster": cluster}


def report(components: dict[str, dict[str, Any]]) -> None:
    """Log when the set of failing components changes (per process), not on every check."""
    global _last_down
    down = frozenset(name for name, part in components.items() if not part["ok"])
    if down == _last_down:
        return
    if down:
        logger.warning("health: %s down", ", ".join(sorted(down)))
    elif _last_down is not None:
        logger.info("health: all components ok again")
    _last_down = down
