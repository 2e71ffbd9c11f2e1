"""Every object the admin shows has a name ("object (4)" never), and its numbers read as numbers."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from alerts.models import Alert, Channel, DeliveryAttempt, PendingEvaluation, TradingHalt
from backups.models import BackupRecord, Kind, State
from tests.conftest import stored_trade
from trades.models import Bot, BotEvent, Trade

pytestmark = pytest.mark.django_db

UNNAMED = re.compile(r"\bobject \(\d+\)")


def shown_models() -> set[type[models.Model]]:
    """Every model the admin shows: those registered, and those shown inline on another's page."""
    shown = set(admin.site._registry)
    for model_admin in admin.site._registry.values():
        shown |= {inline.model for inline in model_admin.inlines}
    return shown


def test_every_model_the_admin_shows_has_a_name_of_its_own() -> None:
    unnamed = sorted(m._meta.label for m in shown_models() if m.__str__ is models.Model.__str__)
    assert unnamed == []


def test_every_model_of_the_apps_has_a_name_of_its_own() -> None:
    from django.apps import apps

    ours = [apps.get_app_config(label) for label in ("trades", "alerts", "backups")]
    unnamed = sorted(
        m._meta.label for config in ours for m in config.get_models() if m.__str__ is models.Model.__str__
    )
    assert unnamed == []


@pytest.fixture
def one_of_each(bot: Bot) -> None:
    """A row of each model the admin shows, with what hangs on it (a delivery attempt, a fill)."""
    channel = Channel.objects.get(name="discord")  # the migration's
    Trade.objects.record_batch(bot, [stored_trade(1, quantity=Decimal(65), price=Decimal("123.47"))])
    BotEvent.objects.record(bot, kind="start", message="up")
    alert = Alert.objects.create(channel=channel, bot=bot, source="test", level="info", title="Hello")
    DeliveryAttempt.objects.create(
        alert=alert, channel=channel, status_code=503, error="HTTP 503", duration_ms=70.45428899982653
    )
    TradingHalt.objects.create(
        bot=bot, trading_day=dt.date(2026, 1, 15), ends_on=dt.date(2026, 1, 16), reason="max daily loss"
    )
    PendingEvaluation.objects.create(bot=bot, first_trade_id=1, queued_at=timezone.now())
    BackupRecord.objects.create(
        object_name="trades_latest.db",
        provider="local",
        kind=Kind.LATEST,
        state=State.SUCCEEDED,
        size=12_897_484,
        trade_count=123_456,
        duration=0.07045428899982653,
        finished_at=timezone.now(),
    )
    payload = SignedPackage.dumps({"id": "abc", "name": "alpha-evaluation", "func": "math.floor"})
    OrmQ.objects.create(key="monitor", payload=payload)


def test_no_admin_page_shows_an_unnamed_object(admin_client: Client, one_of_each: None) -> None:
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        info = (model._meta.app_label, model._meta.model_name)
        listing = admin_client.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert listing.status_code == 200, model
        assert not UNNAMED.search(listing.content.decode()), model
        first = model._default_manager.first()
        if first is None:
            continue
        page = admin_client.get(reverse("admin:{}_{}_change".format(*info), args=[first.pk]))
        assert page.status_code == 200, model
        assert not UNNAMED.search(page.content.decode()), model


def test_an_alerts_delivery_attempts_are_named_and_timed(admin_client: Client, one_of_each: None) -> None:
    alert = Alert.objects.get(title="Hello")
    page = admin_client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert "DeliveryAttempt object" not in page
    assert "to discord at " in page and ": HTTP 503" in page  # the attempt's name
    assert "0.07 s" in page and "70.454" not in page


def test_a_backups_page_reads_its_size_duration_and_count(admin_client: Client, one_of_each: None) -> None:
    record = BackupRecord.objects.get()
    page = admin_client.get(f"/admin/backups/backuprecord/{record.pk}/change/").content.decode()
    assert "12.3 MB" in page and "0.07 s" in page and "123,456" in page
    assert "12897484" not in page and "0.0704" not in page


def test_a_trades_title_reads_like_a_fill(one_of_each: None) -> None:
    assert str(Trade.objects.get()) == "BUY 65 AAPL @ 123.47"


def test_a_trades_page_reads_its_quantity_price_and_pnl(admin_client: Client, one_of_each: None) -> None:
    trade = Trade.objects.get()
    page = admin_client.get(f"/admin/trades/trade/{trade.pk}/change/").content.decode()
    assert "65.00000000" not in page and "123.47000000" not in page
    assert '<div class="readonly">65</div>' in page and '<div class="readonly">123.47</div>' in page
