"""The site's web server: ``python -m monitorsite.serve`` (what ``scripts/serve.sh`` runs).

Processes. The main process reads the settings (one line and exit status 2 on a
bad one), loads the site's code (``preload_site``: the forks share its pages),
takes the running-site lock beside the database, binds the listening socket once
and forks ``WEB_PROCESSES`` web processes (default: the cores it may run on).
Each configures its logging (its own Loki shipper thread) and opens its own
database connections after the fork, and runs waitress on the inherited socket;
the kernel gives each new connection to whichever process accepts it first. The
main process answers no request and holds no database connection. It starts a web process
again when one dies, logging a line each time: at once after a long life, after
a back-off (1 s, doubling to 30 s) when it died within 10 s of its start, so a
process that cannot start does not spin. A web process that fails on a
configuration error stops the whole server, as a bad setting does. SIGTERM or
SIGINT stops every web process (SIGKILL for one still running after 8 s) and
then the main process; a web process whose main process has gone stops by
itself. With ``WEB_PROCESSES=1`` the shape is the same: a main process and one
web process. See docs/web-server.md.

waitress, a buffering server: its one I/O thread reads every request whole
(headers and body, a large body spooled to a temp file) before one of the
worker threads sees it. A client that sends half a request and stalls, or a
body shorter than its Content-Length, costs an idle socket, never a worker,
and is dropped after ``WEB_CLIENT_TIMEOUT`` seconds without a byte. Measured
against the usual alternative, gunicorn: with its sync workers 4 such clients
held all 4 workers for the 30 s worker timeout and health took 30 s for
everyone else; its gthread worker only protects against a client that sends
nothing at all (a thread then blocks reading the rest of the headers).

Settings (environment, or ``.env``, through ``monitorsite/env.py``):
``BIND`` (host:port, default 127.0.0.1:8000), ``WEB_PROCESSES`` (default the
number of cores, at most 64), and for each web process ``WEB_CONCURRENCY``
(worker threads, default 4), ``WEB_CLIENT_TIMEOUT`` (seconds, default 10) and
``WEB_MAX_CONNECTIONS`` (default 1000).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured

from monitorsite.env import env_int, env_str, load_env_file
from monitorsite.memory import limit_malloc_arenas, share_with_forks

BASE_DIR = Path(__file__).resolve().parent.parent
# What waitress buffers per request at most. Django refuses bodies over
# DATA_UPLOAD_MAX_MEMORY_SIZE (10 MB) with the API's JSON answer; this bound
# only keeps a client from spooling gigabytes to disk, and is answered with
# JSON too (see ``JsonErrorTask``).
MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024
MAX_REQUEST_HEADER_BYTES = 64 * 1024
# More web processes than this on one socket is a typo, not a deployment: each
# takes about 60 MiB (docs/web-server.md), and SQLite takes one writer at a time.
MAX_WEB_PROCESSES = 64
# A web process that dies sooner than this after its start failed to start: the
# next start waits FIRST_BACKOFF_SECONDS, doubling up to MAX_BACKOFF_SECONDS while
# that goes on. One that lived longer is replaced at once.
QUICK_DEATH_SECONDS = 10.0
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# How long the web processes get to finish after SIGTERM before SIGKILL: waitress
# gives its worker threads 5 s; docker stops a container with SIGKILL after 10 s.
STOP_SECONDS = 8
# How long the task cluster gets to stop after SIGTERM (its workers finish the task in hand) before
# SIGKILL; scripts/serve.sh waits 30 s for the whole site.
CLUSTER_STOP_SECONDS = 25
# prctl's request for a signal when the parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
# A web process's exit status when the site cannot load (a configuration error):
# starting it again cannot help, so the server stops.
CONFIGURATION_ERROR = 3

logger = logging.getLogger("monitorsite.serve")


def server_options() -> dict[str, Any]:
    """waitress's adjustments from the environment; ``ImproperlyConfigured`` names a bad variable."""
    client_timeout = env_int("WEB_CLIENT_TIMEOUT", 10, minimum=1)
    return {
        "listen": env_str("BIND", "127.0.0.1:8000"),
        # Requests at once. SQLite serialises writes, so more threads mostly
        # help reads that wait on a busy database; each keeps its own connection.
        "threads": env_int("WEB_CONCURRENCY", 4, minimum=1),
        # Seconds without a byte before an unfinished (or idle kept-alive)
        # connection is closed, checked every second below.
        "channel_timeout": client_timeout,
        "cleanup_interval": 1,
        "connection_limit": env_int("WEB_MAX_CONNECTIONS", 1000, minimum=10),
        # select() stops at 1024 file descriptors; poll() has no such limit.
        "asyncore_use_poll": True,
        "max_request_body_size": MAX_REQUEST_BODY_BYTES,
        "max_request_header_size": MAX_REQUEST_HEADER_BYTES,
        "ident": "monitorsite",
        "expose_tracebacks": False,
        **proxy_options(),
    }


