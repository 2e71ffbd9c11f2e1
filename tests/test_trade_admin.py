"""Recorded trades are read-only in the admin: shown and exported, never added, changed or deleted
(a correction is a new trade from the bot); a trade's title reads like a fill."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import stored_trade
from trades.models import Bot, Trade


@pytest.fixture
def trade(bot: Bot) -> Trade:
    Trade.objects.record_batch(bot, [stored_trade(1, pnl=Decimal("-12.5"))])
    return Trade.objects.get()


def test_a_posted_change_is_refused_and_changes_nothing(admin_client: Client, trade: Trade) -> None:
    before = Trade.objects.values().get()
    url = reverse("admin:trades_trade_change", args=[trade.pk])
    response = admin_client.post(
        url,
        {"symbol": "EVIL", "side": "SELL", "quantity": "1", "price": "1", "pnl": "1000000", "metadata": "{}"},
    )
    assert response.status_code == 403
    assert Trade.objects.values().get() == before


def test_a_posted_delete_is_refused_and_the_trade_stays(admin_client: Client, trade: Trade) -> None:
    url = reverse("admin:trades_trade_delete", args=[trade.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    assert Trade.objects.filter(pk=trade.pk).exists()


def test_no_trade_is_added_in_the_admin(admin_client: Client, trade: Trade) -> None:
    assert admin_client.post(reverse("admin:trades_trade_add"), {}).status_code == 403
    assert Trade.objects.count() == 1


def test_the_bulk_delete_action_is_gone_and_a_posted_one_deletes_nothing(
    admin_client: Client, trade: Trade
) -> None:
    changelist = reverse("admin:trades_trade_changelist")
    page = admin_client.get(changelist)
    actions = [value for value, _ in page.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions and "export_csv" in actions
    response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [trade.pk]})
    assert response.status_code in (200, 302)  # "No action selected", never a deletion
    assert Trade.objects.filter(pk=trade.pk).exists()


def test_a_trades_page_shows_values_with_no_input_box(admin_client: Client, trade: Trade) -> None:
    page = admin_client.get(reverse("admin:trades_trade_change", args=[trade.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for field in ("symbol", "side", "quantity", "price", "pnl", "strategy", "metadata"):
        assert f'name="{field}"' not in html, field
    assert 'name="_save"' not in html and "deletelink" not in html
    assert str(trade) in html


def test_the_csv_export_still_answers(admin_client: Client, trade: Trade) -> None:
    response = admin_client.post(
        reverse("admin:trades_trade_changelist"), {"action": "export_csv", "_selected_action": [trade.pk]}
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 2 and trade.external_id in lines[1]


@pytest.mark.parametrize(
    ("side", "quantity", "price", "title"),
    [
        ("SELL", "65.00000000", "123.47000000", "SELL 65 NVDA @ 123.47"),
        ("BUY", "0.50", "123.4", "BUY 0.5 NVDA @ 123.40"),
        ("BUY", "10", "0.0012", "BUY 10 NVDA @ 0.0012"),  # a penny price keeps its digits
        ("SELL", "1500", "1234.5", "SELL 1,500 NVDA @ 1,234.50"),  # thousands separated, as money is
        ("BUY", "0.00000001", "123.45678901", "BUY 0.00000001 NVDA @ 123.45678901"),
    ],
)
def test_a_trades_title_reads_like_a_fill(side: str, quantity: str, price: str, title: str) -> None:
    assert str(Trade(side=side, quantity=Decimal(quantity), symbol="NVDA", price=Decimal(price))) == title


def test_a_stored_trades_title_drops_the_columns_zeros(bot: Bot) -> None:
    Trade.objects.record_batch(
        bot, [stored_trade(1, side="SELL", symbol="NVDA", quantity=Decimal(65), price=Decimal("123.47"))]
    )
    stored = Trade.objects.get()
    assert stored.quantity == Decimal("65") and str(stored) == "SELL 65 NVDA @ 123.47"
