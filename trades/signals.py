"""Hooks that let higher apps hear about what happens in trades, without trades importing them."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent once, after the transaction that stored new trades has committed.
#: kwargs: ``bot`` (the ``Bot``) and ``trade_ids`` (the ids that request newly
#: stored, in the order sent). Never sent when every trade was a repeat, and
#: never for trades stored by a transaction that rolled back.
trades_recorded = Signal()

#: Sent once, after the transaction that stored a heartbeat's state (a ``BotSnapshot``:
#: positions, account or host figures) has committed. kwargs: ``bot`` and ``snapshot``.
#: Never sent for a heartbeat that carried no state.
state_reported = Signal()

#: A problem of the site itself that an operator should be alerted to (a backup
#: failing again and again, say). kwargs: ``kind`` (str, e.g. "backup_failed"),
#: ``level`` ("info", "warning" or "critical"), ``title``, ``message`` and
#: ``subject`` (the key under which repeats of the same problem are folded).
#: Backups sends it and alerts listens, so neither imports the other.
site_alert = Signal()

#: ``manage.py daily_summary --send``: the command asks whoever sends summaries
#: (the alerts app) to send one. kwargs: ``day`` (date) and ``bot`` (a ``Bot`` or
#: None for every bot). A receiver returns one line saying what it did.
daily_summary_send = Signal()

#: ``manage.py period_summary --send``: like ``daily_summary_send``, with ``start``
#: and ``end`` (dates, both included) instead of ``day``.
period_summary_send = Signal()
