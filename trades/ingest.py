"""Storing a batch of validated trades: fast, all-or-nothing, idempotent by ``external_id``.

The columns come from the model's concrete fields, each adapted the way Django's
backend (SQLite or PostgreSQL) adapts that field type, so a field added to ``Trade`` is stored
here too (``test_every_trade_field_is_sent_or_computed`` keeps the validator and
``COMPUTED`` in step with the model). The SQL is ``INSERT ... ON CONFLICT ... DO
NOTHING RETURNING`` on both: a batch that two web nodes store at the same moment is
stored once (the unique index decides; the other sees repeats).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections, models, transaction
from django.utils import timezone

from trades.market import calendar_for
from trades.signals import trades_recorded

if TYPE_CHECKING:
    from trades.models import Bot

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rows per statement at most, and ids per look-up. A batch goes in chunks whose sizes are powers
# of two (1000 rows: 128 x 7, 64, 32, 8), so a connection prepares at most eight shapes of each
# statement whatever sizes the bots send: each shape stays in the connection's statement cache
# (a 500-row INSERT is about 0.9 MB of SQLite's memory), and one per batch size once grew a web
# process by tens of MiB.
CHUNK = 128


def chunks(items: Sequence[T], largest: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive chunks of ``largest``, then of the powers of two below it."""
    start, size = 0, largest
    while start < len(items):
        while size > len(items) - start:
            size //= 2
        yield items[start : start + size]
        start += size


# Fields the site fills in; every other concrete field comes from the validated trade.
COMPUTED = ("bot", "trading_day", "received_at")


def _naive_utc_text(moment: dt.datetime) -> str:
    # Django's SQLite backend stores aware times as naive UTC text, str(naive datetime).
    return str(moment.astimezone(dt.UTC).replace(tzinfo=None))


def _json_text(value: Any) -> str:
    # As Django's JSONField adapts it (json.dumps, default separators); most trades carry no metadata.
    return "{}" if value == {} else json.dumps(value)


# How Django's SQLite backend adapts each field type (None: stored as given).
# A field type missing here fails loudly on first use rather than storing
# something the ORM would not.
_ADAPTERS: dict[str, Callable[[Any], Any] | None] = {
    "CharField": None,
    "TextField": None,
    "BigIntegerField": None,
    "IntegerField": None,
    "PositiveIntegerField": None,
    "FloatField": None,
    "BooleanField": int,
    "DecimalField": str,
    "DateTimeField": _naive_utc_text,
    "DateField": dt.date.isoformat,
    "JSONField": _json_text,
}


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)


# PostgreSQL (psycopg 3) takes the Python values themselves; JSON goes as text, which
# the server casts to jsonb (psycopg sends a str untyped).
_POSTGRES_ADAPTERS: dict[str, Callable[[Any], Any] | None] = {
    **dict.fromkeys(_ADAPTERS),
    "BooleanField": bool,
    "DateTimeField": _aware,
    "JSONField": _json_text,
}


@dataclass(frozen=True)
class BatchResult:
    """What storing a batch did: one id per trade sent, and which of them are new."""

    ids: list[int]
    new_ids: list[int]

    @property
    def created(self) -> int:
        return len(self.new_ids)

    @property
    def duplicates(self) -> int:
        return len(self.ids) - len(self.new_ids)


def insert_fields(model: type[models.Model]) -> list[models.Field]:  # type: ignore[type-arg]
    """Every stored column of ``model`` but the primary key, in model order."""
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def store_batch(
    model: type[models.Model], using: str, bot: Bot, trades: Sequence[dict[str, Any]]
) -> BatchResult:
    """Store new trades of ``bot`` all-or-nothing and announce them after commit.

    ``trades`` are validated dicts (see ``trades.validation``). A trade whose
    ``external_id`` is already stored for this bot, or repeats an earlier one in
    the same batch, is not stored again; its existing id is returned. A trade
    that a concurrent request stored first is a repeat, never an error.
    """
    unique: dict[str, dict[str, Any]] = {}
    for trade in trades:
        unique.setdefault(trade["external_id"], trade)
    # Built before the transaction, so SQLite's write lock covers only the SQL.
    sqlite = connections[using].vendor == "sqlite"
    rows = _rows(model, bot, list(unique.values()), _ADAPTERS if sqlite else _POSTGRES_ADAPTERS)
    with transaction.atomic(using=using):
        ids = _insert(model, using, rows)
        new_keys = set(ids)
        repeats = [key for key in unique if key not in new_keys]
        if repeats:
            ids.update(_ids_by_external_id(model, using, bot, repeats))
        new_ids = [ids[key] for key in unique if key in new_keys]
        if new_ids:
            # A bot that trades runs.
            bot.record_running(max(unique[key]["executed_at"] for key in new_keys), using=using)
            transaction.on_commit(lambda: _announce(model, bot, new_ids), using=using)
    return BatchResult(ids=[ids[t["external_id"]] for t in trades], new_ids=new_ids)


