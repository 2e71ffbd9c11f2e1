from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from monitor_client import wire
from tests.conftest import make_trade
from trades.models import Bot, Trade

URL = "/api/v1/trades/"
RFC3339_FROM_2000 = (
    "Give the time in RFC 3339 with an offset, from the year 2000 on, e.g. 2026-01-02T15:04:05Z."
)


def post(client: APIClient, body: Any) -> Any:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(URL, raw, content_type="application/json")


# --- authentication -----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/trades/", "/api/v1/summary/daily/", "/api/v1/status/", "/api/v1/heartbeat/"]
)
def test_requests_without_a_key_get_401_with_bearer_challenge(path: str) -> None:
    response = APIClient().get(path) if "heartbeat" not in path else APIClient().post(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_key_gets_401(bot: Bot, write_key: str) -> None:
    client = APIClient()
    prefix = write_key.split(".")[0]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {prefix}.not-the-secret")
    assert post(client, make_trade()).status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")
    assert client.get(URL).status_code == 401
    assert Trade.objects.count() == 0


def test_a_key_in_another_scheme_gets_401(write_key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {write_key}")
    response = client.get(URL)
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


def test_read_only_key_may_read_but_not_write(bot: Bot, read_key: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {read_key}")
    assert client.get(URL).status_code == 200
    assert client.get("/api/v1/summary/daily/").status_code == 200
    assert post(client, make_trade()).status_code == 403
    assert client.post("/api/v1/heartbeat/").status_code == 403
    assert client.post("/api/v1/events/", {"kind": "startup"}, format="json").status_code == 403
    assert Trade.objects.count() == 0
    bot.refresh_from_db()
    assert bot.last_heartbeat_at is None


def test_revoked_key_gets_401(bot: Bot, api: APIClient) -> None:
    assert api.get(URL).status_code == 200
    key = bot.keys.get()
    key.revoked = True
    key.save()
    assert api.get(URL).status_code == 401


def test_inactive_bot_key_gets_401(bot: Bot, api: APIClient) -> None:
    Bot.objects.filter(pk=bot.pk).update(is_active=False)
    assert post(api, make_trade()).status_code == 401


def test_expired_key_gets_401(bot: Bot, api: APIClient) -> None:
    bot.keys.update(expiry_date=timezone.now() - dt.timedelta(minutes=1))
    assert api.get(URL).status_code == 401


def test_keys_are_stored_hashed(bot: Bot, write_key: str) -> None:
    stored = bot.keys.get()
    assert write_key not in stored.hashed_key
    assert stored.hashed_key.startswith("sha512$$")
    assert write_key.split(".")[1] not in stored.id


def test_a_key_only_sees_its_own_bots_trades(api: APIClient) -> None:
    other = Bot.objects.create(name="beta")
    other_key = other.issue_key()[1]
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert post(other_client, make_trade(1, symbol="MSFT")).status_code == 201
    assert post(api, make_trade(1)).status_code == 201  # same external id, other bot: stored
    symbols = [t["symbol"] for t in api.get(URL).json()["results"]]
    assert symbols == ["AAPL"]


# --- storing trades -------------------------------------------------------------


def test_one_trade_is_stored_with_its_fields(bot: Bot, api: APIClient) -> None:
    response = post(
        api,
        make_trade(7, symbol="msft", side="sell", quantity=1.5, price=410.125, pnl=-12.5),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 1 and body["duplicates"] == 0
    trade = Trade.objects.get(pk=body["ids"][0])
    assert trade.bot == bot
    assert trade.external_id == "ord-7"
    assert trade.symbol == "MSFT"
    assert trade.side == "SELL"
    assert trade.quantity == Decimal("1.5")
    assert trade.price == Decimal("410.125")
    assert trade.pnl == Decimal("-12.5")
    assert trade.strategy == "momentum"
    assert trade.metadata == {"order_type": "limit"}
    assert trade.executed_at == dt.datetime(2026, 1, 15, 15, 31, tzinfo=dt.UTC)
    assert trade.trading_day == dt.date(2026, 1, 15)


def test_optional_fields_take_their_defaults(api: APIClient) -> None:
    before = timezone.now()
    trade = make_trade()
    for name in ("strategy", "pnl", "executed_at", "metadata"):
        del trade[name]
    response = post(api, trade)
    assert response.status_code == 201
    stored = Trade.objects.get()
    assert stored.strategy == "" and stored.pnl is None and stored.metadata == {}
    assert before <= stored.executed_at <= timezone.now()


def test_a_batch_is_stored_and_ids_come_back_in_order(api: APIClient) -> None:
    batch = [make_trade(n) for n in range(1, 1001)]
    response = post(api, batch)
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 1000 and body["duplicates"] == 0
    ids = body["ids"]
    assert len(ids) == 1000
    stored = dict(Trade.objects.values_list("id", "external_id"))
    assert [stored[i] for i in ids] == [t["external_id"] for t in batch]


def test_a_batch_over_1000_is_refused_and_nothing_stored(api: APIClient) -> None:
    response = post(api, [make_trade(n) for n in range(1001)])
    assert response.status_code == 400
    assert "1000" in response.json()["detail"]
    assert Trade.objects.count() == 0


def test_replayed_batch_stores_nothing_new(api: APIClient) -> None:
    batch = [make_trade(n) for n in range(5)]
    first = post(api, batch)
    second = post(api, batch)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json() == {"created": 0, "duplicates": 5, "ids": first.json()["ids"]}
    assert Trade.objects.count() == 5


def test_partly_new_batch_is_201_and_counts_duplicates(api: APIClient) -> None:
    post(api, [make_trade(1), make_trade(2)])
    response = post(api, [make_trade(2), make_trade(3)])
    assert response.status_code == 201
    assert response.json()["created"] == 1 and response.json()["duplicates"] == 1
    assert Trade.objects.count() == 3


def test_a_repeat_inside_one_batch_is_stored_once(api: APIClient) -> None:
    response = post(api, [make_trade(1), make_trade(1, price=1)])
    body = response.json()
    assert (body["created"], body["duplicates"]) == (1, 1)
    assert body["ids"][0] == body["ids"][1]
    assert Trade.objects.get().price == Decimal("187.25")


def test_one_bad_item_rejects_the_whole_batch(api: APIClient) -> None:
    batch = [make_trade(n) for n in range(10)]
    batch[7]["price"] = 0
    response = post(api, batch)
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["7"]
    assert "price" in response.json()["errors"]["7"]
    assert Trade.objects.count() == 0


def test_errors_are_keyed_by_index_and_field(api: APIClient) -> None:
    batch = [make_trade(0), make_trade(1, side="HOLD"), make_trade(2, quantity=-1, symbol="")]
    del batch[0]["price"]
    errors = post(api, batch).json()["errors"]
    assert errors["0"] == {"price": ["This field is required."]}
    assert set(errors["1"]) == {"side"}
    assert set(errors["2"]) == {"quantity", "symbol"}


def test_a_single_object_gets_errors_by_field(api: APIClient) -> None:
    response = post(api, make_trade(side="short"))
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"side"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("external_id", ""),
        ("external_id", "x" * 101),
        ("external_id", 12),
        ("symbol", ""),
        ("symbol", "AA PL"),
        ("symbol", "X" * 33),
        ("side", "long"),
        ("side", None),
        ("quantity", 0),
        ("quantity", -5),
        ("quantity", "ten"),
        ("quantity", True),
        ("quantity", 1e10),
        ("quantity", "1.123456789"),
        ("price", 0),
        ("price", -1),
        ("price", 1e8),
        ("price", "NaN"),
        ("price", "Infinity"),
        ("pnl", "-Infinity"),
        ("pnl", 1e12),
        ("pnl", "lots"),
        ("strategy", "s" * 101),
        ("executed_at", "2026-01-15T10:31:00"),
        ("executed_at", "yesterday"),
        ("executed_at", 1768491060),
        ("executed_at", "1999-12-31T23:59:59Z"),
        ("executed_at", "2099-01-01T00:00:00Z"),
        ("metadata", [1, 2]),
        ("metadata", "text"),
        ("unknown_field", 1),
    ],
)
def test_invalid_field_is_rejected_by_name(api: APIClient, field: str, value: Any) -> None:
    response = post(api, [make_trade(1), make_trade(2, **{field: value})])
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]["1"]
    assert Trade.objects.count() == 0


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_json_numbers_are_rejected(api: APIClient, literal: bytes) -> None:
    body = json.dumps(make_trade(price=1)).encode().replace(b'"price": 1', b'"price": ' + literal)
    response = post(api, body)
    assert response.status_code == 400
    assert "price" in response.json()["errors"]


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[1, 2]", b'"trade"', b"[]", b"null", b'{"external_id": "x"'], ids=repr
)
def test_malformed_bodies_get_a_clear_400(api: APIClient, body: bytes) -> None:
    response = post(api, body)
    assert response.status_code == 400
    assert response.json()["detail"]
    assert response.json()["errors"]
    assert Trade.objects.count() == 0


