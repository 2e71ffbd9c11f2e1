"""gunicorn settings for the site; every value can be overridden on the command line."""

import multiprocessing
import os
from pathlib import Path

from dotenv import load_dotenv

# BIND and WEB_CONCURRENCY may be set in .env like every other setting.
load_dotenv(Path(__file__).resolve().parent / ".env", override=False)

# "or": an empty value (as .env.example has them) means the default, not "".
bind = os.environ.get("BIND") or "127.0.0.1:8000"
# Sync workers: requests are short and SQLite serialises writes anyway.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count())
timeout = 30
graceful_timeout = 10
# Loading the app once before forking keeps start-up fast and memory shared.
preload_app = True
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# gunicorn 27's control socket defaults to one path per user; two sites (or the
# tests' servers) on one machine would take it from each other. Nothing here uses it.
control_socket_disable = True
