"""One wire contract: the bot's checks (``Monitor``) and the site's (its API) agree at every boundary.

Both take their limits from ``monitor_client.wire``. Each case is put to both sides: the
bot's ``record_trade`` / ``event`` (accepted: spooled; refused: ``ValueError``) and the
site's API through its real view and validator (accepted: 2xx; refused: 400). What the
bot accepts is posted to the site exactly as the bot spooled it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from rest_framework.test import APIClient

import monitor_client.checks as checks_module
from monitor_client import Monitor, wire
from tests.harness import ROOT
from trades.models import Bot, BotEvent, BotSnapshot, EventKind, EventLevel, Side, Trade

NOW = dt.datetime(2026, 1, 15, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Monitor]:
    """A bot's Monitor with no site: what it accepts stays in its spool, to be read back."""
    monitor = Monitor(url="", key="", spool_dir=tmp_path / "spool")
    yield monitor
    monitor.close()


@pytest.fixture
def frozen_clocks() -> Iterator[None]:
    """The bot's clock and the site's at the same moment, so a bound can be met exactly."""
    with (
        patch.object(checks_module, "_now", lambda tz=None: NOW),
        patch("django.utils.timezone.now", return_value=NOW),
    ):
        yield


def bot_payloads(monitor: Monitor) -> list[dict[str, Any]]:
    return [json.loads(record.payload) for record in monitor.spool.read(10_000, 1 << 30)]


def bot_accepts_trade(monitor: Monitor, **fields: Any) -> dict[str, Any] | None:
    """The trade as the bot spooled it, or None if the bot refused it."""
    trade = {"external_id": "t-1", "symbol": "AAPL", "side": "BUY", "quantity": 1, "price": 10, **fields}
    before = len(bot_payloads(monitor))
    try:
        assert monitor.record_trade(**trade)
    except ValueError:
        assert len(bot_payloads(monitor)) == before
        return None
    return bot_payloads(monitor)[-1]


def as_sent(**fields: Any) -> dict[str, Any]:
    """The same trade written straight as JSON, for a case the bot refused."""
    trade = {"external_id": "t-1", "symbol": "AAPL", "side": "BUY", "quantity": 1, "price": 10, **fields}
    if isinstance(trade.get("executed_at"), dt.datetime):
        trade["executed_at"] = trade["executed_at"].isoformat()
    return trade


def post(api: APIClient, path: str, body: Any) -> int:
    text = json.dumps(body, default=str) if not isinstance(body, str) else body
    return api.post(path, text, content_type="application/json").status_code


def decimal_json(trade: dict[str, Any]) -> str:
    """JSON with Decimals written as exact numbers (the bot's own way), not strings."""
    marked = {k: (f"@@{v}@@" if isinstance(v, Decimal) else v) for k, v in trade.items()}
    return json.dumps(marked, default=str).replace('"@@', "").replace('@@"', "")


def site_accepts_trade(api: APIClient, trade: dict[str, Any]) -> bool:
    status = post(api, "/api/v1/trades/", decimal_json(trade))
    assert status in (200, 201, 400), status
    return status != 400


def agree_on_trade(api: APIClient, monitor: Monitor, **fields: Any) -> bool:
    """Both sides' verdict on one trade; fails the test when they differ."""
    spooled = bot_accepts_trade(monitor, **fields)
    site = site_accepts_trade(api, spooled if spooled is not None else as_sent(**fields))
    assert (spooled is not None) == site, (
        f"bot {'accepts' if spooled else 'refuses'}, site the opposite: {fields}"
    )
    return site


ID_LENGTH = wire.EXTERNAL_ID_MAX_LENGTH
LATEST = NOW + wire.MAX_CLOCK_SKEW
LIMIT_CASES = [
    # (fields at the limit, fields one past it)
    ({"price": Decimal("1.12345678")}, {"price": Decimal("1.123456789")}),  # decimal places
    ({"pnl": Decimal("-0.00000001")}, {"pnl": Decimal("-0.000000001")}),
    ({"pnl": Decimal("1234567.12345678")}, {"pnl": Decimal("12345678.12345678")}),  # significant digits
    ({"pnl": Decimal("-1234567.123456780")}, {"pnl": Decimal("-12345678.12345678")}),
    ({"external_id": "x" * ID_LENGTH}, {"external_id": "x" * (ID_LENGTH + 1)}),
    ({"symbol": "S" * wire.SYMBOL_MAX_LENGTH}, {"symbol": "S" * (wire.SYMBOL_MAX_LENGTH + 1)}),
    ({"symbol": "brk.b"}, {"symbol": "BRK B"}),  # the symbol pattern
    ({"symbol": "0700"}, {"symbol": "-ES"}),
    ({"strategy": "s" * wire.STRATEGY_MAX_LENGTH}, {"strategy": "s" * (wire.STRATEGY_MAX_LENGTH + 1)}),
    ({"side": "sell"}, {"side": "HOLD"}),
    # Moments: the bot's clock and the site's are the same (frozen_clocks).
    ({"executed_at": LATEST}, {"executed_at": LATEST + dt.timedelta(microseconds=1)}),
    ({"executed_at": wire.EARLIEST}, {"executed_at": wire.EARLIEST - dt.timedelta(microseconds=1)}),
]  # fmt: skip


