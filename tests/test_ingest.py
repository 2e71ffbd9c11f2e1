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
        # SQLite: each value with its storage class; PostgreSQL: each value with its text form
        # (numeric scale, jsonb's normalised text, the instant of a timestamptz).
        if connection.vendor == "sqlite":
            typed = ", ".join(f"{n}, typeof({n})" for n in compared)
        else:
            typed = ", ".join(f"{n}, {n}::text" for n in compared)
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
    """Trade 650 of a 700-trade batch fails: on SQLite in the second statement, after the first
    stored 500 rows; on PostgreSQL in the middle of its one statement."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "CREATE TEMP TRIGGER fail_mid_batch BEFORE INSERT ON trades_trade "
                "WHEN NEW.external_id = 'ord-650' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        else:  # created inside the test's transaction, so rolled back with it
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
