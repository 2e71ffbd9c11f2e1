from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from backups.models import BackupRecord
from backups.progress import human_size
from trades.paging import CappedCountPaginator


@admin.register(BackupRecord)
class BackupRecordAdmin(admin.ModelAdmin):
    """Read-only: records are written by the backups themselves."""

    list_display = (
        "created_at",
        "kind",
        "object_name",
        "state",
        "size_shown",
        "trade_count",
        "duration_shown",
        "provider",
    )
    list_filter = ("state", "kind", "provider")
    search_fields = ("object_name", "sha256", "error")
    # No date hierarchy (a SELECT DISTINCT over every record) and no full count.
    paginator = CappedCountPaginator
    show_full_result_count = False

    @admin.display(description="size", ordering="size")
    def size_shown(self, record: BackupRecord) -> str:
        return "" if record.size is None else human_size(record.size)

    @admin.display(description="duration", ordering="duration")
    def duration_shown(self, record: BackupRecord) -> str:
        return "" if record.duration is None else f"{record.duration:.1f} s"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