@pytest.mark.parametrize(("at_limit", "past_limit"), LIMIT_CASES)
def test_the_bot_and_the_site_agree_at_each_limit_of_a_trade(
    api: APIClient,
    monitor: Monitor,
    frozen_clocks: None,
    at_limit: dict[str, Any],
    past_limit: dict[str, Any],
) -> None:
    assert agree_on_trade(api, monitor, **at_limit), f"refused at the limit: {at_limit}"
    assert not agree_on_trade(
        api, monitor, **{**past_limit, "external_id": past_limit.get("external_id", "t-2")}
    )


def test_a_float_the_site_could_not_store_exactly_is_rounded_by_the_bot_to_what_it_stores(
    api: APIClient, monitor: Monitor
) -> None:
    # 17 significant digits of binary noise: the bot keeps 15, which the site takes.
    spooled = bot_accepts_trade(monitor, pnl=12345678.123456789)
    assert spooled is not None and spooled["pnl"] == 12345678.1234568
    assert site_accepts_trade(api, spooled)


def test_a_batch_of_exactly_max_is_taken_and_one_more_is_refused(api: APIClient, tmp_path: Path) -> None:
    def batch(count: int) -> list[dict[str, Any]]:
        return [{**as_sent(), "external_id": f"b-{count}-{n}"} for n in range(count)]

    assert post(api, "/api/v1/trades/", batch(wire.MAX_BATCH)) == 201
    assert post(api, "/api/v1/trades/", batch(wire.MAX_BATCH + 1)) == 400
    assert Trade.objects.count() == wire.MAX_BATCH
    # The bot never sends more than the site takes, whatever it is asked for.
    asked = Monitor(url="", key="", spool_dir=tmp_path / "spool", batch_size=wire.MAX_BATCH + 1)
    try:
        assert asked.batch_size == wire.MAX_BATCH
    finally:
        asked.close()


def test_every_event_kind_and_level_is_taken_by_both_and_an_unknown_one_by_neither(
    api: APIClient, monitor: Monitor
) -> None:
    assert list(EventKind.values) == list(wire.EVENT_KINDS)
    assert list(EventLevel.values) == list(wire.EVENT_LEVELS)
    for kind in wire.EVENT_KINDS:
        for level in wire.EVENT_LEVELS:
            assert monitor.event(kind, level, f"{kind} at {level}")
    sent = bot_payloads(monitor)
    assert len(sent) == len(wire.EVENT_KINDS) * len(wire.EVENT_LEVELS)
    for event in sent:
        assert post(api, "/api/v1/events/", event) == 201, event
    assert BotEvent.objects.count() == len(sent)

    for kind, level in (("meltdown", "info"), ("crash", "fatal")):
        with pytest.raises(ValueError):
            monitor.event(kind, level, "no such thing")
        assert post(api, "/api/v1/events/", {"kind": kind, "level": level, "message": "x"}) == 400
    assert BotEvent.objects.count() == len(sent)


def test_a_message_and_a_status_past_their_limits_are_cut_by_the_bot_to_what_the_site_takes(
    api: APIClient, monitor: Monitor, bot: Bot
) -> None:
    longest = wire.EVENT_MESSAGE_MAX_LENGTH
    assert post(api, "/api/v1/events/", {"kind": "custom", "message": "m" * longest}) == 201
    assert post(api, "/api/v1/events/", {"kind": "custom", "message": "m" * (longest + 1)}) == 400
    monitor.event("custom", "info", "m" * (longest + 1))
    (event,) = bot_payloads(monitor)
    assert len(event["message"]) == longest and post(api, "/api/v1/events/", event) == 201

    longest = wire.HEARTBEAT_STATUS_MAX_LENGTH
    assert post(api, "/api/v1/heartbeat/", {"status": "s" * longest}) in (200, 201)
    assert post(api, "/api/v1/heartbeat/", {"status": "s" * (longest + 1)}) == 400
    monitor.heartbeat("s" * (longest + 1))
    assert monitor._shipper.pending_heartbeat is not None
    assert post(api, "/api/v1/heartbeat/", monitor._shipper.pending_heartbeat) in (200, 201)
    bot.refresh_from_db()
    assert bot.last_heartbeat_status == "s" * longest


