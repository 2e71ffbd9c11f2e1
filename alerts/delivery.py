"""Sending the outbox: claim, send, record, retry; fold what the rate limit holds back.

Guarantees and their limits:

* One worker at a time sends for a channel (a lease taken with a conditional
  UPDATE), so the channel's rate limit holds however many workers run.
* Each alert is claimed ``pending -> sending`` with a conditional UPDATE; only
  the worker whose UPDATE changed one row sends it.
* A worker killed mid-send leaves its alert ``sending``. Once the claim is
  older than ``ALERT_SEND_LEASE_SECONDS`` the next worker puts it back to
  ``pending`` and sends it. The lease is longer than one send can take
  (attempts x timeout + waits), so a slow but living worker is never
  overtaken. The window where a message can arrive twice is the moment
  between the service (Discord, Telegram …) accepting the message and our UPDATE to ``sent``: a worker
  killed exactly there (or a database write failing there) leads to a second
  copy. Webhooks have no idempotency key, so at-least-once is the best any
  client can do; everywhere else delivery is exactly once.
* Nothing here raises to the caller: errors are recorded on the alert and logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from alerts.conf import setting
from alerts.models import LEVEL_RANK, TEST_SOURCE, Alert, AlertState, Channel, DeliveryAttempt
from alerts.outbound import hide, remember_secrets
from alerts.transports import TransportError, transport_class, transport_for

logger = logging.getLogger(__name__)

RATE_WINDOW = dt.timedelta(minutes=1)
DIGEST_LINES = 60  # past this the digest says "and N more"; every alert stays linked to it
DIGEST_LINE_WIDTH = 200  # a line per folded alert, its message shortened to fit a phone's screen or two


def deliver_pending(now: dt.datetime | None = None) -> int:
    """Send what waits for every channel; returns the number of messages sent. Never raises."""
    sent = 0
    try:
        channels = list(Channel.objects.filter(enabled=True, disabled_reason=""))
    except Exception:
        logger.exception("alerts: cannot read channels")
        return 0
    for channel in channels:
        try:
            sent += deliver_channel(channel, now=now)
        except Exception:
            logger.exception("alerts: delivery to channel %s failed", channel.name)
    return sent


def deliver_channel(channel: Channel, now: dt.datetime | None = None) -> int:
    """Drain the channel's outbox under its lease.

    Another worker holding the lease is left to it; it looks again for alerts
    that arrived while it worked before it lets go, so none is stranded.
    """
    clock = _clock(now)
    sent = 0
    for _ in range(10):  # bounded: a flood is drained over several runs, never forever
        lease = _Lease.take(channel, clock())
        if lease is None:
            return sent
        newest_seen = Alert.objects.filter(channel=channel).aggregate(Max("pk"))["pk__max"] or 0
        try:
            sent += _drain(channel, clock, lease)
        finally:
            lease.release()
        arrived = Alert.objects.filter(channel=channel, state=AlertState.PENDING, pk__gt=newest_seen)
        if not arrived.exists():
            break
    return sent


def _clock(now: dt.datetime | None) -> Callable[[], dt.datetime]:
    return (lambda: now) if now is not None else timezone.now


def _lease_length() -> dt.timedelta:
    return dt.timedelta(seconds=setting("ALERT_SEND_LEASE_SECONDS"))


class _Lease:
    """A channel's send lease: its expiry time is also its owner's token."""

    def __init__(self, channel: Channel, until: dt.datetime) -> None:
        self.channel, self.until = channel, until

    @classmethod
    def take(cls, channel: Channel, now: dt.datetime) -> _Lease | None:
        until = now + _lease_length()
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        if Channel.objects.filter(free, pk=channel.pk).update(lease_until=until) != 1:
            return None
        return cls(channel, until)

    def renew(self, now: dt.datetime) -> bool:
        """Extend before each send; False when another worker took it over (ours had expired)."""
        until = max(now + _lease_length(), self.until + dt.timedelta(microseconds=1))
        if Channel.objects.filter(pk=self.channel.pk, lease_until=self.until).update(lease_until=until) != 1:
            return False
        self.until = until
        return True

    def release(self) -> None:
        Channel.objects.filter(pk=self.channel.pk, lease_until=self.until).update(lease_until=None)


def reclaim_abandoned(channel: Channel, now: dt.datetime) -> int:
    """Alerts a killed worker left ``sending`` go back to ``pending`` once their claim expired."""
    return Alert.objects.filter(
        channel=channel, state=AlertState.SENDING, claimed_at__lt=now - _lease_length()
    ).update(state=AlertState.PENDING, claimed_at=None)


def _drain(channel: Channel, clock: Callable[[], dt.datetime], lease: _Lease) -> int:
    now = clock()
    if reclaimed := reclaim_abandoned(channel, now):
        logger.warning("alerts: reclaimed %d alert(s) left unsent by a stopped worker", reclaimed)
    due = list(
        Alert.objects.filter(channel=channel, state=AlertState.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("created_at", "pk")
    )
    if not due:
        return 0
    # Priority order: a critical alert never waits behind info ones.
    due.sort(key=lambda a: (-LEVEL_RANK[a.level], a.created_at, a.pk))
    capacity = channel.rate_limit_per_minute - Alert.objects.sent_since(channel, now - RATE_WINDOW)
    sent = 0

    # Bounded, so a task sending to a hanging Discord ends well inside the cluster's task
    # timeout (300 s) instead of being killed by it; the next run carries on.
    stop_at = time.monotonic() + setting("ALERT_DRAIN_SECONDS")

    def send(alert: Alert) -> bool:
        nonlocal sent
        if time.monotonic() > stop_at or not lease.renew(clock()):
            return False
        outcome = send_alert(alert, channel, clock)
        sent += outcome == "sent"
        return outcome != "channel_disabled"

    for alert in [a for a in due if not a.foldable]:
        if not send(alert):
            return sent
        capacity -= 1
    foldable = [a for a in due if a.foldable]  # in priority order, like ``due``
    held = [a for a in foldable if a.held]
    fresh = [a for a in foldable if not a.held]
    if capacity > 0 and len(held) > 1:
        # The window's digest folds the least severe of the held alerts; the more severe
        # ones go out on their own first (severest, then oldest), while one message is
        # kept free for the digest. A warning held behind older info alerts is read as
        # itself; the info ones are what gets folded.
        alone, to_fold = _split_held(held, capacity - 1)
        for alert in alone:
            if not send(alert):
                return sent
            capacity -= 1
        if len(to_fold) > 1:
            try:
                digest = fold(channel, to_fold, clock())
            except _FoldConflict:
                return sent  # the next run sees the alerts as they are now
            if not send(digest):
                return sent
            capacity -= 1
        else:
            fresh = to_fold + fresh
    else:
        fresh = held + fresh
    for index, alert in enumerate(fresh):
        if capacity <= 0:
            waiting = [a.pk for a in fresh[index:] if not a.held]
            Alert.objects.filter(pk__in=waiting).update(held=True)
            break
        if not send(alert):
            return sent
        capacity -= 1
    return sent


def _split_held(held: list[Alert], room: int) -> tuple[list[Alert], list[Alert]]:
    """Held alerts (priority order) into those sent alone and those folded.

    Only alerts more severe than the least severe level held go alone, at most
    ``room`` of them; the rest, the least severe first among them, are folded.
    """
    lowest = min(LEVEL_RANK[a.level] for a in held)
    severe = [a for a in held if LEVEL_RANK[a.level] > lowest][: max(room, 0)]
    chosen = {a.pk for a in severe}
    return severe, [a for a in held if a.pk not in chosen]


def digest_line(alert: Alert) -> str:
    """``09:33:01 [warning] demo-bot: Data Quality: missing candles for AAPL…`` on one line."""
    when = alert.created_at.astimezone(timezone.get_current_timezone())
    line = f"{when:%H:%M:%S} [{alert.level}] {alert.title}"
    if alert.message:
        line += ": " + " ".join(alert.message.split())
    return line if len(line) <= DIGEST_LINE_WIDTH else line[: DIGEST_LINE_WIDTH - 1] + "…"


def digest_text(lines: list[str], limit: int | None, length: Callable[[str], int] = len) -> str:
    """As many whole lines as fit in ``limit`` (measured by ``length``), then "… and N more"."""

    def more(count: int) -> str:
        return f"… and {count} more (see the alert history in the admin)"

    shown: list[str] = []
    for index, line in enumerate(lines[:DIGEST_LINES]):
        candidate = "\n".join([*shown, line])
        rest = len(lines) - index - 1
        tail = "\n" + more(rest) if rest else ""
        if limit is not None and length(candidate + tail) > limit:
            break
        shown.append(line)
    if len(shown) < len(lines):
        shown.append(more(len(lines) - len(shown)))
    return "\n".join(shown)


def fold(channel: Channel, alerts: list[Alert], now: dt.datetime) -> Alert:
    """One digest for ``alerts``; each is marked folded into it (the exact set stays linked).

    Each line carries its alert's message, shortened to ``DIGEST_LINE_WIDTH``; the
    whole fits the channel's transport (its ``text_limit``), whole lines only.
    """
    top = max(alerts, key=lambda a: LEVEL_RANK[a.level]).level
    try:
        transport = transport_class(channel.kind)
        limit, length = transport.text_limit, transport.text_length
    except TransportError:
        limit, length = None, len
    message = digest_text([digest_line(a) for a in alerts], limit, length)
    with transaction.atomic():
        digest = Alert.objects.create(
            channel=channel,
            source="digest",
            level=top,
            title=f"{len(alerts)} alerts held back by the rate limit",
            message=message,
            fields=[["Channel limit", f"{channel.rate_limit_per_minute} per minute"]],
            created_at=now,
        )
        folded = Alert.objects.filter(
            pk__in=[a.pk for a in alerts], channel=channel, state=AlertState.PENDING
        ).update(state=AlertState.FOLDED, folded_into=digest, held=False)
        if folded != len(alerts):
            # Someone else changed one of them (an admin resend, a second worker
            # after a lost lease): keep only what we really folded.
            raise _FoldConflict()
    return digest


class _FoldConflict(Exception):
    pass


def send_alert(alert: Alert, channel: Channel, clock: Callable[[], dt.datetime]) -> str:
    """Claim, send, record. Returns ``sent``, ``skipped``, ``retry``, ``failed`` or ``channel_disabled``."""
    now = clock()
    claimed = Alert.objects.filter(pk=alert.pk, state=AlertState.PENDING).update(
        state=AlertState.SENDING, claimed_at=now
    )
    if claimed != 1:
        return "skipped"
    return _send_claimed(alert, channel, clock, claimed_at=now)


def _send_claimed(
    alert: Alert, channel: Channel, clock: Callable[[], dt.datetime], claimed_at: dt.datetime
) -> str:
    """Send an alert this worker claimed (``sending`` since ``claimed_at``); record the alert's and
    the channel's state."""
    transport = None
    error: TransportError | None = None
    try:
        remember_secrets(channel.secrets())  # masked in every log line, a crash's traceback included
        transport = transport_for(channel)
        transport.send(alert)
    except TransportError as exc:
        error = exc
    except Exception as exc:  # a bug in a transport must not stop the outbox
        logger.exception("alerts: transport %s crashed on alert %s", channel.kind, alert.pk)
        error = TransportError(f"internal error ({type(exc).__name__})")
    finished = clock()
    # A transport's own texts carry no secret; a server's answer might echo one back.
    secrets = channel.secrets() if transport is not None else []
    if error is not None:
        error.message = hide(error.message, secrets)
    if transport is not None and transport.outcomes:
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                alert_id=alert.pk,
                channel=channel,
                status_code=o.status_code,
                error=hide(o.error, secrets)[:500],
                duration_ms=o.duration_ms,
                reached=list(o.reached),
                at=finished,
            )
            for o in transport.outcomes
        )
    mine = Alert.objects.filter(pk=alert.pk, state=AlertState.SENDING, claimed_at=claimed_at)
    this_channel = Channel.objects.filter(pk=channel.pk)
    if error is None:
        mine.update(state=AlertState.SENT, sent_at=finished, attempts=F("attempts") + 1, last_error="")
        this_channel.record_success(finished)
        return "sent"
    logger.warning("alerts: alert %s to channel %s not sent: %s", alert.pk, channel.name, error.message)
    this_channel.record_failure(error.message, finished)
    attempts = alert.attempts + 1
    if error.disables_channel:
        this_channel.update(disabled_reason=error.message[:500], disabled_at=finished)
        if alert.retried:  # it waits for the channel to be fixed
            mine.update(state=AlertState.PENDING, claimed_at=None, last_error=error.message[:500])
        else:
            mine.update(state=AlertState.FAILED, attempts=attempts, last_error=error.message[:500])
        return "channel_disabled"
    if error.permanent or not alert.retried or attempts >= setting("ALERT_MAX_ATTEMPTS"):
        mine.update(state=AlertState.FAILED, attempts=attempts, last_error=error.message[:500])
        return "failed"
    wait = error.retry_after if error.retry_after is not None else retry_delay(attempts)
    mine.update(
        state=AlertState.PENDING,
        claimed_at=None,
        attempts=attempts,
        last_error=error.message[:500],
        next_attempt_at=finished + dt.timedelta(seconds=wait),
    )
    return "retry"


