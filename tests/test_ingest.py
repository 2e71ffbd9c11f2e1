"""The fast insert: what it stores, what it returns, and the hook it sends after commit."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from tests.conftest import stored_trade
from trades import ingest
from trades.models import Bot, Trade
from trades.signals import trades_recorded
from trades.validation import TradeIn

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced() -> Any:
    """What ``trades_recorded`` announced during the test: (bot name, ids) per send."""
    calls: list[tuple[str, list[int]]] = []

    def listener(sender: Any, bot: Bot, trade_ids: list[int], **kwargs: Any) -> None:
        calls.append((bot.name, trade_ids))

    trades_recorded.connect(listener)
    yield calls
    trades_recorded.disconnect(listener)


def test_every_trade_field_is_sent_or_computed() -> None:
    """A field added to Trade must be added to the validator (sent by the bot) or to COMPUTED."""
    stored = {field.name for field in ingest.insert_fields(Trade)}
    sent = set(TradeIn.__annotations__) - {"__pydantic_config__"}
    assert stored == sent | set(ingest.COMPUTED)
    assert not sent & set(ingest.COMPUTED)


def test_the_insert_covers_every_concrete_column_of_the_model() -> None:
    columns = {field.column for field in ingest.insert_fields(Trade)}
    with connection.cursor() as cursor:
        table = {col.name for col in connection.introspection.get_table_description(cursor, "trades_trade")}
    assert columns == table - {"id"}


def test_record_batch_stores_what_the_orm_would(bot: Bot) -> None:
    """Every column the fast path writes is byte-identical to ``Trade.save()``'s: Grafana reads them."""
    fields = {"pnl": Decimal("-1.5"), "quantity": Decimal("0.125"), "metadata": {"a": [1, "x"], "b": "é"}}
    Trade.objects.record_batch(bot, [stored_trade(1, **fields)])
    Trade(bot=bot, **stored_trade(2, **fields)).save()
    Trade.objects.record_batch(bot, [stored_trade(3, pnl=None, metadata={})])
    Trade(bot=bot, **stored_trade(4, pnl=None, metadata={})).save()
    with connection.cursor() as cursor:
        names = [c.name for c in connection.introspection.get_table_description(cursor, "trades_trade")]
        compared = [n for n in names if n not in ("id", "external_id", "received_at")]
        type_of = "typeof" if connection.vendor == "sqlite" else "pg_typeof"
        typed = ", ".join(
            f"{n}, {type_of}({n})::text" if type_of == "pg_typeof" else f"{n}, typeof({n})" for n in compared
        )
        cursor.execute(f"SELECT {typed} FROM trades_trade ORDER BY external_id")
        fast, orm, fast_open, orm_open = cursor.fetchall()
    assert fast == orm
    assert fast_open == orm_open


def test_record_batch_returns_each_trades_id_and_which_are_new(bot: Bot) -> None:
    first = Trade.objects.record_batch(bot, [stored_trade(1), stored_trade(2)])
    second = Trade.objects.record_batch(bot, [stored_trade(2), stored_trade(3), stored_trade(3)])
    ids = dict(Trade.objects.values_list("external_id", "id"))
    assert first.ids == first.new_ids == [ids["ord-1"], ids["ord-2"]]
    assert second.ids == [ids["ord-2"], ids["ord-3"], ids["ord-3"]]
    assert second.new_ids == [ids["ord-3"]]
    assert (second.created, second.duplicates) == (1, 2)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 127, 128, 129, 255, 256, 1000, 1001])
