from __future__ import annotations

import csv
import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from trades import market
from trades.formats import (
    format_market_time,
    format_money,
    format_price,
    format_quantity,
    format_rate,
    format_size,
)
from trades.models import Bot, BotEvent, BotKey, BotSnapshot, Trade
from trades.paging import CappedCountPaginator
from trades.readonly import ReadOnlyAdminMixin

# The library's own key model is unused here: every key belongs to a bot.
admin.site.unregister(APIKey)

CSV_COLUMNS = (
    "id",
    "bot__name",
    "external_id",
    "executed_at",
    "trading_day",
    "symbol",
    "side",
    "quantity",
    "price",
    "pnl",
    "strategy",
    "received_at",
)


# A spreadsheet runs a text cell starting with one of these as a formula
# (OWASP "CSV injection"); tab and carriage return can smuggle one in.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with ' so it shows as text.

    Only text: numbers (a P&L of -12.5) stay numbers.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose write() hands the line back, for streaming CSV."""

    def write(self, value: str) -> str:
        return value


@admin.action(description="Export selected trades as CSV")
def export_csv(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    rows = queryset.order_by("executed_at", "id").values_list(*CSV_COLUMNS).iterator(chunk_size=2000)

    def lines() -> Any:
        yield writer.writerow([column.replace("bot__name", "bot") for column in CSV_COLUMNS])
        for row in rows:
            yield writer.writerow([spreadsheet_safe(value) for value in row])

    stamp = timezone.now().strftime("%Y%m%d_%H%M%S")
    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="trades_{stamp}.csv"'
    return response


class JSONText(forms.JSONField):
    """The admin's JSON box, shown as UTF-8 when it can be, escaped when it cannot.

    Django writes the value back into the form with ``ensure_ascii=False``; a
    lone surrogate (``"\\ud800"`` typed in, then refused) cannot be encoded as
    UTF-8, and the page answering "invalid" became a 500.
    """

    def prepare_value(self, value: object) -> str:
        text = super().prepare_value(value)
        try:
            text.encode()
        except UnicodeEncodeError:
            return json.dumps(value, cls=self.encoder)
        return text


class TradingDayFilter(admin.SimpleListFilter):
    """One trading day of the last ten, by equality: the (trading_day, executed_at) index then
    gives the day's newest trades without sorting them (a date range sorted the whole day)."""

    title = "trading day"
    parameter_name = "trading_day"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        today = market.today()
        start, end = market.last_trading_days(10, today)
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        sessions = [day for day in reversed(days) if market.is_trading_day(day)]
        return [(day.isoformat(), "Today" if day == today else f"{day:%a %Y-%m-%d}") for day in sessions]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        try:
            day = dt.date.fromisoformat(self.value())
        except ValueError:
            raise IncorrectLookupParameters(f"trading_day must be YYYY-MM-DD, got {self.value()!r}") from None
        return queryset.filter(trading_day=day)


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Recorded trades are the ledger as the bot reported it: the admin shows them (a view-only page)
    # and exports them, but never adds, changes or deletes one (ReadOnlyAdminMixin). A correction is
    # a new trade from the bot.
    list_display = (
        "executed_at",
        "bot",
        "symbol",
        "side",
        "quantity_shown",
        "price_shown",
        "pnl_shown",
        "strategy",
        "trading_day",
    )
    # No date hierarchy and no per-value symbol or strategy filters: each ran a
    # SELECT DISTINCT over every trade (over 400 ms at 200,000 trades); the search
    # box finds a symbol or a strategy, and the trading-day filter uses its index.
    list_filter = ("bot", "side", TradingDayFilter)
    search_fields = ("external_id", "symbol", "strategy")
    paginator = CappedCountPaginator
    list_select_related = ("bot",)
    # The view page: quantity, price and P&L as they read in the list, not as the columns store them.
    fields = (
        "bot",
        "external_id",
        "symbol",
        "side",
        "quantity_shown",
        "price_shown",
        "pnl_shown",
        "strategy",
        "executed_at",
        "trading_day",
        "metadata",
        "received_at",
    )
    readonly_fields = fields
    formfield_overrides = {models.JSONField: {"form_class": JSONText}}
    actions = (export_csv,)
    # Rendering a row costs the admin about a millisecond; 50 fill a phone's screen several times.
    list_per_page = 50
    # Facet counts would run a COUNT per filter value over every trade.
    show_facets = admin.ShowFacets.NEVER
    # COUNT(*) over a million trades on every page view is not worth it.
    show_full_result_count = False

    @admin.display(description="quantity", ordering="quantity")
    def quantity_shown(self, trade: Trade) -> str:
        return format_quantity(trade.quantity)

    @admin.display(description="price", ordering="price")
    def price_shown(self, trade: Trade) -> str:
        return format_price(trade.price)

    @admin.display(description="P&L", ordering="pnl")
    def pnl_shown(self, trade: Trade) -> str:
        if trade.pnl is None:
            return "-"
        css = "pnl-pos" if trade.pnl > 0 else "pnl-neg" if trade.pnl < 0 else ""
        return format_html('<span class="{}">{}</span>', css, format_money(trade.pnl))