def retry_delay(attempts: int) -> float:
    """Seconds before the next delivery run retries: 30 s, 1 min, 2 min … at most 30 min."""
    return min(30.0 * 2 ** (attempts - 1), 1800.0)


@dataclass(frozen=True)
class SendResult:
    """What one test send did, said once: ``sent to chat -100…`` or ``failed: <why>``."""

    channel: Channel
    ok: bool
    words: str


def send_test_alert(channels: list[Channel] | None = None, level: str = "info") -> list[SendResult]:
    """One test alert through each enabled channel (whatever its minimum level), sent now.

    Each is sent here and now, once (the rate limit aside: one message an operator asked for),
    and never retried: a failure is final, recorded on the alert and the channel. A channel
    without a destination keeps it stored; a disabled one is not tried (resume it first).
    """
    if channels is None:
        Channel.objects.ensure_defaults()
        channels = list(Channel.objects.filter(enabled=True))
    now = timezone.now()
    results = []
    for channel in channels:
        message = {
            "channel": channel,
            "source": TEST_SOURCE,
            "subject": f"test-{now.isoformat()}",
            "level": level,
            "title": f"Test alert ({level})",
            "message": "If you can read this, alerts reach this channel.",
            "fields": [["Channel", channel.name], ["Level", level]],
            "created_at": now,
        }
        if not channel.is_configured:
            Alert.objects.create(**message, state=AlertState.STORED)
            results.append(SendResult(channel, False, "not sent: no destination is set (stored)"))
            continue
        if channel.is_suspended:
            why = f"the channel is disabled ({channel.disabled_reason}); resume it first"
            Alert.objects.create(**message, state=AlertState.FAILED, last_error=why[:500])
            results.append(SendResult(channel, False, f"not sent: {why}"))
            continue
        # Claimed from the start: no delivery run can take it meanwhile.
        alert = Alert.objects.create(**message, state=AlertState.SENDING, claimed_at=now)
        _send_claimed(alert, channel, timezone.now, claimed_at=now)
        alert.refresh_from_db()
        if alert.state == AlertState.SENT:
            results.append(SendResult(channel, True, f"sent to {channel.destination}"))
        else:
            results.append(SendResult(channel, False, f"failed: {alert.last_error}"))
    return results