def test_a_batch_goes_in_power_of_two_chunks_of_at_most_chunk_rows(count: int) -> None:
    """At most log2(CHUNK) + 1 statement shapes whatever the sizes sent: each is cached per connection."""
    items = list(range(count))
    sizes = [len(chunk) for chunk in ingest.chunks(items)]
    assert [item for chunk in ingest.chunks(items) for item in chunk] == items
    assert all(size <= ingest.CHUNK and size & (size - 1) == 0 for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    assert {size for size in sizes if sizes.count(size) > 1} <= {ingest.CHUNK}


@pytest.mark.parametrize("count", [ingest.CHUNK - 1, ingest.CHUNK, ingest.CHUNK + 1, 3 * ingest.CHUNK + 7])
def test_a_batch_across_chunk_edges_is_stored_whole_with_every_id(bot: Bot, count: int) -> None:
    replayed = [stored_trade(n) for n in range(0, count, 3)]
    Trade.objects.record_batch(bot, replayed)
    result = Trade.objects.record_batch(bot, [stored_trade(n) for n in range(count)])
    ids = dict(Trade.objects.values_list("external_id", "id"))
    assert len(ids) == count
    assert result.ids == [ids[f"ord-{n}"] for n in range(count)]
    assert result.new_ids == [ids[f"ord-{n}"] for n in range(count) if n % 3]


def test_a_replay_returns_the_bots_own_id_when_two_bots_share_an_external_id(bot: Bot) -> None:
    other = Bot.objects.create(name="other")
    mine = Trade.objects.record_batch(bot, [stored_trade(1)]).ids
    theirs = Trade.objects.record_batch(other, [stored_trade(1)]).ids
    assert mine != theirs
    assert Trade.objects.record_batch(other, [stored_trade(1)]).ids == theirs
    assert Trade.objects.record_batch(bot, [stored_trade(1)]).ids == mine
    assert Trade.objects.count() == 2


def test_new_trades_are_announced_once_after_commit(
    bot: Bot, announced: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = Trade.objects.record_batch(bot, [stored_trade(1), stored_trade(2)])
        assert announced == []  # not before the commit
    assert announced == [("alpha", result.new_ids)]


def test_a_replay_announces_only_the_new_trades_and_a_full_replay_nothing(
    bot: Bot, announced: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        Trade.objects.record_batch(bot, [stored_trade(1)])
    with django_capture_on_commit_callbacks(execute=True):
        Trade.objects.record_batch(bot, [stored_trade(1)])
    with django_capture_on_commit_callbacks(execute=True):
        mixed = Trade.objects.record_batch(bot, [stored_trade(1), stored_trade(2)])
    assert [ids for _, ids in announced] == [[Trade.objects.get(external_id="ord-1").pk], mixed.new_ids]


def test_nothing_is_announced_when_the_surrounding_transaction_rolls_back(
    bot: Bot, announced: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            Trade.objects.record_batch(bot, [stored_trade(1)])
            raise RuntimeError("the caller changed its mind")
    assert announced == [] and Trade.objects.count() == 0


def test_a_failing_listener_never_fails_the_stored_batch(
    bot: Bot, django_capture_on_commit_callbacks: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("listener bug")

    trades_recorded.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = Trade.objects.record_batch(bot, [stored_trade(1)])
    finally:
        trades_recorded.disconnect(broken)
    assert result.created == 1 and Trade.objects.count() == 1
    assert "listener bug" in caplog.text


def test_a_database_failure_in_the_middle_of_a_batch_stores_nothing(
    bot: Bot, announced: list[Any], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    """The second statement of a 700-trade batch fails after the first stored 500 rows."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TEMP TRIGGER fail_mid_batch BEFORE INSERT ON trades_trade "
                "WHEN NEW.external_id = 'ord-650' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        else:  # made inside the test's transaction, and gone with its rollback
            cursor.execute(
                "CREATE FUNCTION fail_mid_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.external_id = 'ord-650' THEN RAISE EXCEPTION 'disk I/O error'; END IF; "
                "RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER fail_mid_batch BEFORE INSERT ON trades_trade "
                "FOR EACH ROW EXECUTE FUNCTION fail_mid_batch()"
            )
    batch = [stored_trade(n) for n in range(700)]
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(DatabaseError):
        Trade.objects.record_batch(bot, batch)
    assert Trade.objects.count() == 0
    assert announced == []