class BotKeyInline(admin.TabularInline):
    model = BotKey
    extra = 0
    fields = ("name", "prefix", "read_only", "created", "expiry_date", "revoked")
    readonly_fields = ("name", "prefix", "read_only", "created")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # New keys are made with the "issue key" actions, which show the key once.
        return False


def _issue_keys(request: HttpRequest, queryset: QuerySet, *, read_only: bool) -> None:
    for bot in queryset:
        _, key = bot.issue_key(read_only=read_only)
        kind = "read-only" if read_only else "write"
        messages.warning(
            request,
            f"New {kind} key for {bot.name}: {key} — copy it now; it will not be shown again.",
        )


@admin.action(description="Issue a new write key")
def issue_write_key(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _issue_keys(request, queryset, read_only=False)


@admin.action(description="Issue a new read-only key")
def issue_read_only_key(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    _issue_keys(request, queryset, read_only=True)


SHOWN_SNAPSHOTS = 20


def _share(percent: Any, part: int | None) -> str:
    return "-" if percent is None else f"{format_rate(percent)} ({format_size(part)})"


class BotSnapshotInline(admin.TabularInline):
    """The bot's last ``SHOWN_SNAPSHOTS`` snapshots on its page, newest first, read-only ("-": not
    reported by that heartbeat). A sub-table: it stacks on a phone, each cell labelled (admin.js)."""

    model = BotSnapshot
    verbose_name_plural = f"last {SHOWN_SNAPSHOTS} snapshots"
    fields = (
        "time",
        "positions_shown",
        "unrealized",
        "equity_shown",
        "cash_shown",
        "disk_free",
        "memory",
        "rss",
        "cpu",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # what the bot reported: shown, never edited

    @admin.display(description="time")
    def time(self, snapshot: BotSnapshot) -> str:
        return format_market_time(snapshot.taken_at)

    @admin.display(description="positions")
    def positions_shown(self, snapshot: BotSnapshot) -> str:
        return format_quantity(snapshot.position_count)

    @admin.display(description="unrealized P&L")
    def unrealized(self, snapshot: BotSnapshot) -> str:
        return format_money(snapshot.unrealized_pnl)

    @admin.display(description="equity")
    def equity_shown(self, snapshot: BotSnapshot) -> str:
        return format_money(snapshot.equity)

    @admin.display(description="cash")
    def cash_shown(self, snapshot: BotSnapshot) -> str:
        return format_money(snapshot.cash)

    @admin.display(description="disk free")
    def disk_free(self, snapshot: BotSnapshot) -> str:
        return _share(snapshot.disk_free_percent, snapshot.disk_free_bytes)

    @admin.display(description="memory available")
    def memory(self, snapshot: BotSnapshot) -> str:
        return _share(snapshot.memory_available_percent, snapshot.memory_available_bytes)

    @admin.display(description="RSS")
    def rss(self, snapshot: BotSnapshot) -> str:
        return format_size(snapshot.rss_bytes)

    @admin.display(description="CPU")
    def cpu(self, snapshot: BotSnapshot) -> str:
        return format_rate(snapshot.cpu_percent)


class BotForm(forms.ModelForm):  # type: ignore[type-arg]
    """A bot's calendar and time zone are checked as ``create_bot`` checks them (the model's
    validators); left empty, they stay as they are (a new bot's: MARKET_CALENDAR and UTC)."""

    class Meta:
        model = Bot
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("calendar", "timezone"):
            if name in self.fields:
                self.fields[name].required = False
        if "calendar" in self.fields:
            self.fields["calendar"].validators = []  # checked once written as create_bot writes it

    def clean_calendar(self) -> str:
        code = str(self.cleaned_data.get("calendar") or self.instance.calendar).strip().upper()
        market.validate_calendar_code(code)
        return code

    def clean_timezone(self) -> str:
        return str(self.cleaned_data.get("timezone") or self.instance.timezone)


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    form = BotForm
    list_display = (
        "name",
        "is_active",
        "calendar",
        "stopped",
        "last_heartbeat",
        "last_heartbeat_status",
        "created_at",
    )
    list_filter = ("is_active",)
    search_fields = ("name",)
    readonly_fields = (
        "created_at",
        "stopped",
        "last_heartbeat_at",
        "last_heartbeat_status",
        "last_heartbeat_details",
    )
    inlines = (BotKeyInline, BotSnapshotInline)
    actions = (issue_write_key, issue_read_only_key)

    @admin.display(description="stopped", ordering="stopped_at")
    def stopped(self, bot: Bot) -> str:
        """Says "stopped at <market time>" after the bot said it shut down, until it runs again."""
        return "" if bot.stopped_at is None else f"stopped at {format_market_time(bot.stopped_at)}"

    @admin.display(description="last heartbeat", ordering="last_heartbeat_at")
    def last_heartbeat(self, bot: Bot) -> str:
        if bot.last_heartbeat_at is None:
            return "never"
        return f"{timesince(bot.last_heartbeat_at)} ago"

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        # A bot being added has no snapshots yet.
        return (
            self.inlines if obj is not None else tuple(i for i in self.inlines if i is not BotSnapshotInline)
        )

    def get_formset_kwargs(self, request: HttpRequest, obj: Any, inline: Any, prefix: str) -> dict[str, Any]:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, BotSnapshotInline):
            # The last few of a bot's thousands: their ids first (the formset filters by bot after,
            # which a sliced queryset cannot take); the positions stay in the database.
            last = BotSnapshot.objects.filter(bot=obj).order_by("-taken_at", "-id")[:SHOWN_SNAPSHOTS]
            kwargs["queryset"] = (
                BotSnapshot.objects.filter(pk__in=list(last.values_list("pk", flat=True)))
                .defer("positions")
                .order_by("-taken_at", "-id")
            )
        return kwargs

    def save_model(self, request: HttpRequest, obj: Bot, form: Any, change: bool) -> None:
        before = Bot.objects.filter(pk=obj.pk).values_list("calendar", "timezone").first() if change else None
        super().save_model(request, obj, form, change)
        if not change:
            _issue_keys(request, Bot.objects.filter(pk=obj.pk), read_only=False)
        elif before != (obj.calendar, obj.timezone) and obj.trades.exists():
            messages.warning(
                request,
                f"{obj.name}'s calendar changed: its new trades take their trading day from it. Run"
                f" `manage.py recompute_trading_days {obj.name}` to move its stored trades onto it.",
            )


@admin.register(BotKey)
class BotKeyAdmin(APIKeyModelAdmin):
    list_display = ("name", "bot", "prefix", "read_only", "created", "expiry_date", "_has_expired", "revoked")
    list_filter = ("bot", "read_only", "revoked")
    search_fields = ("name", "prefix", "bot__name")
    list_select_related = ("bot",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ("bot", "read_only")
        return fields


@admin.register(BotEvent)
class BotEventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "bot", "level", "kind", "message")
    list_filter = ("level", "kind", "bot")
    paginator = CappedCountPaginator
    search_fields = ("message",)
    list_select_related = ("bot",)
    readonly_fields = ("bot", "kind", "level", "message", "details", "occurred_at", "received_at")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
