"""The site's own health checks: can it store data, and is the task cluster working.

Collected with every app's checks by ``monitorsite.registry``; ``/api/v1/health/``
answers them all.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from trades.formats import format_duration

HEARTBEAT_TASK = "monitorsite.tasks.cluster_heartbeat"

CHECKS = {
    "database": {"check": "monitorsite.health.database_state", "vital": True},
    "broker": {"check": "monitorsite.health.broker_state", "vital": True},
    "task_cluster": {"check": "monitorsite.health.task_cluster_state", "vital": True},
    # Not vital: while Loki is away the site is "degraded" (the file log still has
    # everything), never unavailable. The check lives with the shipper in
    # monitor_client, which needs no Django.
    "log_shipping": {"check": "monitor_client.loki.shipping_health", "vital": False},
    # Not vital: the site works without its commands; "off" unless TELEGRAM_COMMAND_USERS is set.
    "telegram_commands": {"check": "monitorsite.telegram.reader.reader_state", "vital": False},
}

logger = logging.getLogger(__name__)
_last_state: tuple[str, frozenset[str]] | None = None


def database_state() -> dict[str, Any]:
    """Can the database be read; ``"name"`` says which one (``SQLite data/trades.db``,
    ``PostgreSQL monitor at db:5432``), never its user or password."""
    name = settings.DATABASE_DESCRIPTION
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return {"ok": False, "name": name, "error": type(exc).__name__, "reason": f"{name} cannot be read"}
    return {"ok": True, "name": name}


def broker_state() -> dict[str, Any]:
    """Can the task broker be reached: the database itself (ORM broker) or Redis (``REDIS_URL``).

    With the ORM broker the queue is a table of the database checked above; Redis
    is asked for a PING with a short timeout, so a Redis that hangs costs health
    two seconds, not the request's whole budget.
    """
    name = settings.BROKER_DESCRIPTION
    if not settings.REDIS_URL:
        return {"ok": True, "name": name}
    import redis

    try:
        _redis_client(settings.REDIS_URL).ping()
    except redis.RedisError as exc:
        return {"ok": False, "name": name, "error": type(exc).__name__, "reason": f"{name} cannot be reached"}
    return {"ok": True, "name": name}


@functools.lru_cache(maxsize=2)
def _redis_client(url: str) -> Any:
    """One client (its connection pool, which redis-py renews after a fork) per process: a health
    request reuses a connection instead of opening one."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def task_cluster_state(now: Any = None) -> dict[str, Any]:
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
        return {"ok": False, "error": type(exc).__name__, "reason": "the database cannot be read"}
    now = now or timezone.now()
    started = cluster_started_at()
    if started is not None and (last is None or last < started):
        since = (now - started).total_seconds()
        if 0 <= since <= settings.CLUSTER_STARTING_SECONDS:
            # Its first heartbeat is on its way: "starting", not a failure to restart it for.
            return {
                "ok": True,
                "starting": True,
                "started_seconds_ago": round(since, 1),
                "last_heartbeat": last,
            }
    if last is None:
        return {"ok": False, "last_heartbeat": None, "reason": "the task cluster has not run yet"}
    age = (now - last).total_seconds()
    state: dict[str, Any] = {"ok": age <= settings.CLUSTER_STALE_AFTER_SECONDS}
    state.update(last_heartbeat=last, age_seconds=round(age, 1))
    if not state["ok"]:
        state["reason"] = f"no heartbeat for {format_duration(int(age))}"
    return state


def started_marker() -> Path:
    """The file whose time says when the web server or the task cluster last started (beside the database)."""
    return Path(settings.DATABASE_PATH).with_name("site-started")


def mark_started() -> None:
    """Called as the web server and ``manage.py qcluster`` start: health says "starting", not
    "unavailable", until the cluster's first heartbeat or for ``CLUSTER_STARTING_SECONDS``."""
    try:
        marker = started_marker()
        marker.touch()
        os.utime(marker)
    except OSError:
        logger.warning("health: cannot mark the start in %s", started_marker())


def cluster_started_at() -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(started_marker().stat().st_mtime, tz=dt.UTC)
    except OSError:
        return None


def report(state: str, components: dict[str, dict[str, Any]]) -> None:
    """Log when the site's state or its set of failing components changes (per process)."""
    global _last_state
    down = frozenset(name for name, part in components.items() if not part["ok"])
    if (state, down) == _last_state:
        return
    if down:
        log = logger.warning if state == "unavailable" else logger.info
        log("health: %s (%s failing)", state, ", ".join(sorted(down)))
    elif _last_state is not None:
        logger.info("health: all components ok again")
    _last_state = (state, down)
