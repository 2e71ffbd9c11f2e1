from __future__ import annotations

import logging
import os
import threading
import time
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as ClusterCommand

from monitorsite.dbfiles import mark_site_running
from monitorsite.memory import limit_malloc_arenas, share_with_forks
from monitorsite.telegram import reader as telegram_reader


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
        limit_malloc_arenas()
        try:
            mark_site_running()
        except OSError as exc:
            raise CommandError(
                f"cannot take the running-site lock {exc.filename}: {exc.strerror or exc}"
            ) from None
        _announce_start()
        # django-q2's own handle(), with the cluster below.
        settings.SECRET_KEY  # noqa: B018 - no cluster without a secret key to sign tasks with
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        preload_tasks()
        cluster = StoppableCluster()
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()
            return
        # The Telegram commands' reader, a thread of this process (started once the sentinel has
        # forked, so no fork copies it); it stops with the cluster and lets another take over.
        stop = threading.Event()
        reader = telegram_reader.start(stop)
        try:
            while cluster.sentinel is not None and cluster.sentinel.is_alive():
                time.sleep(0.5)
        finally:
            stop.set()
            if reader is not None:
                reader.release()


def preload_tasks() -> None:
    """Every app's tasks module and the URLs loaded before the cluster forks, so the sentinel, the
    workers and those that replace them share their pages rather than each loading its own copy."""
    load_tasks()
    connections.close_all()
    share_with_forks()


def load_tasks() -> None:
    """Import every app's ``tasks`` module and the URLs (alerts link to the admin)."""
    from django.apps import apps
    from django.urls import get_resolver

    for app in apps.get_app_configs():
        if find_spec(f"{app.name}.tasks") is not None:
            import_module(f"{app.name}.tasks")
    get_resolver().url_patterns  # noqa: B018


class StoppableCluster(Cluster):
    """django-q2's cluster, keeping a stop asked for while its sentinel is being started.

    django-q2 stops on SIGTERM/SIGINT only when its sentinel process already exists:
    a signal that arrives before it, or during the fork that makes it, is dropped
    (``stop()`` sees no live sentinel and returns), and the cluster then runs on until
    something kills it. ``scripts/serve.sh`` stopping the site just after it started
    once waited out its 30 s and killed the cluster that way. Here such a signal is
    noted, and the cluster stops as soon as its sentinel is up.
    """

    stop_asked = False

    def sig_handler(self, signum: int, frame: Any) -> None:
        if self.sentinel is None or self.sentinel.pid is None:
            self.stop_asked = True
            return
        super().sig_handler(signum, frame)

    def start(self) -> int:
        pid = super().start()
        if self.stop_asked:
            self.stop()
        return pid


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
