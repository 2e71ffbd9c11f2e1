"""Settings for the monitoring site, read from the environment.

Every variable is optional (see ``.env.example``); with none set the site runs
on SQLite, the django-q2 ORM broker and local backups. A ``.env`` file in the
project root is read first; variables already in the environment win.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from alerts.outbound import MASKED_LOGGERS
from alerts.transports import environment_settings
from alerts.transports.telegram import command_users
from backups.providers import PROVIDERS
from monitor_client.logsetup import logging_config
from monitor_client.wire import MAX_BODY_BYTES
from monitorsite.backends import describe_broker, describe_database, postgres_database, redis_url
from monitorsite.env import (
    bearer_token,
    env_bool,
    env_checked,
    env_choice,
    env_int,
    env_list,
    env_path,
    env_str,
    env_timezone,
    env_url,
    load_env_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_env_file(BASE_DIR)

DEBUG = env_bool("DJANGO_DEBUG", False)
# Nothing here creates a folder or a file: ``manage.py prepare_site`` (run by
# scripts/start.sh) makes data/, the log folder and the secret key file.
DATA_DIR = BASE_DIR / "data"
DATABASE_PATH = env_path("DATABASE_PATH", DATA_DIR / "trades.db", base=BASE_DIR)
# Exchange sessions computed once from the calendar library and kept (trades/sessions.py).
SESSIONS_DIR = env_path("SESSIONS_DIR", DATABASE_PATH.with_name("sessions"), base=BASE_DIR)
LOG_DIR = env_path("LOG_DIR", DATA_DIR / "logs", base=BASE_DIR)
SECRET_KEY_FILE = DATA_DIR / ".secret_key"


def _secret_key() -> str:
    """The key from the environment, else the one ``prepare_site`` wrote; empty when neither exists.

    An empty key fails the system check ``monitorsite.E001`` with a message saying how to fix it.
    """
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    try:
        return SECRET_KEY_FILE.read_text().strip()
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is not set and {SECRET_KEY_FILE} cannot be read ({exc.strerror})"
        ) from None


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = [
    f"{scheme}://{host}" for host in ALLOWED_HOSTS if host not in ("*",) for scheme in ("http", "https")
]

MARKET_TIMEZONE = env_timezone("MARKET_TIMEZONE", "America/New_York")
# A new bot's calendar and the site's own (an exchange code, 24/7 or 24/5), checked by
# `manage.py check` (trades.apps): the site's calendar runs in MARKET_TIMEZONE.
MARKET_CALENDAR = env_str("MARKET_CALENDAR", "XNYS") or "XNYS"

INSTALLED_APPS = [
    # django.contrib.admin with the cockpit as its index (monitorsite/admin_site.py).
    "monitorsite.apps.MonitorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Before django_q: its qcluster command wraps django-q2's (monitorsite/management/commands/qcluster.py).
    "monitorsite",
    "django_q",
    "trades",
    "alerts",
    "backups",
    # Locks the admin login for a user and address after repeated wrong passwords.
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "monitorsite.middleware.APITimesInUTC",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# django-axes checks the lock before the password: a locked user+address is refused
# even with the right password until the cool-off has passed (or an admin unlocks it
# under Axes > Access attempts).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# Per user and address together: a guesser cannot lock the owner out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
# The address is REMOTE_ADDR; behind a reverse proxy the web server sets it from
# X-Forwarded-For when TRUSTED_PROXY names the proxy (monitorsite/serve.py).

ROOT_URLCONF = "monitorsite.urls"
WSGI_APPLICATION = "monitorsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite in WAL mode: readers never block the writer. Write transactions
# start IMMEDIATE so they queue on the busy timeout instead of failing with
# "database is locked" when a read transaction tries to upgrade.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
# Each connection's own page cache (SQLite's default is 2 MiB). Every thread of every process keeps
# a connection, and the pages are in the operating system's file cache anyway: at the default the
# caches took about 15 MiB of each web process after 50,000 trades (bench/footprint.py).
SQLITE_CACHE_KIB = 256
# Keep each worker's connection: opening one (PRAGMAs on SQLite, a TCP and auth
# round trip on PostgreSQL) costs more than the single-trade insert itself.
CONN_MAX_AGE = 600
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    # PostgreSQL (docs/SCALING.md): several web processes and clusters on several machines.
    DATABASES = {"default": postgres_database(DATABASE_URL, conn_max_age=CONN_MAX_AGE)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATABASE_PATH),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000};"
                    "PRAGMA foreign_keys=ON;"
                    f"PRAGMA cache_size=-{SQLITE_CACHE_KIB};"
                ),
            },
            "TEST": {"NAME": str(DATA_DIR / f"test_trades_{os.getpid()}.db")},
        }
    }
DATABASE_DESCRIPTION = describe_database(DATABASES["default"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Stored times are UTC; the admin shows them in the market's time zone.
TIME_ZONE = MARKET_TIMEZONE
USE_I18N = True
USE_TZ = True
# Times to the second with the zone's name, dates with the weekday (monitorsite/formats/en/).
FORMAT_MODULE_PATH = ["monitorsite.formats"]

# Messages live in the session, not a cookie: a newly issued API key is shown
# once as a message, and a signed cookie is readable by anyone holding it.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# A batch of 1000 trades is ~250 KB; room for generous metadata, and a bound
# on what a single request can make the validator chew through.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
# Serve straight from the apps so the site works without a collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["trades.auth.BotKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["trades.auth.HasBotKey"],
    "DEFAULT_RENDERER_CLASSES": ["trades.renderers.APIJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["trades.parsers.BotJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "trades.negotiation.APIContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading bot monitor API",
    "DESCRIPTION": "What the trading bot reports to, and what dashboards read from.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # 3.1: its schemas are JSON Schema 2020-12, the dialect pydantic writes the trade
    # request schema in (3.0's exclusiveMinimum is a boolean beside minimum).
    "OAS_VERSION": "3.1.0",
    # A request schema apart from the answer's: required read-only fields such as an
    # event's id would otherwise look required of the bot.
    "COMPONENT_SPLIT_REQUEST": True,
    # Every endpoint also answers without its final slash; document it once.
    "PREPROCESSING_HOOKS": ["monitorsite.urls.documented_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "trades.schema.document_error_answers",
    ],
}

# django-q2: the ORM broker (the queue is a table in the same database) unless
# REDIS_URL names a Redis server, which several clusters on several machines share.
REDIS_URL = redis_url(env_str("REDIS_URL")) if env_str("REDIS_URL") else None
BROKER_DESCRIPTION = describe_broker(REDIS_URL)
Q_CLUSTER = {
    "name": "monitorsite",
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default"}),
    "workers": env_int("Q_WORKERS", 2, minimum=1),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "save_limit": 500,
    "catch_up": False,
    "poll": 0.5,
    "ack_failures": True,
    # Cron schedules ("16:05 on trading days") are in market time.
    "time_zone": MARKET_TIMEZONE,
}

# Heartbeats older than this mean the task cluster is not running.
CLUSTER_STALE_AFTER_SECONDS = 180
# For this long after the cluster starts, health says "starting" until its first heartbeat.
CLUSTER_STARTING_SECONDS = 60

# The alert channels' variables (DISCORD_WEBHOOK_URL, TELEGRAM_BOT_TOKEN, NTFY_URL, SLACK_WEBHOOK_URL,
# ALERT_EMAIL_TO, ALERT_WEBHOOK_URL …): each transport declares its own and their checks
# (alerts/transports/), so a new kind needs no line here. Each is a setting of its own name;
# a malformed one stops start-up with one line naming it.
globals().update(environment_settings(env_checked))
# Commands from the operator's phone (monitorsite/telegram/): off unless users are named; they
# are read with the default Telegram channel's bot token and answered in its chat only.
TELEGRAM_COMMAND_USERS: tuple[int, ...] = env_checked("TELEGRAM_COMMAND_USERS", command_users) or ()
if TELEGRAM_COMMAND_USERS and not (globals().get("TELEGRAM_BOT_TOKEN") and globals().get("TELEGRAM_CHAT_ID")):
    raise ImproperlyConfigured("TELEGRAM_COMMAND_USERS needs TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID set too")
# The anomaly rules' floors and minimum history (alerts/conf.py, docs/ALERTS.md).
ANOMALY_MIN_FILLS = env_int("ANOMALY_MIN_FILLS", 5, minimum=1)
ANOMALY_MIN_LOSS = env_int("ANOMALY_MIN_LOSS", 100, minimum=1)
ANOMALY_MIN_HISTORY_DAYS = env_int("ANOMALY_MIN_HISTORY_DAYS", 14, minimum=1, maximum=56)
# E-mail alerts go through Django's SMTP backend with Django's own settings.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive: set one of them")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "trading-monitor@localhost")
# Prometheus (monitorsite/metrics.py): GET /metrics answers only with this token as a Bearer token,
# and does not exist without it. Checked like the other secrets: never echoed.
METRICS_TOKEN: str | None = env_checked("METRICS_TOKEN", bearer_token)
LOKI_URL = env_url("LOKI_URL")
LOKI_USERNAME = env_str("LOKI_USERNAME")
LOKI_PASSWORD = env_str("LOKI_PASSWORD")

# Each provider reads and checks its own variables (OCI_*, AZURE_*, AWS_*, GCP_*)
# when first used: see backups/providers/ and .env.example.
CLOUD_STORAGE_PROVIDER = env_choice("CLOUD_STORAGE_PROVIDER", "local", tuple(PROVIDERS))
LOCAL_STORAGE_PATH = env_path("LOCAL_STORAGE_PATH", DATA_DIR / "backups", base=BASE_DIR)
DB_SYNC_ENABLED = env_bool("DB_SYNC_ENABLED", True)
DB_SYNC_INTERVAL = env_int("DB_SYNC_INTERVAL", 300, minimum=60)
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 30, minimum=1)
# gzip backups (objects named *.db.gz); restore reads either form.
BACKUP_COMPRESS = env_bool("BACKUP_COMPRESS", False)

# The bot's logging setup (monitor_client) with the site's name: a rotating file
# log always, Loki when LOKI_URL is set. dictConfig builds the handlers when
# Django sets up, not here; the shipper thread starts with the first record of
# each process, so each process of the site (web server, task cluster) has its own.
try:
    LOGGING = logging_config(
        "monitorsite",
        "INFO",
        log_dir=LOG_DIR,
        loki_url=LOKI_URL,
        loki_username=LOKI_USERNAME,
        loki_password=LOKI_PASSWORD,
        # django-axes logs every login at INFO (and itself in every command); locks are WARNINGs.
        loggers={"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
    )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# A flood of refused requests (401, 404, a bad Host) is logged as its first few
# lines and then one summary line a minute, on every handler (file, console,
# Loki): see monitorsite/logfilters.py.
LOGGING["filters"] = {"refusals": {"()": "monitorsite.logfilters.RefusalSummary", "interval": 60}}
for _handler in LOGGING["handlers"].values():
    _handler.setdefault("filters", []).append("refusals")
# Every secret an alert channel has used is masked in what these loggers write, a
# traceback included (alerts/outbound.py): urllib3 logs each request line, whose path
# may hold a token.
LOGGING["filters"]["hide_secrets"] = {"()": "alerts.outbound.HideSecrets"}
for _name in MASKED_LOGGERS:
    LOGGING["loggers"].setdefault(_name, {}).setdefault("filters", []).append("hide_secrets")
# The console (what scripts/start.sh shows) without a line per task unless asked for;
# the file log and Loki keep every line.
LOG_TASKS = env_bool("LOG_TASKS", False)
if not LOG_TASKS and "console" in LOGGING["handlers"]:
    LOGGING["filters"]["quiet_tasks"] = {"()": "monitorsite.logfilters.QuietTasks"}
    LOGGING["handlers"]["console"]["filters"].append("quiet_tasks")

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"

# Served over HTTPS (directly or behind a proxy that sets X-Forwarded-Proto):
# secure cookies, and plain HTTP redirected, except the health probe, which a
# container's check or a load balancer calls over plain HTTP.
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/?$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Browsers then refuse plain HTTP for this long; hard to undo, so a separate choice.
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0, minimum=0)
# Also every subdomain (only when every one of them serves HTTPS), and the browsers' preload list.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Both are the operator's choice for the whole domain (docs/DEPLOYMENT_GUIDE.md), not this
# site's: check --deploy's reminders about them are silenced while they are left off.
SILENCED_SYSTEM_CHECKS = [
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
SECURE_CONTENT_TYPE_NOSNIFF = True
