"""The API's content negotiation (trades/negotiation.py) answers as DRF's own does, Accept header by
Accept header: its short way for a request that takes JSON changes nothing but the cost."""

from __future__ import annotations

import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from tests.conftest import make_trade
from trades.models import Trade
from trades.negotiation import APIContentNegotiation
from trades.renderers import APIJSONRenderer

ACCEPTS = [
    None,  # no header: */*
    "",  # empty: DRF refuses it (406)
    " ",
    "*/*",
    "application/json",
    "application/json; indent=4",
    "application/*",
    "*/*;q=0",
    "text/html",
    "application/xml",
    "text/html, application/json;q=0.9",
]


def answer(negotiation: DefaultContentNegotiation, request: Request) -> object:
    try:
        renderer, media_type = negotiation.select_renderer(request, [APIJSONRenderer()])
    except Exception as exc:  # DRF's refusals: NotAcceptable, Http404
        return type(exc).__name__
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=xml", "?symbol=AAPL"])
def test_the_api_negotiates_as_drf_does(accept: str | None, query: str) -> None:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/v1/trades/{query}", **headers))
    assert answer(APIContentNegotiation(), request) == answer(DefaultContentNegotiation(), request)


@pytest.mark.django_db
@pytest.mark.parametrize(("accept", "status"), [("application/json", 201), ("", 406), ("text/html", 406)])
def test_a_trade_post_that_cannot_take_json_is_refused_before_it_is_stored(
    api: APIClient, accept: str, status: int
) -> None:
    response = api.post("/api/v1/trades/", make_trade(), format="json", HTTP_ACCEPT=accept)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert Trade.objects.count() == (1 if status == 201 else 0)
