"""gunicorn settings for the site; every value can be overridden on the command line.

Read through ``monitorsite/env.py`` like every other setting: ``.env`` is loaded,
an empty value means the default, and a bad one stops start-up with one line.
"""

import multiprocessing
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from monitorsite.env import env_int, env_str, load_env_file

load_env_file(Path(__file__).resolve().parent)

try:
    bind = env_str("BIND", "127.0.0.1:8000")
    # Sync workers: requests are short and SQLite serialises writes anyway.
    workers = env_int("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count(), minimum=1)
    accesslog = env_str("GUNICORN_ACCESS_LOG")
except ImproperlyConfigured as exc:
    sys.stderr.write(f"Configuration error: {exc}\n")
    sys.exit(2)

timeout = 30
graceful_timeout = 10
# Loading the app once before forking keeps start-up fast and memory shared.
preload_app = True
errorlog = "-"
# gunicorn 27's control socket defaults to one path per user; two sites (or the
# tests' servers) on one machine would take it from each other. Nothing here uses it.
control_socket_disable = True