def proxy_options() -> dict[str, Any]:
    """Behind a reverse proxy (Caddy, nginx) at ``TRUSTED_PROXY``: the client's address from it.

    waitress then takes ``REMOTE_ADDR`` from the ``TRUSTED_PROXY_COUNT`` rightmost
    X-Forwarded-For entries the proxies appended (and the scheme from
    X-Forwarded-Proto); without it waitress drops those headers, and every login
    would seem to come from the proxy, so one guesser would lock everyone out.
    """
    proxy = env_str("TRUSTED_PROXY")
    if not proxy:
        return {}
    return {
        "trusted_proxy": proxy,
        "trusted_proxy_count": env_int("TRUSTED_PROXY_COUNT", 1, minimum=1),
        "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
    }


def request_deadline(client_timeout: int) -> float:
    """How long one request may take to arrive in total, however it trickles in."""
    return 3.0 * client_timeout


def build_server(
    application: Any, options: dict[str, Any], sockets: list[socket.socket] | None = None
) -> Any:
    """A waitress server whose own error answers are JSON and whose slow requests have a deadline.

    On ``sockets`` (bound and listening, inherited from the main process) when given,
    else on ``options["listen"]``.
    """
    from waitress import create_server
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.server import BaseWSGIServer
    from waitress.task import ErrorTask

    deadline = request_deadline(options["channel_timeout"])

    class JsonErrorTask(ErrorTask):
        """waitress's own refusals (malformed request, body or headers too large) as the API's JSON."""

        def execute(self) -> None:
            error = self.request.error
            body = json.dumps(
                {"detail": f"{error.reason}: {error.body}.", "errors": {"body": [str(error.body)]}}
            ).encode()
            self.status = f"{error.code} {error.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class TimedRequestParser(HTTPRequestParser):
        def __init__(self, adj: Any) -> None:
            super().__init__(adj)
            self.started_at = time.monotonic()

    class SiteChannel(HTTPChannel):
        """Closes a connection whose request trickles in for longer than ``deadline`` seconds.

        waitress's own timeout is on silence; a client sending a byte every few
        seconds would keep a request open for ever.
        """

        error_task_class = JsonErrorTask
        parser_class = TimedRequestParser

        def received(self, data: bytes) -> bool:
            request = self.request
            if request is not None and time.monotonic() - request.started_at > deadline:
                self.will_close = True
                return False
            return super().received(data)

    if sockets is not None:
        options = {key: value for key, value in options.items() if key != "listen"}
        options["sockets"] = sockets
    server = create_server(application, **options)
    # One listener per address in BIND; several come wrapped in a MultiSocketServer.
    sockets_map = server.map if hasattr(server, "map") else server._map
    for listener in list(sockets_map.values()):
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = SiteChannel
    return server


