from __future__ import annotations

from django.contrib import admin

from backups.models import BackupRecord
from trades.formats import format_duration, format_quantity, format_size
from trades.paging import CappedCountPaginator
from trades.readonly import ReadOnlyAdminMixin


@admin.register(BackupRecord)
class BackupRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: records are written by the backups themselves."""

    list_display = (
        "created_at",
        "kind",
        "object_name",
        "state",
        "size_shown",
        "trade_count_shown",
        "duration_shown",
        "provider",
    )
    # The record's page: sizes, counts and durations as a person reads them, not raw numbers.
    fields = (
        "created_at",
        "finished_at",
        "kind",
        "object_name",
        "provider",
        "state",
        "size_shown",
        "trade_count_shown",
        "duration_shown",
        "sha256",
        "fingerprint",
        "error",
    )
    readonly_fields = fields
    list_filter = ("state", "kind", "provider")
    search_fields = ("object_name", "sha256", "error")
    # No date hierarchy (a SELECT DISTINCT over every record) and no full count.
    paginator = CappedCountPaginator
    show_full_result_count = False

    @admin.display(description="size", ordering="size")
    def size_shown(self, record: BackupRecord) -> str:
        return format_size(record.size)

    @admin.display(description="trades", ordering="trade_count")
    def trade_count_shown(self, record: BackupRecord) -> str:
        return format_quantity(record.trade_count)

    @admin.display(description="duration", ordering="duration")
    def duration_shown(self, record: BackupRecord) -> str:
        return format_duration(record.duration)