def test_naive_executed_at_message_asks_for_an_offset(api: APIClient) -> None:
    response = post(api, make_trade(executed_at="2026-01-15T10:31:00"))
    assert "with an offset" in response.json()["errors"]["executed_at"][0]


def test_side_and_symbol_are_case_insensitive_on_input(api: APIClient) -> None:
    post(api, make_trade(1, side="Buy", symbol="brk.b"))
    trade = Trade.objects.get()
    assert (trade.side, trade.symbol) == ("BUY", "BRK.B")


# --- reading trades ---------------------------------------------------------------


@pytest.fixture
def mixed_trades(api: APIClient) -> list[dict[str, Any]]:
    batch = [
        make_trade(1, symbol="AAPL", side="BUY", strategy="momentum", executed_at="2026-01-14T15:00:00Z"),
        make_trade(2, symbol="AAPL", side="SELL", strategy="momentum", executed_at="2026-01-15T15:00:00Z"),
        make_trade(3, symbol="MSFT", side="BUY", strategy="meanrev", executed_at="2026-01-15T16:00:00Z"),
        # 21:30 New York on 15 January is 02:30 UTC on the 16th: still the 15th's trading day.
        make_trade(4, symbol="MSFT", side="SELL", strategy="meanrev", executed_at="2026-01-16T02:30:00Z"),
        make_trade(5, symbol="TSLA", side="BUY", strategy="", executed_at="2026-01-16T15:00:00Z"),
    ]
    assert post(api, batch).status_code == 201
    return batch


def ext_ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [t["external_id"] for t in response.json()["results"]]