def _announce(model: type[models.Model], bot: Bot, new_ids: list[int]) -> None:
    # The trades are committed: a listener's failure is logged, never raised into the request.
    for receiver, result in trades_recorded.send_robust(sender=model, bot=bot, trade_ids=new_ids):
        if isinstance(result, Exception):
            logger.error(
                "trades_recorded listener %s failed: %s", getattr(receiver, "__qualname__", receiver), result
            )


def _rows(
    model: type[models.Model],
    bot: Bot,
    trades: list[dict[str, Any]],
    adapters: dict[str, Callable[[Any], Any] | None],
) -> list[tuple[Any, ...]]:
    """Parameter rows for ``insert_fields(model)``, built column by column with the backend's ``adapters``."""
    count = len(trades)
    adapt_time = adapters["DateTimeField"]
    assert adapt_time is not None
    calendar = calendar_for(bot)
    columns: list[list[Any]] = []
    for field in insert_fields(model):
        if field.name == "bot":
            column = [bot.pk] * count
        elif field.name == "received_at":
            column = [adapt_time(timezone.now())] * count
        elif field.name == "trading_day":
            days = [calendar.trading_day_of(t["executed_at"]) for t in trades]
            column = [day.isoformat() for day in days] if adapters is _ADAPTERS else days
        else:
            name, default = field.name, field.get_default()
            column = _adapted(field, [t.get(name, default) for t in trades], adapters)
        columns.append(column)
    return list(zip(*columns, strict=True))


def _adapted(
    field: models.Field,  # type: ignore[type-arg]
    values: list[Any],
    adapters: dict[str, Callable[[Any], Any] | None],
) -> list[Any]:
    internal_type = field.get_internal_type()
    if internal_type not in adapters:
        raise TypeError(f"trades.ingest cannot store a {internal_type} ({field.name}); add an adapter")
    adapt = adapters[internal_type]
    if adapt is None:
        return values
    if field.null:
        return [None if value is None else adapt(value) for value in values]
    return [adapt(value) for value in values]


def _insert(model: type[models.Model], using: str, rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """Multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING``; the new ids by external id.

    ``bulk_create`` compiles every value through the field machinery, which made
    it five times slower than the insert itself for 1000 trades.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = insert_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = quote(model._meta.db_table)
    conflict = f"({quote('bot_id')}, {quote('external_id')})"
    created: dict[str, int] = {}
    if connection.vendor == "postgresql":
        return _insert_postgres(connection, fields, table, conflict, rows)
    if connection.vendor == "sqlite":
        # The sqlite3 cursor itself, inside the same transaction: Django's wrapper
        # rewrites every placeholder of a 6000-parameter statement with a regex.
        placeholders = placeholders.replace("%s", "?")
        connection.ensure_connection()
        raw_cursor = connection.connection.cursor()
    else:
        raw_cursor = None
    with connection.wrap_database_errors:  # still raise Django's error classes
        cursor = raw_cursor or connection.cursor()
        try:
            for chunk in chunks(rows):
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) VALUES {', '.join([placeholders] * len(chunk))} "
                    f"ON CONFLICT {conflict} DO NOTHING RETURNING {quote('external_id')}, {quote('id')}",
                    [value for row in chunk for value in row],
                )
                created.update(cursor.fetchall())
        finally:
            cursor.close()
    return created


def _insert_postgres(
    connection: Any,
    fields: list[models.Field],  # type: ignore[type-arg]
    table: str,
    conflict: str,
    rows: list[tuple[Any, ...]],
) -> dict[str, int]:
    """One ``INSERT ... SELECT FROM unnest(...)``: a parameter per column, each an array of the batch.

    Measured with 1000 trades: the multi-row VALUES statement through Django's client-side binding
    spent about 250 ms of a 400 ms request in psycopg parsing and quoting its 6000 placeholders (a
    statement that long is never cached); twelve arrays bound on the server take a few ms, and the
    batch is one statement whatever its size.
    """
    import psycopg  # here, so that a SQLite site never loads it

    if not rows:
        return {}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    # Each array cast to its column's own type, so PostgreSQL never guesses (JSON goes as text).
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT {conflict} DO NOTHING RETURNING {quote('external_id')}, {quote('id')}"
    )
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        # A server-side binding cursor on Django's connection, so inside the same transaction.
        cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)], prepare=False)
        return dict(cursor.fetchall())


def _ids_by_external_id(
    model: type[models.Model], using: str, bot: Bot, external_ids: list[str]
) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(external_ids):
        # order_by(): the default ordering would make SQLite walk the bot's trades
        # by time (0.3 s per chunk at a million trades) instead of using the
        # (bot, external_id) index.
        rows = (
            model._default_manager.db_manager(using)
            .filter(bot=bot, external_id__in=chunk)
            .order_by()
            .values_list("external_id", "id")
        )
        found.update(rows)
    return found
