"""Hooks the higher apps listen to; ``trades`` sends or defines them and knows no listener."""

from __future__ import annotations

from django.dispatch import Signal

# A problem of the site itself that should become an alert (the alerts app
# listens; backups sends it). Keyword arguments: ``kind`` (e.g.
# "backup_failed"), ``level`` ("info" | "warning" | "critical"), ``title``,
# ``message`` (no secrets) and ``subject`` (the dedup key).
site_alert = Signal()