def test_trades_come_newest_first(api: APIClient, mixed_trades: Any) -> None:
    assert ext_ids(api.get(URL)) == ["ord-5", "ord-4", "ord-3", "ord-2", "ord-1"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("symbol=msft", ["ord-4", "ord-3"]),
        ("strategy=momentum", ["ord-2", "ord-1"]),
        ("strategy=", ["ord-5"]),
        ("side=sell", ["ord-4", "ord-2"]),
        ("date=2026-01-15", ["ord-4", "ord-3", "ord-2"]),
        ("date=2026-01-15&side=BUY", ["ord-3"]),
        ("limit=2", ["ord-5", "ord-4"]),
        ("symbol=NONE", []),
    ],
)
def test_trade_filters(api: APIClient, mixed_trades: Any, query: str, expected: list[str]) -> None:
    assert ext_ids(api.get(f"{URL}?{query}")) == expected


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=x", "limit"),
        ("date=15/01/2026", "date"),
        ("side=HOLD", "side"),
    ],
)
def test_bad_filters_get_400_naming_the_parameter(api: APIClient, query: str, field: str) -> None:
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_limit_defaults_to_50(api: APIClient) -> None:
    post(api, [make_trade(n) for n in range(60)])
    body = api.get(URL).json()
    assert body["limit"] == 50 and len(body["results"]) == 50


def test_listed_trade_has_numbers_and_utc_times(api: APIClient, mixed_trades: Any) -> None:
    trade = api.get(f"{URL}?limit=1").json()["results"][0]
    assert trade["price"] == 187.25 and trade["quantity"] == 10
    assert trade["executed_at"] == "2026-01-16T15:00:00Z"
    assert trade["trading_day"] == "2026-01-16"
    assert trade["bot"] == "alpha"


# --- heartbeat, events, status ------------------------------------------------------


def test_heartbeat_records_time_status_and_details(bot: Bot, api: APIClient) -> None:
    response = api.post(
        "/api/v1/heartbeat/", {"status": "running", "details": {"positions": 3}}, format="json"
    )
    assert response.status_code == 200
    bot.refresh_from_db()
    assert bot.last_heartbeat_status == "running"
    assert bot.last_heartbeat_details == {"positions": 3}
    assert timezone.now() - bot.last_heartbeat_at < dt.timedelta(seconds=5)


def test_heartbeat_body_is_optional(bot: Bot, api: APIClient) -> None:
    assert api.post("/api/v1/heartbeat/").status_code == 200
    bot.refresh_from_db()
    assert bot.last_heartbeat_at is not None


def test_heartbeat_with_bad_details_is_400(api: APIClient) -> None:
    response = api.post("/api/v1/heartbeat/", {"details": [1]}, format="json")
    assert response.status_code == 400
    assert "details" in response.json()["errors"]


