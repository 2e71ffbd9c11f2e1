"""The site's web server: ``python -m monitorsite.serve`` (what ``scripts/serve.sh`` runs).

waitress, a buffering server: its one I/O thread reads every request whole
(headers and body, a large body spooled to a temp file) before one of the
worker threads sees it. A client that sends half a request and stalls, or a
body shorter than its Content-Length, costs an idle socket, never a worker,
and is dropped after ``WEB_CLIENT_TIMEOUT`` seconds without a byte. With
gunicorn's sync workers (before) 4 such clients held all 4 workers for the
30 s worker timeout and health took 30 s for everyone else; gunicorn's gthread
worker only protects against a client that sends nothing at all (a thread
then blocks reading the rest of the headers). See docs/web-server.md.

Settings (environment, or ``.env``, through ``monitorsite/env.py``):
``BIND`` (host:port, default 127.0.0.1:8000), ``WEB_CONCURRENCY`` (worker
threads, default 8), ``WEB_CLIENT_TIMEOUT`` (seconds, default 10),
and ``WEB_MAX_CONNECTIONS`` (default 1000).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from monitorsite.env import env_int, env_str, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent
# What waitress buffers per request at most. Django refuses bodies over
# DATA_UPLOAD_MAX_MEMORY_SIZE (10 MB) with the API's JSON answer; this bound
# only keeps a client from spooling gigabytes to disk, and is answered with
# JSON too (see ``JsonErrorTask``).
MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024
MAX_REQUEST_HEADER_BYTES = 64 * 1024


def server_options() -> dict[str, Any]:
    """waitress's adjustments from the environment; ``ImproperlyConfigured`` names a bad variable."""
    client_timeout = env_int("WEB_CLIENT_TIMEOUT", 10, minimum=1)
    return {
        "listen": env_str("BIND", "127.0.0.1:8000"),
        # Requests at once. SQLite serialises writes, so more threads mostly
        # help reads that wait on a busy database; each keeps its own connection.
        "threads": env_int("WEB_CONCURRENCY", 8, minimum=1),
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


def build_server(application: Any, options: dict[str, Any]) -> Any:
    """A waitress server whose own error answers are JSON and whose slow requests have a deadline."""
    from waitress import create_server
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
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

    server = create_server(application, **options)
    server.channel_class = SiteChannel
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitorsite.serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check-config", action="store_true", help="read the settings and the site, then exit"
    )
    args = parser.parse_args(argv)
    # Files the site creates (the database, its WAL, logs) are the owner's alone.
    os.umask(0o077)
    load_env_file(BASE_DIR)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitorsite.settings")
    try:
        options = server_options()
        from monitorsite.wsgi import application
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        return 2
    if args.check_config:
        return 0
    from monitorsite.dbfiles import mark_site_running

    try:
        mark_site_running()
    except OSError as exc:
        sys.stderr.write(f"Cannot take the running-site lock {exc.filename}: {exc.strerror or exc}\n")
        return 2
    from monitorsite.health import mark_started

    # The task cluster starting beside it gets its first minute before health calls it down.
    mark_started()
    # The URLs (and with them every view, the admin and the API schema's
    # imports) load now, not on the first client's request.
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018
    try:
        server = build_server(application, options)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"Cannot listen on {options['listen']} (BIND): {exc}\n")
        return 2
    # SIGTERM (serve.sh, docker stop) ends the loop like Ctrl-C: waitress then
    # lets the worker threads finish what they are answering.
    signal.signal(signal.SIGTERM, _stop)
    server.print_listen("site listening on http://{}:{}")
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
    return 0


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
