"""Editing a trade in the admin holds it to the API's rules: nothing the API would refuse is saved."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import stored_trade
from trades.limits import DIGITS_MESSAGE
from trades.models import Bot, Trade


@pytest.fixture
def trade(bot: Bot) -> Trade:
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal("-12.5"))])
    return Trade.objects.get()


def form(trade: Trade, **changes: str) -> dict[str, Any]:
    """The change form as the admin page would post it, with ``changes`` typed in."""
    data = {
        "symbol": trade.symbol,
        "side": trade.side,
        "quantity": str(trade.quantity),
        "price": str(trade.price),
        "strategy": trade.strategy,
        "pnl": str(trade.pnl),
        "metadata": '{"order_type": "limit"}',
    }
    data.update(changes)
    return data


def errors_of(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("quantity", "12345678.12345678", DIGITS_MESSAGE),  # 16 significant digits
        ("pnl", "-123456789.12345678", DIGITS_MESSAGE),
        ("quantity", "0", "Must be greater than 0."),
        ("price", "-5", "Must be greater than 0."),
        ("price", "20000000", "Must be at most 10,000,000 in size."),
        ("pnl", "-200000000000", "Must be at most 100,000,000,000 in size."),
        ("metadata", '{"spread": NaN}', "infinit"),
        ("metadata", '{"note": "\\ud800"}', "surrogate"),
        ("metadata", "[" * 20 + "]" * 20, "Must be a JSON object."),
        ("metadata", '{"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}', "deeper"),
        ("metadata", '{"blob": "' + "x" * 5000 + '"}', "KB"),
    ],
)
def test_a_value_the_api_refuses_is_refused_in_the_admin_too(
    admin_client: Client, trade: Trade, field: str, typed: str, message: str
) -> None:
    before = Trade.objects.values().get()
    url = reverse("admin:trades_trade_change", args=[trade.pk])
    errors = errors_of(admin_client.post(url, form(trade, **{field: typed})))
    assert list(errors) == [field]
    assert any(message.lower() in error.lower() for error in errors[field]), errors
    assert Trade.objects.values().get() == before


def test_a_sound_edit_is_saved_exactly(admin_client: Client, trade: Trade) -> None:
    url = reverse("admin:trades_trade_change", args=[trade.pk])
    response = admin_client.post(
        url,
        form(trade, quantity="1234567.12345678", price="0.00000001", pnl="-99999999999.9999"),
    )
    assert response.status_code == 302, errors_of(response)
    trade.refresh_from_db()
    assert (trade.quantity, trade.price, trade.pnl) == (
        Decimal("1234567.12345678"),
        Decimal("0.00000001"),
        Decimal("-99999999999.9999"),
    )