def test_event_is_stored(bot: Bot, api: APIClient) -> None:
    body = {"kind": "CONNECTION_LOST", "level": "critical", "message": "IB gateway gone", "details": {"n": 1}}
    response = api.post("/api/v1/events/", body, format="json")
    assert response.status_code == 201
    event = bot.events.get()
    assert (event.kind, event.level, event.message) == ("connection_lost", "critical", "IB gateway gone")
    assert event.details == {"n": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "party"}, "kind"),
        ({"level": "info"}, "kind"),
        ({"kind": "crash", "level": "fatal"}, "level"),
        ({"kind": "crash", "details": "x"}, "details"),
        ({"kind": "crash", "occurred_at": "2026-01-01T10:00:00"}, "occurred_at"),
    ],
)
def test_invalid_event_is_400_naming_the_field(bot: Bot, api: APIClient, body: Any, field: str) -> None:
    response = api.post("/api/v1/events/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert bot.events.count() == 0


def test_an_event_repeated_with_its_event_id_is_answered_200_and_stored_once(
    bot: Bot, api: APIClient
) -> None:
    body = {"kind": "crash", "level": "critical", "message": "boom", "event_id": "evt-1"}
    first = api.post("/api/v1/events/", body, format="json")
    assert first.status_code == 201 and first.json()["event_id"] == "evt-1"
    again = api.post("/api/v1/events/", {**body, "message": "boom (retried)"}, format="json")
    assert again.status_code == 200
    assert again.json() == first.json()  # the stored event, unchanged
    assert list(bot.events.values_list("message", flat=True)) == ["boom"]


def test_event_ids_are_unique_per_bot_and_optional(bot: Bot, api: APIClient) -> None:
    other = Bot.objects.create(name="beta")
    other_api = APIClient()
    other_api.credentials(HTTP_AUTHORIZATION=f"Bearer {other.issue_key()[1]}")
    assert api.post("/api/v1/events/", {"kind": "startup", "event_id": "e"}, format="json").status_code == 201
    assert (
        other_api.post("/api/v1/events/", {"kind": "startup", "event_id": "e"}, format="json").status_code
        == 201
    )
    for _ in range(2):  # without an id every post is a new event, as before
        assert api.post("/api/v1/events/", {"kind": "startup"}, format="json").status_code == 201
    assert (
        api.post("/api/v1/events/", {"kind": "startup", "event_id": None}, format="json").status_code == 201
    )
    assert bot.events.count() == 4 and other.events.count() == 1
    assert bot.events.filter(event_id__isnull=True).count() == 3


@pytest.mark.parametrize(
    ("event_id", "accepted"),
    [("", False), ("x", True), ("x" * 100, True), ("x" * 101, False), (5, False), ({"a": 1}, False)],
)
def test_an_event_id_is_a_string_of_1_to_100_characters(
    bot: Bot, api: APIClient, event_id: Any, accepted: bool
) -> None:
    response = api.post("/api/v1/events/", {"kind": "startup", "event_id": event_id}, format="json")
    if accepted:
        assert response.status_code == 201
    else:
        assert response.status_code == 400 and list(response.json()["errors"]) == ["event_id"]
        assert bot.events.count() == 0


def test_two_copies_of_an_event_racing_store_one(bot: Bot) -> None:
    from unittest import mock

    from trades.models import BotEvent, BotEventQuerySet

    first, created = BotEvent.objects.record(bot, kind="crash", event_id="race")
    assert created
    # The second copy looked before the first was committed: the constraint decides.
    with mock.patch.object(BotEventQuerySet, "first", return_value=None):
        second, created = BotEvent.objects.record(bot, kind="crash", event_id="race")
    assert (second.pk, created) == (first.pk, False)
    assert BotEvent.objects.count() == 1


def test_status_allows_trading_with_a_reason(api: APIClient) -> None:
    body = api.get("/api/v1/status/").json()
    assert body["trading_allowed"] is True
    assert body["reason"]


# --- schema ------------------------------------------------------------------


def api_document() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.django_db
def test_openapi_schema_documents_the_api() -> None:
    schema = api_document()
    assert schema["openapi"] == "3.1.0"
    for path in ("/api/v1/trades/", "/api/v1/summary/daily/", "/api/v1/heartbeat/", "/api/v1/health/"):
        assert path in schema["paths"]
    events = schema["paths"]["/api/v1/events/"]["post"]
    assert {"200", "201"} <= set(events["responses"])
    request = events["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    event_id = schema["components"]["schemas"][request]["properties"]["event_id"]
    assert (event_id["minLength"], event_id["maxLength"]) == (1, 100)
    assert "event_id" not in schema["components"]["schemas"][request].get("required", [])


@pytest.mark.django_db
def test_the_openapi_document_is_valid_for_the_version_it_declares() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    document = api_document()
    validate(document)  # picks the validator by the document's "openapi"
    # The check is real: pydantic's 2020-12 exclusiveMinimum, under a 3.0 label, is refused.
    with pytest.raises(OpenAPIValidationError):
        validate({**document, "openapi": "3.0.3"})


@pytest.mark.django_db
def test_every_operation_documents_every_answer_it_can_give() -> None:
    document = api_document()
    error = {"$ref": "#/components/schemas/Error"}
    assert document["components"]["schemas"]["Error"]["required"] == ["detail"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            keyed = path != "/api/v1/health/"
            expected = {"400", "404", "406", "413"}
            expected |= {"401"} if keyed else set()
            expected |= {"403", "415"} if method == "post" else set()
            responses = operation["responses"]
            assert expected <= set(responses), (method, path, sorted(responses))
            for code in expected:
                assert responses[code]["content"]["application/json"]["schema"] == error, (method, path, code)
            if keyed:
                assert "WWW-Authenticate" in responses["401"]["headers"]
    assert {"200", "503"} <= set(document["paths"]["/api/v1/health/"]["get"]["responses"])
    assert document["paths"]["/api/v1/trades/"]["post"]["requestBody"]["required"] is True


@pytest.mark.django_db
def test_what_the_validators_refuse_the_document_says() -> None:
    from monitor_client.wire import (
        EVENT_MESSAGE_MAX_LENGTH,
        HEARTBEAT_STATUS_MAX_LENGTH,
        MAX_PRICE,
        SIDE_PATTERN,
        SYMBOL_PATTERN,
    )
    from trades.jsonvalues import INT_MAX, MAX_DEPTH

    document = api_document()
    schemas = document["components"]["schemas"]
    event = schemas["EventRequest"]["properties"]
    assert event["message"]["maxLength"] == EVENT_MESSAGE_MAX_LENGTH
    assert event["message"]["pattern"] == "^[^\\x00]*$"
    # A text field that may be null refuses a NUL character too, and says so.
    assert event["event_id"]["type"] == ["string", "null"] and event["event_id"]["pattern"] == "^[^\\x00]*$"
    assert "a day ahead" in event["occurred_at"]["description"]
    assert "2000" in event["occurred_at"]["description"]
    assert schemas["HeartbeatRequest"]["properties"]["status"]["maxLength"] == HEARTBEAT_STATUS_MAX_LENGTH
    params = {p["name"]: p["schema"] for p in document["paths"]["/api/v1/trades/"]["get"]["parameters"]}
    assert params["symbol"]["pattern"] == SYMBOL_PATTERN
    assert params["side"]["pattern"] == SIDE_PATTERN
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 1000)
    trade = document["paths"]["/api/v1/trades/"]["post"]["requestBody"]["content"]["application/json"]
    price = trade["schema"]["oneOf"][0]["properties"]["price"]
    assert price["maximum"] == float(MAX_PRICE)
    assert price["multipleOf"] == 1e-08  # 7 digits before the point leave 8 after it
    # Free-form JSON: a container only as deep as allowed, numbers within 64 bits.
    deepest = schemas[f"JSONValue{MAX_DEPTH + 1}"]["anyOf"]
    assert {branch["type"] for branch in deepest} == {"null", "boolean", "number", "string"}
    assert any(
        branch.get("minimum") == -INT_MAX - 1 and branch.get("maximum") == INT_MAX for branch in deepest
    )


@pytest.mark.parametrize(
    ("number", "accepted"),
    [
        ("9999999.99999999", True),  # 15 digits, 8 after the point
        ("10000000", True),  # the limit itself
        ("0.00000001", True),
        ("1000000.123456789", False),  # 9 after the point
        ("10000000.00000001", False),  # 16 digits and past the limit
    ],
)
def test_the_published_price_schema_takes_exactly_what_the_validator_takes(
    bot: Bot, api: APIClient, number: str, accepted: bool
) -> None:
    import jsonschema_rs  # schemathesis's own validator

    from monitor_client.wire import MAX_PRICE
    from trades.validation import storable_number_schema

    schema = storable_number_schema(MAX_PRICE, positive=True)
    body = json.dumps(make_trade(1)).replace('"price": 187.25', f'"price": {number}')
    assert (post(api, body).status_code == 201) is accepted
    assert jsonschema_rs.validator_for(schema).is_valid(json.loads(number)) is accepted


@pytest.mark.django_db
def test_api_docs_page_loads_nothing_from_a_cdn(client: Any) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert "//" not in "".join(part.split('"')[0] for part in page.split('src="')[1:])


def test_an_oversized_body_gets_a_json_400_and_stores_nothing(api: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    response = post(api, [make_trade(n, metadata={"note": "x" * 200}) for n in range(300)])
    assert response.status_code == 400
    assert response.json()["errors"]["body"] == ["Send at most 48.8 KB per request; split the batch."]
    assert Trade.objects.count() == 0


def test_a_full_batch_with_a_few_kilobytes_of_metadata_each_is_accepted(api: APIClient) -> None:
    response = post(api, [make_trade(n, metadata={"note": "x" * 3000}) for n in range(1000)])
    assert response.status_code == 201
    assert Trade.objects.count() == 1000


@pytest.mark.django_db
def test_openapi_request_schema_of_trades_is_the_validators_own() -> None:
    from monitor_client.wire import MAX_BATCH
    from trades.validation import trade_schema

    schema = json.loads(APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").content)
    body = schema["paths"]["/api/v1/trades/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == trade_schema()
    one, many = body["oneOf"]
    assert many["maxItems"] == MAX_BATCH and many["items"] == one
    assert set(one["required"]) == {"external_id", "symbol", "side", "quantity", "price"}
    assert all(branch["exclusiveMinimum"] == 0 for branch in one["properties"]["quantity"]["anyOf"])
    assert one["properties"]["executed_at"]["format"] == "date-time"
    assert "offset" in one["properties"]["executed_at"]["description"]
    assert "a day ahead" in one["properties"]["executed_at"]["description"]
    assert one["additionalProperties"] is False


@pytest.mark.parametrize("symbol", ["brk.b", "BRK.B", "es:cme", "0700"])
def test_symbols_in_either_case_are_accepted_and_stored_upper(bot: Bot, api: APIClient, symbol: str) -> None:
    assert post(api, make_trade(1, symbol=symbol)).status_code == 201
    assert Trade.objects.get().symbol == symbol.upper()


@pytest.mark.parametrize("side", ["buy", "Sell", "BUY"])
def test_side_in_any_case_is_accepted(bot: Bot, api: APIClient, side: str) -> None:
    assert post(api, make_trade(1, side=side)).status_code == 201
    assert Trade.objects.get().side == side.upper()


# --- clock skew: a bot's clock a little ahead is fine, far ahead is a bug ---------------

NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (dt.timedelta(minutes=5), True),
        (dt.timedelta(hours=23, minutes=59), True),
        (dt.timedelta(days=1, seconds=1), False),
        (dt.timedelta(days=30), False),
    ],
)
def test_a_trade_slightly_ahead_of_the_sites_clock_is_accepted_and_far_ahead_refused(
    bot: Bot, api: APIClient, ahead: dt.timedelta, accepted: bool
) -> None:
    from unittest import mock

    with mock.patch("django.utils.timezone.now", return_value=NOW):
        response = post(api, make_trade(1, executed_at=(NOW + ahead).isoformat()))
    assert response.status_code == (201 if accepted else 400)
    assert Trade.objects.count() == (1 if accepted else 0)
    if not accepted:
        assert "future" in response.json()["errors"]["executed_at"][0]


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (dt.timedelta(minutes=5), True),
        (dt.timedelta(days=1, seconds=1), False),
        (dt.timedelta(days=400), False),
    ],
)
def test_an_event_slightly_ahead_is_accepted_and_far_ahead_refused(
    bot: Bot, api: APIClient, ahead: dt.timedelta, accepted: bool
) -> None:
    from unittest import mock

    body = {"kind": "startup", "occurred_at": (NOW + ahead).isoformat()}
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        response = api.post("/api/v1/events/", body, format="json")
    assert response.status_code == (201 if accepted else 400)
    assert bot.events.count() == (1 if accepted else 0)


@pytest.mark.parametrize(
    ("executed_at", "message"),
    [
        ("1999-12-31T23:59:59Z", RFC3339_FROM_2000),  # the pattern says so
        ("2000-01-01T00:00:00+01:00", "Must be in the year 2000 or later."),  # 1999-12-31 23:00 UTC
        ("2099-01-01T00:00:00Z", "Must not be more than a day in the future."),
    ],
)
def test_out_of_range_times_are_refused_with_a_readable_message(
    bot: Bot, api: APIClient, executed_at: str, message: str
) -> None:
    response = post(api, [make_trade(1), make_trade(2, executed_at=executed_at)])
    assert response.status_code == 400
    assert response.json()["errors"] == {"1": {"executed_at": [message]}}
    assert Trade.objects.count() == 0


def test_a_time_sent_with_an_offset_is_stored_as_the_same_instant(bot: Bot, api: APIClient) -> None:
    post(api, make_trade(1, executed_at="2026-01-15T10:31:00.250-05:00"))
    stored = Trade.objects.get()
    assert stored.executed_at == dt.datetime(2026, 1, 15, 15, 31, 0, 250000, tzinfo=dt.UTC)
    assert stored.trading_day == dt.date(2026, 1, 15)


# --- strict types: what the document says a value is, it must be ------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/events/", {"kind": "custom", "message": 0}, "message"),
        ("/api/v1/events/", {"kind": "custom", "message": ["a"]}, "message"),
        ("/api/v1/heartbeat/", {"status": 0}, "status"),
        ("/api/v1/heartbeat/", {"status": True}, "status"),
    ],
)
def test_text_fields_take_text_only(bot: Bot, api: APIClient, path: str, body: Any, field: str) -> None:
    response = api.post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {field: ["Not a valid string."]}
    bot.refresh_from_db()
    assert bot.events.count() == 0 and bot.last_heartbeat_at is None