def cores() -> int:
    """The cores this process may run on (a container's cpuset included; a CPU quota is not seen)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def web_processes() -> int:
    """``WEB_PROCESSES``, the web processes on the one socket; ``ImproperlyConfigured`` when bad."""
    return env_int("WEB_PROCESSES", min(cores(), MAX_WEB_PROCESSES), minimum=1, maximum=MAX_WEB_PROCESSES)


def bind_sockets(options: dict[str, Any]) -> list[socket.socket]:
    """Listening sockets for ``options["listen"]`` (BIND) as waitress makes them, once for all processes.

    ``OSError`` when an address cannot be bound, ``ValueError`` when waitress refuses the options.
    """
    from waitress.adjustments import Adjustments

    adjustments = Adjustments(**options)  # parses BIND: host:port, [v6]:port, several separated by spaces
    sockets: list[socket.socket] = []
    try:
        for family, kind, protocol, address in adjustments.listen:
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # A restart binds again at once, whatever connections of the last run are in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(adjustments.backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def listening_at(sockets: list[socket.socket]) -> str:
    """``http://127.0.0.1:8000`` (and more, space separated) for the start-up line."""
    urls = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        urls.append(f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}")
    return " ".join(urls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitorsite.serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check-config", action="store_true", help="read the settings and the site, then exit"
    )
    parser.add_argument(
        "--with-cluster",
        action="store_true",
        help="also run the task cluster (manage.py qcluster), forked from this process (scripts/serve.sh)",
    )
    args = parser.parse_args(argv)
    # Files the site creates (the database, its WAL, logs) are the owner's alone.
    os.umask(0o077)
    load_env_file(BASE_DIR)
    limit_malloc_arenas()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitorsite.settings")
    try:
        options = server_options()
        processes = web_processes()
        if args.check_config:
            # The whole site loads, in this process: nothing is forked for a check.
            from monitorsite.wsgi import application  # noqa: F401
        else:
            # The settings, with every variable they read, and the site's code load now;
            # each web process sets up its logging and connections after the fork
            # (see ``serve_in_child``).
            preload_site(with_cluster=args.with_cluster)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        return 2
    if args.check_config:
        return 0
    from monitorsite.dbfiles import mark_site_running

    try:
        # Held by this process and, through the fork, by every web process: a restore
        # refuses while any of them runs.
        mark_site_running()
    except OSError as exc:
        sys.stderr.write(f"Cannot take the running-site lock {exc.filename}: {exc.strerror or exc}\n")
        return 2
    from monitorsite.health import mark_started

    # The task cluster starting beside it gets its first minute before health calls it down.
    # Here, not in each web process: a web process started again must not restart that minute.
    mark_started()
    try:
        sockets = bind_sockets(options)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"Cannot listen on {options['listen']} (BIND): {exc}\n")
        return 2
    log_to_console_and_file()
    plural = "process" if processes == 1 else "processes"
    logger.info("site listening on %s with %d web %s", listening_at(sockets), processes, plural)
    return WebProcesses(processes, sockets, options, with_cluster=args.with_cluster).run()


def preload_site(*, with_cluster: bool = False) -> None:
    """The whole site loaded here, once, before any fork: the web processes share its pages.

    The apps, their models and admin, and the URLs (every view, the API and its schema's imports)
    load in the main process without configuring logging (each web process configures its own,
    with its own Loki shipper thread) and without a database connection (each web process opens
    its own). Measured after 50,000 trades and 200 reads (``bench/footprint.py``): 44 MiB less
    for two web processes than loading the site in each after the fork.
    """
    from django.apps import apps
    from django.conf import settings
    from django.db import connections
    from django.urls import get_resolver

    # django-q2 gives its logger a console handler of its own, and stops it propagating, when
    # nothing handles it as it is imported: loaded here, before the web processes configure
    # logging, its lines ("Enqueued") would have gone to the console instead of the file log and
    # Loki. A handler that does nothing keeps that from happening; the records still propagate.
    logging.getLogger("django-q").addHandler(logging.NullHandler())
    apps.populate(settings.INSTALLED_APPS)
    get_resolver().url_patterns  # noqa: B018
    if with_cluster:
        from monitorsite.management.commands.qcluster import load_tasks

        load_tasks()
    connections.close_all()
    share_with_forks()


def log_to_console_and_file() -> None:
    """The main process's lines (a web process died, started again) on the console and in the file log.

    Not Loki: its shipper is a thread, and this process forks, so each web process
    ships its own lines, among them one when it replaces a process that died.
    """
    from django.conf import settings

    from monitor_client.logsetup import LOG_FORMAT, file_handler

    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(), file_handler(settings.LOG_DIR, "monitorsite")]
    root = logging.getLogger()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)


@dataclass
class Slot:
    """One of the ``WEB_PROCESSES`` places: the web process in it, and when to fill it again."""

    pid: int | None = None
    started_at: float = 0.0
    backoff: float = 0.0  # seconds waited before the last start; doubles while starts fail fast
    due: float = 0.0  # monotonic time of the next start, while empty
    replaces: str = ""  # the process that died, for the first line of the next one


