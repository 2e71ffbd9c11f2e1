"""Copy a SQLite site's data into an empty PostgreSQL database, and prove the copy (docs/SCALING.md).

Rows are read through the ORM on the SQLite side, so every value comes back as the Python type
Django stores (aware datetimes, ``Decimal``, ``bool``, JSON, UUID), and written with PostgreSQL's
``COPY`` (the fastest way in), ids as they were. All in one transaction: a copy that fails leaves
the target as it was. The target's foreign keys are ``DEFERRABLE INITIALLY DEFERRED`` (Django's
default on PostgreSQL), so tables go in any order and are checked at the commit.

What is copied: every table of every installed app (trades and bots and their keys, alert rules,
channels, alerts and their history, halts, backup records, users, groups and permissions, the
admin's log, django-q2's schedules, axes' lockouts), except what is volatile or made anew:
sessions (users log in again), django-q2's queue and task results (the ORM broker's; schedules
make new tasks), and ``django_migrations`` (``migrate`` writes the target's own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import DatabaseError, connections, models, transaction
from django.db.migrations.executor import MigrationExecutor
from psycopg.types.json import Jsonb

from backups.site_lock import SiteRunning, held_for_restore
from backups.snapshot import BackupError
from trades.models import Bot, Trade

SOURCE = "copy_source"
# Left out of the copy, and why: see the module docstring.
SKIPPED_TABLES = frozenset({"django_session", "django_q_ormq", "django_q_task", "django_migrations"})
# What makes a database "not empty": rows a user made. Other tables may hold rows that ``migrate``
# made (content types, permissions, the default alert rules): the copy replaces every copied
# table's rows with the source's, ids kept, so that what points at them stays right.
USER_DATA = (Trade, Bot, User)
_CHUNK = 5000


class CopyError(Exception):
    """The copy cannot start, failed, or does not match; the message is one line."""


@dataclass(frozen=True)
class Copied:
    rows: dict[str, int]  # per table, equal on both sides
    days_checked: int  # (bot, trading day) summaries compared


def copied_models() -> list[type[models.Model]]:
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and model._meta.db_table not in SKIPPED_TABLES
    ]


@contextmanager
def source_database(path: Path) -> Iterator[None]:
    """The SQLite file at ``path`` as the connection ``SOURCE``, read-only, for as long as the copy runs."""
    if not path.is_file():
        raise CopyError(f"there is no SQLite database at {path} (give it with --from PATH)")
    settings_dict = dict(connections.databases["default"])
    settings_dict.update(
        ENGINE="django.db.backends.sqlite3",
        NAME=f"file:{path.resolve()}?mode=ro",
        OPTIONS={"uri": True},
        HOST="",
        PORT="",
        USER="",
        PASSWORD="",
        CONN_MAX_AGE=0,
        CONN_HEALTH_CHECKS=False,
    )
    connections.databases[SOURCE] = settings_dict
    try:
        yield
    finally:
        connections[SOURCE].close()
        del connections[SOURCE]
        del connections.databases[SOURCE]


def copy_site(path: Path) -> Copied:
    """Migrate the PostgreSQL database of ``DATABASE_URL``, copy the SQLite site at ``path`` into it,
    and check the copy. Refuses a target that holds data, a source that is not migrated as far as
    this version, and a source a running site holds (the site lock of ``backups.site_lock``).
    """
    target = connections["default"]
    if target.vendor != "postgresql":
        raise CopyError("DATABASE_URL is not set: set it to the empty PostgreSQL database to copy into")
    try:
        with source_database(path), held_for_restore(path):
            # Both before migrate: a refused copy leaves the target as it came.
            _check_target_empty()  # a database of another program stays untouched
            _check_source_migrated()
            call_command("migrate", verbosity=0, interactive=False)
            _check_target_empty()
            # The check inside the transaction: a copy that does not match is rolled back too.
            with transaction.atomic():
                _copy_tables()
                return _check_copy()
    except SiteRunning:
        raise CopyError(
            f"a site is running on {path}: stop its web server and task cluster first, "
            "so that no trade arrives during the copy"
        ) from None
    except BackupError as exc:  # the lock file beside the SQLite file cannot be made
        raise CopyError(str(exc)) from None
    except DatabaseError as exc:
        raise CopyError(f"the copy failed and was rolled back: {str(exc).strip().splitlines()[0]}") from None


def _check_source_migrated() -> None:
    """The source must hold every migration of this version: what ``migrate`` would do to it is missing."""
    source = connections[SOURCE]
    try:
        tables = source.introspection.table_names()
    except DatabaseError:
        tables = []
    if "django_migrations" not in tables:
        raise CopyError("the SQLite file is not a database of this site (no django_migrations)")
    executor = MigrationExecutor(source)
    missing = [migration for migration, _ in executor.migration_plan(executor.loader.graph.leaf_nodes())]
    if missing:
        first = missing[0]
        raise CopyError(
            f"the SQLite database lacks {len(missing)} migration(s) of this version (first "
            f"{first.app_label}.{first.name}): run manage.py migrate on it first (with DATABASE_URL unset)"
        )


def _check_target_empty() -> None:
    existing = set(connections["default"].introspection.table_names())
    with connections["default"].cursor() as cursor:
        for model in USER_DATA:
            table = model._meta.db_table
            if table not in existing:
                continue
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            count = cursor.fetchone()[0]
            if count:
                raise CopyError(
                    f"PostgreSQL {connections['default'].settings_dict['NAME']} is not empty ({table} has "
                    f"{count} rows): copy_to_postgres copies into an empty database only"
                )


def _copy_tables() -> None:
    target = connections["default"]
    with target.cursor() as cursor:
        # What migrate made goes, in the same transaction (a failed copy brings it back).
        cursor.execute("TRUNCATE " + ", ".join(f'"{model._meta.db_table}"' for model in copied_models()))
        raw = cursor.cursor  # psycopg's own cursor, for COPY
        for model in copied_models():
            fields = model._meta.concrete_fields
            columns = ", ".join(f'"{field.column}"' for field in fields)
            is_json = [isinstance(field, models.JSONField) for field in fields]
            rows = model._base_manager.using(SOURCE).order_by().values_list(*(f.attname for f in fields))
            with raw.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
                for row in rows.iterator(chunk_size=_CHUNK):
                    copy.write_row(
                        [
                            Jsonb(value) if json and value is not None else value
                            for value, json in zip(row, is_json, strict=True)
                        ]
                    )
        # Each id column's sequence to its table's highest id, so the next insert gets a new one.
        for statement in target.ops.sequence_reset_sql(no_style(), copied_models()):
            cursor.execute(statement)


def _check_copy() -> Copied:
    counts: dict[str, int] = {}
    for model in copied_models():
        table = model._meta.db_table
        source = model._base_manager.using(SOURCE).count()
        copied = model._base_manager.using("default").count()
        if source != copied:
            raise CopyError(
                f"the copy does not match: {table} has {source} rows in SQLite and {copied} in PostgreSQL"
            )
        counts[table] = copied
    days = 0
    pairs = Trade.objects.using(SOURCE).order_by().values_list("bot_id", "trading_day").distinct()
    for bot_id, day in sorted(pairs):
        if _summary(SOURCE, bot_id, day) != _summary("default", bot_id, day):
            raise CopyError(f"the copy does not match: the daily summary of bot #{bot_id} for {day} differs")
        days += 1
    return Copied(rows=counts, days_checked=days)


def _summary(alias: str, bot_id: int, day: dt.date) -> Any:
    return Trade.objects.using(alias).filter(bot_id=bot_id).daily_summary(day)