@pytest.mark.parametrize(("field", "value"), [("quantity", '"1.5"'), ("price", '"187.25"'), ("pnl", '"-2"')])
def test_numbers_are_json_numbers_not_strings(bot: Bot, api: APIClient, field: str, value: str) -> None:
    trade = make_trade(1, pnl=1.0)
    body = json.dumps(trade).replace(f'"{field}": {json.dumps(trade[field])}', f'"{field}": {value}')
    assert value in body
    response = post(api, body)
    assert response.status_code == 400
    assert response.json()["errors"] == {field: ["Must be a JSON number, not a string."]}


@pytest.mark.parametrize("field", ["symbol", "side"])
def test_text_is_taken_as_sent_not_stripped(bot: Bot, api: APIClient, field: str) -> None:
    # The document's pattern and maxLength hold of what is sent, so " msft " is refused.
    response = post(api, make_trade(1, **{field: " " + make_trade()[field] + " "}))
    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("symbol=", "symbol"),
        ("side=", "side"),
        ("date=", "date"),
        ("limit=", "limit"),
        ("symbol=AA%00PL", "symbol"),
        ("symbol=-AAPL", "symbol"),
        ("strategy=a%01b", "strategy"),
        ("side=hold", "side"),
        ("date=2026-1-2", "date"),
        ("limit=5.0", "limit"),
        ("limit=%205", "limit"),
    ],
)
def test_an_empty_or_malformed_filter_is_a_400_naming_it(
    bot: Bot, api: APIClient, query: str, field: str
) -> None:
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_an_empty_date_on_the_summary_is_a_400_not_today(bot: Bot, api: APIClient) -> None:
    response = api.get("/api/v1/summary/daily/?date=")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["date"]
    assert api.get("/api/v1/summary/daily/").status_code == 200