class WebProcesses:
    """The main process: forks the web processes, starts one again when it dies, stops them all.

    Signals are handled through a wake-up pipe: the handlers only record, the loop
    does the work (reaping, starting, stopping) between its waits.
    """

    def __init__(
        self, count: int, sockets: list[socket.socket], options: dict[str, Any], *, with_cluster: bool = False
    ) -> None:
        self.slots = [Slot() for _ in range(count)]
        self.sockets = sockets
        self.options = options
        self.stopping = False
        self.pid = os.getpid()
        self.with_cluster = with_cluster
        # The task cluster's main process while it runs, and its process group (it leads one:
        # its sentinel and workers are in it, and stay there if it is killed).
        self.cluster: int | None = None
        self.cluster_group: int | None = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)

    def run(self) -> int:
        signal.set_wakeup_fd(self._wake_write)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGCHLD, self._on_child)
        status = 0
        try:
            if self.with_cluster:
                self._start_cluster()
            while not self.stopping:
                status = self._reap()
                if status:
                    break
                self._start_due()
                self._sleep()
        finally:
            self._stop_all()
        return status

    def _on_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _on_child(self, signum: int, frame: Any) -> None:
        pass  # the wake-up pipe ends the loop's wait; the loop reaps

    def _sleep(self) -> None:
        """Until a signal arrives or the next empty slot is due (at most a minute)."""
        now = time.monotonic()
        due = [slot.due - now for slot in self.slots if slot.pid is None]
        self._wait(max(0.0, min(due, default=60.0)))

    def _wait(self, timeout: float) -> None:
        """Until a signal arrives (its byte in the wake-up pipe, read here) or ``timeout`` seconds pass."""
        select.select([self._wake_read], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid is None and slot.due <= now and not self.stopping:
                self._start(slot)

    def _start(self, slot: Slot) -> None:
        # Signals wait while the child changes its handlers, so none reaches it half way.
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            slot.started_at = time.monotonic()
            self._died(slot, None, f"could not be started ({exc.strerror or exc})")
            return
        if pid == 0:
            signal.set_wakeup_fd(-1)
            os.close(self._wake_read)
            os.close(self._wake_write)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            serve_in_child(self.sockets, self.options, self.pid, slot.replaces)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        slot.pid, slot.started_at, slot.replaces = pid, time.monotonic(), ""

    def _start_cluster(self) -> None:
        """Fork the task cluster (``manage.py qcluster``'s work) in a process group of its own."""
        blocked = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            raise
        if pid == 0:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            os.close(self._wake_read)
            os.close(self._wake_write)
            for sock in self.sockets:
                sock.close()
            for signum in blocked:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            run_cluster_in_child(self.pid)
        with contextlib.suppress(OSError):  # the child may have done it already
            os.setpgid(pid, pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        self.cluster = self.cluster_group = pid

    def _reap(self) -> int:
        """Empty the slot of every web process that ended; non-zero: stop the server with this status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 0
            if pid == 0:
                return 0
            if pid == self.cluster:
                self.cluster = None
                if self.stopping:
                    continue
                logger.error("the task cluster (process %d) %s; stopping the site", pid, _ending(status))
                return 1
            slot = next((slot for slot in self.slots if slot.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            if self.stopping:
                continue
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == CONFIGURATION_ERROR:
                logger.error("web process %d could not load the site (see above); stopping the server", pid)
                return 2
            self._died(slot, pid, _ending(status))

    def _died(self, slot: Slot, pid: int | None, how: str) -> None:
        """Log the death (or failed fork) and set when the slot is filled again."""
        now = time.monotonic()
        lived = now - slot.started_at
        if lived < QUICK_DEATH_SECONDS:
            slot.backoff = min(MAX_BACKOFF_SECONDS, slot.backoff * 2 or FIRST_BACKOFF_SECONDS)
        else:
            slot.backoff = 0.0
        slot.due = now + slot.backoff
        slot.replaces = f"{pid}, which {how}" if pid else ""
        when = f"in {slot.backoff:g} s" if slot.backoff else "now"
        if pid:
            logger.warning("web process %d %s after %.1f s; starting another %s", pid, how, lived, when)
        else:
            logger.error("a web process %s; trying again %s", how, when)

    def _stop_all(self) -> None:
        """SIGTERM to every web process; SIGKILL to any still running after ``STOP_SECONDS``."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.stopping = True
        for sock in self.sockets:
            sock.close()  # the web processes keep their own copies until they close them
        self._signal_all(signal.SIGTERM)
        cluster_deadline = time.monotonic() + CLUSTER_STOP_SECONDS
        self._signal_cluster(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while self._running() and time.monotonic() < deadline:
            self._reap()
            if self._running():
                self._wait(0.1)
        if self._running():
            logger.warning(
                "web processes %s still running after %d s; killing", self._running(), STOP_SECONDS
            )
            self._signal_all(signal.SIGKILL)
            for pid in self._running():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        self._stop_cluster(cluster_deadline)
        logger.info("web server stopped")

    def _signal_cluster(self, signum: int) -> None:
        """To the cluster's main process, which stops its sentinel and workers; to its whole group
        when it has gone (what it left behind)."""
        if self.cluster_group is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.cluster is not None:
                os.kill(self.cluster, signum)
            else:
                os.killpg(self.cluster_group, signum)

    def _cluster_left(self) -> bool:
        """Whether any process of the cluster's group is still there."""
        if self.cluster_group is None:
            return False
        try:
            os.killpg(self.cluster_group, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _stop_cluster(self, deadline: float) -> None:
        """Until the cluster's workers have finished what they had taken, or ``deadline``; then SIGKILL."""
        while self._cluster_left() and time.monotonic() < deadline:
            self._reap()
            self._wait(0.1)
        if self._cluster_left():
            logger.warning("the task cluster still running after %d s; killing", CLUSTER_STOP_SECONDS)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.cluster_group, signal.SIGKILL)  # type: ignore[arg-type]
        if self.cluster is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.cluster, 0)
            self.cluster = None

    def _running(self) -> list[int]:
        return [slot.pid for slot in self.slots if slot.pid is not None]

    def _signal_all(self, signum: int) -> None:
        for pid in self._running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def run_cluster_in_child(parent: int) -> NoReturn:
    """The task cluster's life after the fork: its logging, then ``manage.py qcluster``'s work.

    It shares the site the main process loaded (``preload_site``). It stops (SIGTERM) if the main
    process dies, and never returns into the main process's code (``live_and_exit``)."""

    def cluster() -> int:
        _stop_when_parent_dies(parent)
        import django
        from django.core.management import call_command

        django.setup()  # the apps are loaded; this configures this process's logging
        call_command("qcluster")
        return 0

    live_and_exit(cluster)


def _stop_when_parent_dies(parent: int) -> None:
    """SIGTERM from the kernel when the main process dies (Linux): the cluster stops as it would on
    Ctrl-C rather than run unsupervised."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request above
        raise SystemExit(0)


def _ending(status: int) -> str:
    """How a process ended, from its wait status: "was killed by SIGKILL", "exited with status 1"."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def serve_in_child(
    sockets: list[socket.socket], options: dict[str, Any], parent: int, replaces: str
) -> NoReturn:
    """The life of one web process after the fork: Django, then waitress on the inherited sockets.

    Never returns into the main process's code (``live_and_exit``).
    """
    live_and_exit(lambda: _serve(sockets, options, parent, replaces))


def live_and_exit(work: Callable[[], int]) -> NoReturn:
    """A forked child's whole life: ``work()``, then ``os._exit`` with its status once the child's
    log lines (Loki's queue too) are flushed; never returns into the main process's code."""
    status = 1
    try:
        status = work()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        status = CONFIGURATION_ERROR
    except SystemExit as exc:  # SIGTERM before the work ran, or its main process already gone
        status = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _serve(sockets: list[socket.socket], options: dict[str, Any], parent: int, replaces: str) -> int:
    # django.setup(): the apps, and this process's logging (its own Loki shipper).
    from monitorsite.wsgi import application

    if replaces:
        logger.info("web process %d started in place of %s", os.getpid(), replaces)
    # The URLs (and with them every view, the admin and the API schema's
    # imports) load now, not on the first client's request.
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018
    server = build_server(application, options, sockets)
    threading.Thread(target=_stop_when_orphaned, args=(parent,), name="parent-watch", daemon=True).start()
    # Until SIGTERM or SIGINT, which end the loop: waitress then closes the
    # connections and lets its worker threads finish what they are answering.
    server.run()
    return 0


def _stop_when_orphaned(parent: int) -> None:
    """A web process whose main process died (SIGKILL, OOM) stops rather than serve unsupervised."""
    while os.getppid() == parent:
        time.sleep(1)
    logger.warning("the web server's main process %d has gone; this web process stops", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def _stop(signum: int, frame: Any) -> None:
    # A second signal must not interrupt the shutdown the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
