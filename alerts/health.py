"""The outbox's health: alerts that should have gone out by now."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from alerts.conf import setting
from alerts.models import Alert, AlertRule, Channel
from alerts.rules import describe

CHECKS = {
    "alerts": {"check": "alerts.health.outbox", "vital": False},
    "alert_rules": {"check": "alerts.health.rules", "vital": False},
}


def outbox() -> dict[str, Any]:
    """Degraded as soon as a channel's last send failed (naming it and why), when a channel is
    disabled, or when alerts have waited unsent longer than ``ALERT_OUTBOX_STALE_MINUTES``."""
    minutes = setting("ALERT_OUTBOX_STALE_MINUTES")
    stale = (
        Alert.objects.unsent().filter(created_at__lt=timezone.now() - dt.timedelta(minutes=minutes)).count()
    )
    suspended = list(
        Channel.objects.filter(enabled=True).exclude(disabled_reason="").values_list("name", flat=True)
    )
    failing = list(Channel.objects.failing().filter(disabled_reason=""))
    state: dict[str, Any] = {"ok": stale == 0 and not suspended and not failing, "unsent": stale}
    reasons = [f"channel {channel.name} {channel.failing_words}" for channel in failing]
    if failing:
        state["failing_channels"] = [channel.name for channel in failing]
    if stale:
        reasons.append(f"{stale} alert(s) unsent for over {minutes} min")
    if suspended:
        state["disabled_channels"] = suspended
        reasons.append(f"channel(s) disabled after a permanent failure: {', '.join(suspended)}")
    if reasons:
        state["reason"] = "; ".join(reasons)
    return state


def rules() -> dict[str, Any]:
    """Degraded while an enabled rule breaks its kind's rules: it is skipped, so it guards nothing."""
    broken = AlertRule.objects.broken()
    if not broken:
        return {"ok": True}
    names = [rule.name for rule in broken]
    first = broken[0]
    return {
        "ok": False,
        "broken_rules": names,
        "reason": f"{len(names)} alert rule(s) not evaluated until fixed in the admin: "
        f"{', '.join(names)} ({first.name}: {describe(first.problems)})",
    }