def test_an_empty_strategy_filter_means_trades_without_one(bot: Bot, api: APIClient) -> None:
    post(api, [make_trade(1, strategy=""), make_trade(2)])
    results = api.get(f"{URL}?strategy=").json()["results"]
    assert [row["external_id"] for row in results] == ["ord-1"]


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [
        ("0190-07-17T17:12:20Z", RFC3339_FROM_2000),
        ("1999-12-31T23:59:59Z", RFC3339_FROM_2000),
        ("2000-01-01T00:30:00+01:00", "Must be in the year 2000 or later."),
        (
            "2026-02-30T15:04:05Z",
            "No such date and time (such as February 30).",
        ),
        ("2026-01-02 15:04:05Z", RFC3339_FROM_2000),
        ("2026-01-02T15:04Z", RFC3339_FROM_2000),
        ("2026-01-02T15:04:05+0100", RFC3339_FROM_2000),
    ],
)
def test_event_times_have_the_bounds_and_the_form_of_trade_times(
    bot: Bot, api: APIClient, occurred_at: str, message: str
) -> None:
    response = api.post("/api/v1/events/", {"kind": "custom", "occurred_at": occurred_at}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"occurred_at": [message]}
    assert bot.events.count() == 0


@pytest.mark.parametrize("occurred_at", ["2000-01-01T00:00:00Z", "2026-01-02t15:04:05.123456789z"])
def test_an_event_at_the_earliest_moment_or_in_lower_case_is_accepted(
    bot: Bot, api: APIClient, occurred_at: str
) -> None:
    body = {"kind": "custom", "occurred_at": occurred_at}
    assert api.post("/api/v1/events/", body, format="json").status_code == 201


RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def test_every_time_the_api_answers_is_rfc3339_in_utc(bot: Bot, api: APIClient) -> None:
    import re

    # An offset the market's zone never had in 2026, and a market-time one.
    event = api.post(
        "/api/v1/events/", {"kind": "custom", "occurred_at": "2026-01-02T09:30:00-05:00"}, format="json"
    ).json()
    assert event["occurred_at"] == "2026-01-02T14:30:00Z"
    post(api, make_trade(1, executed_at="2026-01-15T10:31:00+05:45", pnl=1.0))
    heartbeat = api.post("/api/v1/heartbeat/", {}, format="json").json()
    trades = api.get(URL).json()["results"]
    summary = api.get("/api/v1/summary/daily/?date=2026-01-14").json()  # 23:46 in New York
    status = api.get("/api/v1/status/").json()
    times = [
        event["occurred_at"],
        event["received_at"],
        heartbeat["received_at"],
        trades[0]["executed_at"],
        trades[0]["received_at"],
        summary["best_trade"]["executed_at"],
        status["checked_at"],
    ]
    for value in times:
        assert re.match(RFC3339_UTC, value), value
    assert trades[0]["executed_at"] == "2026-01-15T04:46:00Z"


