"""The backup schedules, collected by the site's schedule registry (``setup_schedules``)."""

from __future__ import annotations

from typing import Any

SCHEDULES: list[dict[str, Any]] = [
    {
        "name": "backup-sync",
        "func": "backups.tasks.sync_latest",
        "seconds": "DB_SYNC_INTERVAL",
        "enabled_by": "DB_SYNC_ENABLED",
    },
    {
        # After the close (16:00) with time for the last fills to arrive.
        "name": "backup-daily",
        "func": "backups.tasks.daily_backup",
        "cron": "30 16 * * *",
        "trading_days_only": True,
    },
    {
        "name": "backup-prune",
        "func": "backups.tasks.prune_old_backups",
        "cron": "0 17 * * *",
    },
]
