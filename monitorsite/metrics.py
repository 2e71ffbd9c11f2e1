"""``GET /metrics``: the site's figures for Prometheus, read from the database at each scrape.

Every web process on every machine answers the same thing, because nothing is counted in a
process: each scrape asks the database, through what the apps already compute for the cockpit
(``alerts.status.bot_state``, ``trades.positions.day_pnl``, ``BackupRecord.objects.last_good``,
``monitorsite.health.task_cluster_state``). Like the cockpit, it reads every app, so it stands on
the top floor with ``monitorsite``; the series' names are one contract, listed in docs/metrics.md.

Cost: the trades per bot (``trade_counts``: the table's COUNT(*) less the smaller bots' counts),
a GROUP BY of the alerts per level and state, a few index seeks per active bot and one query for
the channels; a scrape runs a number of statements bounded by bots, never by trades
(``bench/metrics.py``: the scrape time at 1,000 and 1,000,000 trades).

Names: one prefix (``tradingbot_``), base units (seconds, bytes; P&L in the account's currency),
``_total`` on counters, times as ``..._timestamp_seconds`` (Unix seconds). Labels are bounded by
rows an operator makes (bots, channels) and by fixed sets (states, levels); never a trade's id or
a symbol.
"""

from __future__ import annotations

import datetime as dt
import hmac
import platform
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache

import django
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerts import status
from alerts.models import UNSENT_STATES, Alert, AlertState, Channel, Level
from alerts.rules.bot_stopped import RUNNING, SHUT_DOWN, STALE, STOPPED
from backups.models import BackupRecord
from monitorsite.health import task_cluster_state
from trades import market
from trades.models import Bot, BotSnapshot, Trade
from trades.positions import day_pnl

PREFIX = "tradingbot_"

# A bot's state as the cockpit names it (``alerts.status.BotState.word``), in label form.
NEVER_REPORTED = "never reported"
BOT_STATES = (RUNNING, STALE, STOPPED, SHUT_DOWN, NEVER_REPORTED)
# A channel's state (``Channel.state_words`` in one word each).
CHANNEL_STATES = ("working", "failing", "disabled", "off", "not_configured")
# Alerts counted as they settle; those still on their way are a gauge (``alerts_unsent``), since
# their number goes down as they go out.
SETTLED_STATES = tuple(state for state in AlertState.values if state not in UNSENT_STATES)


def label(words: str) -> str:
    """A state in words as a label value: ``shut down`` -> ``shut_down``."""
    return words.replace(" ", "_")


def seconds(moment: dt.datetime) -> float:
    return moment.timestamp()


def bot_families(now: dt.datetime) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        f"{PREFIX}bot_up",
        "1 while the bot's last heartbeat is within its grace (the cockpit's running), else 0.",
        labels=["bot"],
    )
    state = GaugeMetricFamily(
        f"{PREFIX}bot_state",
        "1 for the bot's state as the cockpit and the bot-stopped rule judge it, 0 for the others.",
        labels=["bot", "state"],
    )
    grace = GaugeMetricFamily(
        f"{PREFIX}bot_heartbeat_grace_seconds",
        "Silence after which the bot-stopped rule calls the bot stopped (the shortest rule's).",
        labels=["bot"],
    )
    heartbeat = GaugeMetricFamily(
        f"{PREFIX}bot_last_heartbeat_timestamp_seconds",
        "When the bot last sent a heartbeat; absent before its first.",
        labels=["bot"],
    )
    trades = CounterMetricFamily(f"{PREFIX}bot_trades", "Trades stored for the bot.", labels=["bot"])
    realized = GaugeMetricFamily(
        f"{PREFIX}bot_realized_pnl_today",
        "Realized P&L of the bot's current trading day (its calendar's day), account currency.",
        labels=["bot"],
    )
    day = GaugeMetricFamily(
        f"{PREFIX}bot_day_pnl",
        "The trading day's P&L with open positions marked to market; absent while the bot has not"
        " reported its positions today.",
        labels=["bot"],
    )
    unrealized = GaugeMetricFamily(
        f"{PREFIX}bot_unrealized_pnl",
        "Unrealized P&L of the open positions in the bot's last report of them; absent before one.",
        labels=["bot"],
    )
    halted = GaugeMetricFamily(
        f"{PREFIX}bot_trading_halted",
        "1 while a trading halt is in force for the bot on its trading day, else 0.",
        labels=["bot"],
    )
    every = list(Bot.objects.defer("last_heartbeat_details", "description"))
    bots = [bot for bot in every if bot.is_active]
    counts = trade_counts([bot.pk for bot in every])
    for bot in bots:
        name = bot.name
        judged = status.bot_state(bot, now)
        up.add_metric([name], 1 if judged.word == RUNNING else 0)
        for each in BOT_STATES:
            state.add_metric([name, label(each)], 1 if judged.word == each else 0)
        grace.add_metric([name], judged.grace.total_seconds())
        if bot.last_heartbeat_at is not None:
            heartbeat.add_metric([name], seconds(bot.last_heartbeat_at))
        trades.add_metric([name], counts.get(bot.pk, 0))
        today = market.calendar_for(bot).today(now)
        pnl = Trade.objects.for_bot(bot).realized_pnl(today)
        realized.add_metric([name], float(pnl))
        marked = day_pnl(bot, today, realized=pnl)
        if marked is not None:
            day.add_metric([name], float(marked.total))
        held = BotSnapshot.objects.latest_with_positions(bot)
        if held is not None:
            unrealized.add_metric([name], float(held.unrealized_pnl or 0))
        halted.add_metric([name], 0 if judged.halted_until is None else 1)
    yield from (up, state, grace, heartbeat, trades, realized, day, unrealized, halted)


