from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import CommandError
from django_q.management.commands.qcluster import Command as ClusterCommand

from monitorsite.dbfiles import mark_site_running


class Command(ClusterCommand):
    """django-q2's ``qcluster``, marked as part of the running site while it runs.

    The lock is taken here, in the process every way of starting the cluster goes
    through (``scripts/serve.sh``, docker-compose, the tests), before the cluster
    forks its sentinel, scheduler and workers: they inherit it, so it is held as
    long as any of them can write to the database. A django-q2 signal would fire
    in the workers only, not in the sentinel that runs the scheduler, and a lock in
    ``scripts/serve.sh`` would not cover docker-compose. ``monitorsite`` comes
    before ``django_q`` in ``INSTALLED_APPS`` so that this command is the one found.
    """

    help = ClusterCommand.help + " Holds the running-site lock beside the database (see restore_backup)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            mark_site_running()
        except OSError as exc:
            raise CommandError(
                f"cannot take the running-site lock {exc.filename}: {exc.strerror or exc}"
            ) from None
        _announce_start()
        super().handle(*args, **options)


def _announce_start() -> None:
    """Health says "starting" until the first heartbeat, which is queued now rather than at the
    next minute of its schedule."""
    from django_q.tasks import async_task

    from monitorsite.health import HEARTBEAT_TASK, mark_started

    try:
        mark_started()
        async_task(HEARTBEAT_TASK)
    except Exception:
        logging.getLogger(__name__).exception("qcluster: could not announce the start")