def test_the_sites_models_and_document_take_the_wire_values(api: APIClient) -> None:
    fields = {field.name: field for field in Trade._meta.fields}
    assert fields["external_id"].max_length == wire.EXTERNAL_ID_MAX_LENGTH
    assert fields["symbol"].max_length == wire.SYMBOL_MAX_LENGTH
    assert fields["strategy"].max_length == wire.STRATEGY_MAX_LENGTH
    assert (fields["price"].max_digits, fields["price"].decimal_places) == (
        wire.MAX_DIGITS,
        wire.DECIMAL_PLACES,
    )
    assert list(Side.values) == list(wire.SIDES)
    assert BotEvent._meta.get_field("event_id").max_length == wire.EVENT_ID_MAX_LENGTH

    document = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = document["components"]["schemas"]
    body = document["paths"]["/api/v1/trades/"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    one, many = body["oneOf"]
    assert many["maxItems"] == wire.MAX_BATCH
    assert one["properties"]["external_id"]["maxLength"] == wire.EXTERNAL_ID_MAX_LENGTH
    assert one["properties"]["symbol"]["maxLength"] == wire.SYMBOL_MAX_LENGTH
    assert one["properties"]["symbol"]["pattern"] == wire.SYMBOL_PATTERN
    assert one["properties"]["side"]["pattern"] == wire.SIDE_PATTERN
    event = schemas["EventRequest"]["properties"]
    assert set(schemas["KindEnum"]["enum"]) == set(wire.EVENT_KINDS)
    assert event["message"]["maxLength"] == wire.EVENT_MESSAGE_MAX_LENGTH
    assert event["event_id"]["maxLength"] == wire.EVENT_ID_MAX_LENGTH


def test_the_wire_module_imports_without_django() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    code = (
        "import sys, monitor_client.wire, monitor_client.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'rest_framework', 'trades')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]", result.stdout


# --- the bot's state a heartbeat carries (the bot's side) ---------------------------
# Each case: the report at the limit (kept for the heartbeats) and one past it (``ValueError``
# on the bot's thread, naming the position and field, and nothing kept).


def position(symbol: str = "AAPL", quantity: Any = 1, avg_price: Any = 10, market_price: Any = 11) -> dict:
    return {"symbol": symbol, "quantity": quantity, "avg_price": avg_price, "market_price": market_price}


def many(count: int) -> list[dict[str, Any]]:
    return [position(f"S{n}") for n in range(count)]


def one(symbol: str = "AAPL", **fields: Any) -> dict[str, Any]:
    """A report of one position."""
    return {"positions": [position(symbol, **fields)]}


MAX_QTY, MAX_PRICE, MAX_MONEY, MAX_SYMBOL = (
    wire.MAX_QUANTITY,
    wire.MAX_PRICE,
    wire.MAX_ABS_MONEY,
    wire.SYMBOL_MAX_LENGTH,
)
AT = r"positions\[0\]"  # the first position, as an error names it
POSITION_CASES = [
    # (report at the limit, report one past it, what the error names)
    ({"positions": many(wire.MAX_POSITIONS)}, {"positions": many(wire.MAX_POSITIONS + 1)},
     rf"positions holds {wire.MAX_POSITIONS + 1} positions; at most {wire.MAX_POSITIONS}"),
    ({"positions": [position("AAPL"), position("AAPL.B")]},
     {"positions": [position("AAPL"), position("aapl")]},
     r"positions\[1\]\.symbol AAPL is positions\[0\]'s too"),
    (one(quantity=MAX_QTY), one(quantity=MAX_QTY + 1),
     rf"{AT}\.quantity \(AAPL\) must be at least -1,000,000,000 and at most 1,000,000,000"),
    (one(quantity=-MAX_QTY), one(quantity=-MAX_QTY - 1), rf"{AT}\.quantity \(AAPL\)"),
    (one(quantity=0), one(quantity=float("nan")),
     rf"{AT}\.quantity \(AAPL\) must be a finite number; got nan"),
    (one(avg_price=MAX_PRICE), one(avg_price=MAX_PRICE + 1),
     rf"{AT}\.avg_price \(AAPL\) must be above 0 and at most 10,000,000"),
    (one(market_price=Decimal("0.00000001")), one(market_price=0),
     rf"{AT}\.market_price \(AAPL\) must be greater than 0"),
    (one(market_price=1e7), one(market_price=1e400),
     rf"{AT}\.market_price \(AAPL\) must be a finite number; got inf"),
    (one(market_price=Decimal("1e7")), one(market_price=Decimal("1e400")),
     rf"{AT}\.market_price \(AAPL\) must be above 0 and at most 10,000,000; got 1E\+400"),
    (one(avg_price=Decimal("1.12345678")), one(avg_price=Decimal("1.123456789")),
     rf"{AT}\.avg_price \(AAPL\) has more than 8 decimal places"),
    (one(quantity=Decimal("1234567.12345678")), one(quantity=Decimal("12345678.12345678")),
     rf"{AT}\.quantity \(AAPL\) has more than 15 significant digits"),
    (one("S" * MAX_SYMBOL), one("S" * (MAX_SYMBOL + 1)), rf"{AT}\.symbol must be 1 to {MAX_SYMBOL}"),
    (one("brk.b"), one("BRK B"), rf"{AT}\.symbol must be"),
    ({"positions": [("AAPL", 1, 10, 11)]}, {"positions": [("AAPL", 1, 10)]}, rf"{AT} must be a dict"),
    (one(), {"positions": [{**position(), "side": "long"}]}, rf"{AT} must be .*unknown side"),
    ({"positions": []}, {"positions": "AAPL"}, r"positions must be a list"),
    ({"equity": MAX_MONEY, "cash": -MAX_MONEY}, {"equity": MAX_MONEY + 1},
     r"equity must be at least -100,000,000,000 and at most 100,000,000,000"),
    ({"cash": -MAX_MONEY}, {"cash": -MAX_MONEY - 1}, r"cash must be"),
    ({"cash": 0}, {"cash": True}, r"cash must be a number"),
    # A position's value (quantity x price) and the positions' unrealized P&L together stay within
    # an account's: the site refuses more, and a refused heartbeat is lost.
    (one(quantity=-10_000_000, avg_price=10_000, market_price=10_000),
     one(quantity=-10_000_001, avg_price=10_000, market_price=10_000),
     rf"{AT}\.quantity \(AAPL\) x its price is above 100,000,000,000"),
    ({"positions": [position("A", 10_000_000, 1, 5001), position("B", 10_000_000, 1, 5001)]},
     {"positions": [position("A", 10_000_000, 1, 5001), position("B", 10_000_000, 1, 5001.01)]},
     r"positions' unrealized P&L together is above 100,000,000,000"),
]  # fmt: skip


def as_kept(given: dict[str, Any]) -> dict[str, Any]:
    """A report as the heartbeat carries it: symbols upper-cased, each number the same value."""
    kept: dict[str, Any] = {}
    for key, value in given.items():
        if key == "positions":
            rows = [
                dict(zip(wire.POSITION_FIELDS, p, strict=True)) if isinstance(p, tuple) else p for p in value
            ]
            kept[key] = [{**p, "symbol": p["symbol"].upper()} for p in rows]
        else:
            kept[key] = value
    return kept


def same(sent: Any, given: Any) -> bool:
    if isinstance(given, dict):
        return sent.keys() == given.keys() and all(same(sent[k], given[k]) for k in given)
    if isinstance(given, list):
        return len(sent) == len(given) and all(same(a, b) for a, b in zip(sent, given, strict=True))
    if isinstance(given, str):
        return sent == given
    return type(sent) in (int, float) and Decimal(str(sent)) == Decimal(str(given))


@pytest.mark.parametrize(("at_limit", "past_limit", "named"), POSITION_CASES)
def test_the_bot_takes_its_state_at_each_limit_and_refuses_it_one_past(
    monitor: Monitor, at_limit: dict[str, Any], past_limit: dict[str, Any], named: str
) -> None:
    """Through both calls that take it: ``report_positions`` and ``heartbeat``."""
    calls = {
        "report_positions": lambda state: monitor.report_positions(**{"positions": None, **state}),
        "heartbeat": lambda state: monitor.heartbeat("running", **state),
    }
    for name, call in calls.items():
        call(at_limit)
        kept = dict(monitor._last_heartbeat)
        assert same({key: kept[key] for key in at_limit}, as_kept(at_limit)), (name, kept)
        with pytest.raises(ValueError, match=named):
            call(past_limit)
        assert monitor._last_heartbeat == kept, f"{name}: nothing kept of a refused report"


@pytest.mark.parametrize(("at_limit", "past_limit", "named"), POSITION_CASES)
def test_the_site_takes_what_the_bot_sends_of_its_state_and_refuses_one_past(
    api: APIClient, monitor: Monitor, at_limit: dict[str, Any], past_limit: dict[str, Any], named: str
) -> None:
    """The heartbeat the bot would send (its state at the limit) is a 200; the report one past the
    limit, sent by a client that does not check, is a 400 and stores nothing."""
    monitor.heartbeat("running", **at_limit)
    sent = json.loads(json.dumps(monitor._last_heartbeat))
    assert post(api, "/api/v1/heartbeat/", sent) == 200
    snapshots = BotSnapshot.objects.count()
    past = json.dumps({"status": "running", **past_limit}, default=float)  # Decimal('1e400') -> Infinity
    assert post(api, "/api/v1/heartbeat/", past) == 400, past[:200]
    assert BotSnapshot.objects.count() == snapshots
