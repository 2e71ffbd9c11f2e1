"""Which database and task broker the site uses: SQLite and the ORM broker unless
``DATABASE_URL`` and ``REDIS_URL`` say otherwise (docs/SCALING.md).

Read by ``monitorsite.settings`` as it loads, so a malformed URL stops start-up with
one line naming the variable. Neither URL is echoed back: both may carry a password.
Django-free apart from ``ImproperlyConfigured``, like ``monitorsite.env``.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
REDIS_SCHEMES = ("redis", "rediss", "unix")
# How long a connection attempt may take before the request (or health) gives up.
CONNECT_TIMEOUT_SECONDS = 10
DATABASE_URL_FORM = "postgres://user:password@host:5432/name"


def postgres_database(url: str, *, conn_max_age: int) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` for a ``postgres://user:password@host:port/name`` URL.

    Parsed by dj-database-url; checked here first, so that anything but a PostgreSQL URL
    with a database name is ``ImproperlyConfigured`` naming ``DATABASE_URL`` (never its
    value). Query parameters are libpq's connection options (``?sslmode=require``).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL is not a URL: {DATABASE_URL_FORM}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ImproperlyConfigured(
            "DATABASE_URL must be a postgres:// URL (PostgreSQL 15 or newer); "
            "leave it unset for SQLite (DATABASE_PATH)"
        )
    if not unquote(parts.path.lstrip("/")) or "/" in parts.path.lstrip("/"):
        raise ImproperlyConfigured(f"DATABASE_URL must name the database: {DATABASE_URL_FORM}")
    try:
        database = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    except (ValueError, dj_database_url.ParseError):
        raise ImproperlyConfigured(f"DATABASE_URL cannot be read: {DATABASE_URL_FORM}") from None
    database["ENGINE"] = "django.db.backends.postgresql"
    # A kept connection that the server dropped (restart, failover) is replaced, not reused
    # (CONN_HEALTH_CHECKS); a server that does not answer fails the request in seconds.
    database.setdefault("OPTIONS", {}).setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    database["PORT"] = str(database.get("PORT") or "")
    database["TEST"] = {}
    return database


def redis_url(url: str) -> str:
    """``REDIS_URL`` checked: a ``redis://``, ``rediss://`` or ``unix://`` URL that redis-py can read."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ImproperlyConfigured("REDIS_URL is not a URL: redis://host:6379/0") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ImproperlyConfigured(
            "REDIS_URL must be a redis://, rediss:// or unix:// URL; leave it unset for the ORM broker"
        )
    database = parts.path.lstrip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ImproperlyConfigured("REDIS_URL's database must be a number: redis://host:6379/0")
    return url


def describe_database(settings_dict: dict[str, Any]) -> str:
    """Which database, without its user or password: what health (answered to anyone) shows.

    SQLite's file by name only (its folder is the server's business); PostgreSQL's database,
    host and port, which an operator needs to tell nodes and servers apart.
    """
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"SQLite {PurePath(settings_dict['NAME']).name}"
    host = settings_dict.get("HOST") or "local socket"
    port = settings_dict.get("PORT")
    where = f"{host}:{port}" if port and not host.startswith("/") else host
    return f"PostgreSQL {settings_dict['NAME']} at {where}"


def describe_broker(redis: str | None) -> str:
    """The task broker, without a password: ``Redis host:port/db`` or the ORM broker."""
    if not redis:
        return "the database (django-q2 ORM broker)"
    parts = urlsplit(redis)
    if parts.scheme == "unix":
        return f"Redis {parts.path}"
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    return f"Redis {host}:{port}/{parts.path.lstrip('/') or '0'}"