def test_the_renderer_writes_a_local_mean_time_offset_as_utc() -> None:
    from zoneinfo import ZoneInfo

    from trades.renderers import APIJSONRenderer

    moment = dt.datetime(190, 7, 17, 17, 12, 20, tzinfo=ZoneInfo("America/New_York"))
    assert moment.isoformat().endswith("-04:56:02")  # what used to leak
    rendered = json.loads(APIJSONRenderer().render({"at": moment}))
    assert rendered == {"at": "0190-07-17T22:08:22Z"}


def test_free_form_numbers_stay_within_64_bits_whole_or_not(bot: Bot, api: APIClient) -> None:
    too_big = api.post("/api/v1/heartbeat/", {"details": {"n": 1e19}}, format="json")
    assert too_big.status_code == 400 and "details" in too_big.json()["errors"]
    fine = api.post("/api/v1/heartbeat/", {"details": {"n": 9.2e18, "m": -(2**63)}}, format="json")
    assert fine.status_code == 200


def test_the_documented_404_and_406_are_real_and_json(bot: Bot, api: APIClient) -> None:
    unknown_format = api.get(f"{URL}?format=xml")
    assert unknown_format.status_code == 404 and unknown_format.json()["detail"]
    not_acceptable = api.get(URL, HTTP_ACCEPT="text/html")
    assert not_acceptable.status_code == 406 and not_acceptable.json()["detail"]


@pytest.mark.parametrize(
    ("external_id", "accepted"),
    [
        ("ord 1", True),
        (" ord-1", False),
        ("ord-1 ", False),
        # U+0085 (NEL) is a space to Python and to pydantic's engine but not to an ECMA one:
        # the published pattern names it, so the document and the validator agree.
        ("\u0085", False),
        ("ord-1\u0085", False),
        ("ord\u00851", True),
        ("\u3000ord-1", False),
        ("ord\u00a01", True),
    ],
)
def test_an_external_id_is_stored_as_sent_so_spaces_at_either_end_are_refused(
    api: APIClient, external_id: str, accepted: bool
) -> None:
    response = api.post("/api/v1/trades/", make_trade(external_id=external_id), format="json")
    assert response.status_code == (201 if accepted else 400), response.content
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    (pattern,) = set(_external_id_patterns(schema["paths"]["/api/v1/trades/"]["post"]["requestBody"]))
    assert bool(re.search(pattern, external_id)) is accepted
    # And as an ECMA engine reads it (a generated client, a fuzzer's checks): Node.js.
    script = "process.stdout.write(String(new RegExp(process.argv[1], 'u').test(process.argv[2])))"
    ecma = subprocess.run(
        ["node", "-e", script, pattern, external_id], capture_output=True, text=True, check=True
    )
    assert ecma.stdout == str(accepted).lower()


def _external_id_patterns(node: Any) -> list[str]:
    """Every pattern the document gives a trade's ``external_id``, wherever it nests it."""
    found: list[str] = []
    if isinstance(node, dict):
        field = node.get("properties", {}).get("external_id")
        if isinstance(field, dict) and "pattern" in field:
            found.append(field["pattern"])
        for key, value in node.items():
            if key != "properties" or not isinstance(value, dict):
                found += _external_id_patterns(value)
            else:
                found += [p for v in value.values() for p in _external_id_patterns(v)]
    elif isinstance(node, list):
        found += [p for item in node for p in _external_id_patterns(item)]
    return found


# --- the wire limits on every parse path ----------------------------------------------------

# Above this many commas a list body's items are counted one by one before pydantic reads the
# whole of it (trades/validation.py); below it pydantic's own max_length refuses a long batch.
PRE_COUNT_ABOVE_COMMAS = 32 * wire.MAX_BATCH
TOO_MANY = {
    "detail": f"A batch holds at most {wire.MAX_BATCH} trades.",
    "errors": {
        "body": [f"Got more than {wire.MAX_BATCH} trades; split them into batches of {wire.MAX_BATCH}."]
    },
}