# The bot with the most trades at the last scrape of this process: its count is taken as the
# total less the others'. Only the cost depends on this guess, never a value.
_largest: dict[str, int | None] = {"bot": None}


def trade_counts(bot_ids: list[int]) -> dict[int, int]:
    """Trades per bot (every bot in ``bot_ids``, which must be every bot there is).

    Counting a bot's trades reads its entries of an index one by one: 40-100 ms for a million on
    SQLite, on a busy 2-core machine. A COUNT(*) of the whole table is SQLite's fast path (it
    counts an index's cells without reading them: 8 ms for a million), so the largest bot is
    counted as the total less the others, and only the others are counted one by one. A bot that
    trades alone costs the fast path only.
    """
    largest = _largest["bot"] if _largest["bot"] in bot_ids else None
    others = [pk for pk in bot_ids if pk != largest]
    counts = dict.fromkeys(bot_ids, 0)
    counts.update(
        Trade.objects.filter(bot_id__in=others)
        .order_by()
        .values("bot")
        .annotate(n=Count("*"))
        .values_list("bot", "n")
    )
    if largest is not None:
        counts[largest] = Trade.objects.order_by().count() - sum(counts[pk] for pk in others)
    if counts:
        _largest["bot"] = max(counts, key=lambda pk: counts[pk])
    return counts


def alert_families() -> Iterator[Metric]:
    settled = CounterMetricFamily(
        f"{PREFIX}alerts",
        "Alert messages (one per channel) that reached a final state, by level and state.",
        labels=["level", "state"],
    )
    unsent = GaugeMetricFamily(
        f"{PREFIX}alerts_unsent",
        "Alert messages waiting to be sent or being sent, by level.",
        labels=["level"],
    )
    counts = {
        (level, state): n
        for level, state, n in Alert.objects.order_by()
        .values("level", "state")
        .annotate(n=Count("*"))
        .values_list("level", "state", "n")
    }
    for level in Level.values:
        for state in SETTLED_STATES:
            settled.add_metric([level, state], counts.get((level, state), 0))
        unsent.add_metric([level], sum(counts.get((level, state), 0) for state in UNSENT_STATES))
    yield from (settled, unsent)


def channel_state(channel: Channel) -> str:
    """``Channel.state_words`` in one word: working, failing, disabled, off, not_configured."""
    if not channel.enabled:
        return "off"
    if channel.disabled_reason:
        return "disabled"
    if channel.failing_since is not None:
        return "failing"
    return "working" if channel.is_configured else "not_configured"


def channel_families() -> Iterator[Metric]:
    state = GaugeMetricFamily(
        f"{PREFIX}channel_state",
        "1 for the alert channel's state (as its admin page says it), 0 for the others.",
        labels=["channel", "state"],
    )
    success = GaugeMetricFamily(
        f"{PREFIX}channel_last_success_timestamp_seconds",
        "When the channel last delivered a message; absent before its first.",
        labels=["channel"],
    )
    for channel in Channel.objects.order_by("name"):
        now_state = channel_state(channel)
        for each in CHANNEL_STATES:
            state.add_metric([channel.name, each], 1 if each == now_state else 0)
        if channel.last_success_at is not None:
            success.add_metric([channel.name], seconds(channel.last_success_at))
    yield from (state, success)


def site_families() -> Iterator[Metric]:
    backup_time = GaugeMetricFamily(
        f"{PREFIX}backup_last_success_timestamp_seconds",
        "When the last good backup finished uploading; absent before the first.",
    )
    backup_size = GaugeMetricFamily(
        f"{PREFIX}backup_last_success_size_bytes", "Bytes the last good backup uploaded."
    )
    last = BackupRecord.objects.last_good()
    if last is not None and last.finished_at is not None:
        backup_time.add_metric([], seconds(last.finished_at))
        backup_size.add_metric([], float(last.size or 0))
    cluster = GaugeMetricFamily(
        f"{PREFIX}task_cluster_last_heartbeat_timestamp_seconds",
        "When a task cluster last ran its heartbeat task; absent before the first.",
    )
    beat = task_cluster_state().get("last_heartbeat")
    if beat is not None:
        cluster.add_metric([], seconds(beat))
    build = GaugeMetricFamily(
        f"{PREFIX}build_info",
        "Always 1; the labels say what runs.",
        labels=["version", "python", "django", "database"],
    )
    build.add_metric([site_version(), platform.python_version(), django.get_version(), connection.vendor], 1)
    yield from (backup_time, backup_size, cluster, build)


@cache
def site_version() -> str:
    """The project's version, from pyproject.toml (read once per process); "unknown" without it."""
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def families(now: dt.datetime | None = None) -> Iterable[Metric]:
    now = now or timezone.now()
    yield from bot_families(now)
    yield from alert_families()
    yield from channel_families()
    yield from site_families()


class SiteCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        return families()


# A registry of its own: the default one would add this process's own figures (its memory, its
# garbage collector), which differ from one web process to the next behind the same address.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(SiteCollector())


def authorized(header: str, token: str) -> bool:
    """Whether ``header`` (an ``Authorization`` value) is ``Bearer <token>``; the scheme's case is
    free (RFC 7235), the token is compared in constant time."""
    scheme, _, credentials = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode())


@csrf_exempt
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """404 while ``METRICS_TOKEN`` is unset; 401 without it as a Bearer token; else the exposition."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    if not authorized(request.headers.get("Authorization", ""), token):
        response = HttpResponse("401 Unauthorized: send Authorization: Bearer <METRICS_TOKEN>\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    response = HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
