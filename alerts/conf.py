"""Tunables of the alerts app, each overridable by a Django setting of the same name."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds one webhook request may take (connect and read).
    "ALERT_HTTP_TIMEOUT": 10.0,
    # Requests per delivery attempt (timeouts, connection errors, 5xx, 429).
    "ALERT_HTTP_ATTEMPTS": 3,
    # Longest wait (s) spent inside one task; a longer retry_after is left to a later run.
    "ALERT_HTTP_MAX_WAIT": 10.0,
    # A claim older than this is a killed worker's: the alert is sent again.
    # Longer than one send can take: attempts x timeout + waits = 3 x 10 + 2 x 10 s.
    "ALERT_SEND_LEASE_SECONDS": 120,
    # One delivery run stops starting new sends after this long (the cluster kills a task at 300 s).
    "ALERT_DRAIN_SECONDS": 120,
    # Delivery runs an alert may fail before it is marked failed (resend from the admin).
    "ALERT_MAX_ATTEMPTS": 10,
    # A site problem (site_alert) of one kind and subject alerts at most this often.
    "SITE_ALERT_COOLDOWN_MINUTES": 60,
    # Health says "degraded" when an alert has waited unsent longer than this.
    "ALERT_OUTBOX_STALE_MINUTES": 5,
    # The e-mail channel sends through Django's SMTP backend whatever EMAIL_BACKEND says
    # (the test runner swaps that one for an in-memory box).
    "ALERT_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
    # The anomaly rules (alerts.rules.anomaly), set from the environment (monitorsite/settings.py):
    # an hour with fewer fills than this never alerts as too many, and a bot is "quiet" only at an
    # hour when it always filled at least this many times;
    "ANOMALY_MIN_FILLS": 5,
    # a smaller loss in an hour (in the account's money) never alerts;
    "ANOMALY_MIN_LOSS": 100,
    # a bot whose stored history at the hour reaches back less than this is not judged.
    "ANOMALY_MIN_HISTORY_DAYS": 14,
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