def note_of(size: int, char: str = "x") -> dict[str, str]:
    """A JSON object of exactly ``size`` bytes as stored (``json.dumps``), mostly of ``char``."""
    width = len(json.dumps(char)) - 2  # "x" is 1 byte, "\u0001" and "\u00e9" (é) 6
    fill = size - len(json.dumps({"note": ""}))
    value = {"note": char * (fill // width) + "x" * (fill % width)}
    assert len(json.dumps(value)) == size
    return value


def batch_body(count: int, commas_each: int = 0, tail: str = "]") -> str:
    items = [json.dumps(make_trade(n, metadata={"note": "," * commas_each})) for n in range(count)]
    return "[" + ", ".join(items) + tail


@pytest.mark.parametrize("commas_each", [0, 40], ids=["parsed-whole", "counted-first"])
def test_a_batch_of_exactly_the_limit_is_taken_and_one_more_is_refused_naming_it(
    api: APIClient, commas_each: int
) -> None:
    full = batch_body(wire.MAX_BATCH, commas_each)
    assert (full.count(",") > PRE_COUNT_ABOVE_COMMAS) == bool(commas_each)
    response = post(api, full)
    assert (response.status_code, response.json()["created"]) == (201, wire.MAX_BATCH)
    response = post(api, batch_body(wire.MAX_BATCH + 1, commas_each).replace('"ord-', '"more-'))
    assert (response.status_code, response.json()) == (400, TOO_MANY)
    assert Trade.objects.count() == wire.MAX_BATCH


def test_a_list_is_counted_first_from_just_past_the_comma_threshold(api: APIClient) -> None:
    """Counted first, a list of more than the limit is refused on its count, whatever follows the
    items; parsed whole, the broken tail is what is refused. The threshold is exact."""

    def body(count: int, commas: int) -> str:
        text = batch_body(count, tail=", !]")
        missing = commas - text.count(",")
        assert missing >= 0
        text = text.replace('"note": ""', '"note": "' + "," * missing + '"', 1)
        assert text.count(",") == commas
        return text

    past = post(api, body(wire.MAX_BATCH + 1, PRE_COUNT_ABOVE_COMMAS + 1))
    assert (past.status_code, past.json()) == (400, TOO_MANY)
    at = post(api, body(wire.MAX_BATCH + 1, PRE_COUNT_ABOVE_COMMAS))
    assert at.status_code == 400 and at.json()["errors"]["body"][0].startswith("Not valid JSON")
    # Counted first, exactly the limit of items is not too many: the broken tail is refused.
    full = post(api, body(wire.MAX_BATCH, PRE_COUNT_ABOVE_COMMAS + 1))
    assert full.status_code == 400 and full.json()["errors"]["body"][0].startswith("Not valid JSON")
    assert Trade.objects.count() == 0


def metadata_bodies(path: str, metadata: dict[str, Any]) -> tuple[str, Any]:
    """A body carrying ``metadata`` by one parse path, and where its error is keyed."""
    trade = make_trade(1, metadata=metadata)
    if path == "one object":
        return json.dumps(trade), ()
    if path == "a list":
        return json.dumps([trade]), ("0",)
    if path == "a list counted first":
        # Ten trades of metadata at the limit, all commas: over 40,000 commas.
        others = [
            make_trade(n, metadata={"note": "," * (wire.METADATA_MAX_BYTES - 12)}) for n in range(2, 11)
        ]
        body = json.dumps([trade, *others])
        assert body.count(",") > PRE_COUNT_ABOVE_COMMAS
        return body, ("0",)
    # A body pydantic's parser refuses (an unpaired surrogate in a field after the metadata):
    # the fields are then checked one by one, in order.
    del trade["strategy"]
    return json.dumps({**trade, "strategy": "\ud800"}), ()


@pytest.mark.parametrize("char", ["x", "\x01", "é"], ids=["ascii", "escaped-control", "non-ascii"])
@pytest.mark.parametrize("path", ["one object", "a list", "a list counted first", "unreadable by pydantic"])
def test_metadata_of_exactly_its_byte_limit_is_taken_and_one_byte_more_refused(
    api: APIClient, path: str, char: str
) -> None:
    at_limit, key = metadata_bodies(path, note_of(wire.METADATA_MAX_BYTES, char))
    past_limit, _ = metadata_bodies(path, note_of(wire.METADATA_MAX_BYTES + 1, char))
    response = post(api, at_limit)
    errors = response.json().get("errors", {})
    for part in key:
        errors = errors.get(part, {})
    if path == "unreadable by pydantic":
        assert response.status_code == 400 and list(errors) == ["strategy"]  # the metadata passed
    else:
        assert response.status_code == 201, response.content
    response = post(api, past_limit.replace('"ord-', '"past-'))
    errors = response.json()["errors"]
    for part in key:
        errors = errors[part]
    assert response.status_code == 400
    assert errors == {"metadata": ["At most 4 KB of JSON (got 4.0 KB)."]}


@pytest.mark.parametrize("char", ["x", "\x01"], ids=["ascii", "escaped-control"])
@pytest.mark.parametrize(
    ("path", "body", "ok"),
    [("/api/v1/heartbeat/", {"status": "running"}, 200), ("/api/v1/events/", {"kind": "custom"}, 201)],
)
def test_details_of_exactly_their_byte_limit_are_taken_and_one_byte_more_refused(
    bot: Bot, api: APIClient, path: str, body: dict[str, Any], ok: int, char: str
) -> None:
    at_limit = api.post(path, {**body, "details": note_of(wire.DETAILS_MAX_BYTES, char)}, format="json")
    assert at_limit.status_code == ok, at_limit.content
    past = api.post(path, {**body, "details": note_of(wire.DETAILS_MAX_BYTES + 1, char)}, format="json")
    assert past.status_code == 400
    assert past.json()["errors"] == {"details": ["At most 16 KB of JSON (got 16.0 KB)."]}


def test_metadata_typed_in_the_admin_has_the_same_byte_limit() -> None:
    from django.core.exceptions import ValidationError

    field = Trade._meta.get_field("metadata")
    field.run_validators(note_of(wire.METADATA_MAX_BYTES, "\x01"))
    with pytest.raises(ValidationError, match=r"At most 4 KB of JSON \(got 4.0 KB\)"):
        field.run_validators(note_of(wire.METADATA_MAX_BYTES + 1, "\x01"))
