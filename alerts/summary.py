"""The daily summary: one embed per bot, from the ``DailySummary`` value, once per trading day.

The send time lives in the database (edited in the admin), so the cluster
cannot carry it as a cron schedule. A task runs every minute instead and
sends when the time has come on a trading day and that day's summary has
not gone out; the day is claimed with a conditional UPDATE, so two workers
(or a re-run) send it once. If the cluster was down at the send time, the
first run after it comes back, the same day, catches up.

That send time, in ``MARKET_TIMEZONE``, is for the bots on the site's calendar. A bot on another
calendar gets its day's summary ``AFTER_CLOSE`` after its own market's close (early closes
included), and its week's report ``WEEKLY_AFTER_CLOSE`` after the week's last close; a 24/7 or
24/5 bot, as its day (or week) ends at midnight in its zone. Each is claimed per bot and day under
a lock of the schedule's row: sent once, whatever the number of workers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from alerts import delivery
from alerts.evaluation import raise_alert
from alerts.models import Alert, AlertState, Level, SummarySchedule
from trades import market, positions
from trades.formats import format_money, format_rate
from trades.models import Bot, Trade
from trades.summary import DailySummary, PeriodSummary, performance_lines

logger = logging.getLogger(__name__)
# After a close (not the site's calendar): the day's summary, then the week's report.
AFTER_CLOSE = dt.timedelta(minutes=5)
WEEKLY_AFTER_CLOSE = dt.timedelta(minutes=15)


def summary_fields(summary: DailySummary) -> list[tuple[str, str]]:
    """The contract's figures as embed fields."""
    fields = [
        ("Trades", str(summary.total_trades)),
        ("Closed", str(summary.closed_trades)),
        ("Wins / losses", f"{summary.wins} / {summary.losses}"),
        ("Win rate", format_rate(summary.win_rate)),
        ("Total P&L", format_money(summary.total_pnl)),
    ]
    if (marked := summary.day_pnl_words()) is not None:  # the bot reported its positions that day
        fields.append(("Day P&L with open positions", marked))
    for label, trade in (("Best trade", summary.best_trade), ("Worst trade", summary.worst_trade)):
        if trade is not None:
            fields.append((label, f"{trade.symbol} {format_money(trade.pnl)} ({trade.external_id})"))
    return fields


def summary_lines(summary: DailySummary) -> str:
    """A line per strategy (and per symbol), as the embed's description."""
    lines = _lines_by_group(summary, lambda row: (row.trades, format_money(row.pnl), row.win_rate))
    return lines or "No trades on this trading day."


def _lines_by_group(
    summary: DailySummary | PeriodSummary, figures: Callable[[Any], tuple[int, str, float | None]]
) -> str:
    """Under a heading each, a line per strategy and per symbol: ``figures`` gives its trades, its P&L
    as shown and its win rate."""
    lines = []
    for title, groups in (("strategy", summary.by_strategy), ("symbol", summary.by_symbol)):
        if groups:
            lines.append(f"**By {title}**")
            for name, row in groups.items():
                trades, pnl, rate = figures(row)
                lines.append(f"{name or '(none)'}: {trades} trades, P&L {pnl}, win rate {format_rate(rate)}")
    return "\n".join(lines)


def site_calendar_bots() -> list[Bot]:
    """The active bots on the site's calendar (their summaries go out at the schedule's times)."""
    site = market.site_calendar()
    return [bot for bot in Bot.objects.filter(is_active=True) if market.calendar_for(bot) == site]


def own_calendar_bots() -> dict[market.Calendar, list[Bot]]:
    """The active bots on other calendars than the site's, by calendar."""
    site = market.site_calendar()
    groups: dict[market.Calendar, list[Bot]] = {}
    for bot in Bot.objects.filter(is_active=True):
        calendar = market.calendar_for(bot)
        if calendar != site:
            groups.setdefault(calendar, []).append(bot)
    return groups


def closed_day(calendar: market.Calendar, now: dt.datetime, after: dt.timedelta) -> dt.date | None:
    """The trading day of ``calendar`` whose close was at least ``after`` before ``now``, and which
    is still its latest: today's session once closed; around the clock, yesterday once midnight
    has passed. None when there is none (a holiday, a weekend, or before the close)."""
    today = calendar.today(now)
    if calendar.around_the_clock:
        day = today - dt.timedelta(days=1)
        ended = calendar.start_of_day(today)
        return day if calendar.is_trading_day(day) and now >= ended + after else None
    hours = calendar.market_hours(today)
    return today if hours is not None and now >= hours[1] + after else None


def _once(source: str, subject: str, write: Callable[[], list[Alert]]) -> list[Alert]:
    """``write()`` unless an alert of ``source`` and ``subject`` exists: checked and written while
    holding the schedule's row, so two workers write it once."""
    schedule = SummarySchedule.current()
    with transaction.atomic():
        # A write first: it waits for the other worker's transaction on SQLite and PostgreSQL alike.
        SummarySchedule.objects.filter(pk=schedule.pk).update(enabled=F("enabled"))
        if Alert.objects.filter(source=source, subject=subject).exists():
            return []
        return write()


def summary_alerts(
    day: dt.date, bot: Bot | None = None, now: dt.datetime | None = None, bots: list[Bot] | None = None
) -> list[Alert]:
    """Write one summary per bot (or for ``bot`` alone, or each of ``bots``) to the outbox."""
    if bots is None:
        bots = [bot] if bot is not None else list(Bot.objects.filter(is_active=True))
    alerts: list[Alert] = []
    for each in bots:
        summary = positions.daily_summary(each, day)
        alerts += raise_alert(
            source="daily_summary",
            subject=f"bot-{each.pk}:{day.isoformat()}",
            level=Level.INFO,
            title=f"Daily summary: {each.name}, {day:%A %Y-%m-%d}",
            message=summary_lines(summary),
            fields=summary_fields(summary),
            bot=each,
            now=now,
            silenceable=False,  # a report, not an alarm: silences do not hold it back
        )
    return alerts


def send_if_due(now: dt.datetime | None = None) -> list[Alert]:
    """Send today's summary if it is a trading day, the time has come, and it has not gone out yet."""
    now = now or timezone.now()
    schedule = SummarySchedule.current()
    if not schedule.enabled:
        return []
    own = _own_calendar_summaries(now)
    if own:
        delivery.deliver_pending()
    return _site_summaries(schedule, now) + own


def _site_summaries(schedule: SummarySchedule, now: dt.datetime) -> list[Alert]:
    local = now.astimezone(market.market_zone())
    today = local.date()
    if local.time() < schedule.send_at or schedule.last_sent_day == today:
        return []
    if not market.is_trading_day(today):
        return []
    claimed = (
        SummarySchedule.objects.filter(pk=schedule.pk)
        .filter(Q(last_sent_day__isnull=True) | Q(last_sent_day__lt=today))
        .update(last_sent_day=today)
    )
    if claimed != 1:
        return []
    alerts = summary_alerts(today, now=now, bots=site_calendar_bots())
    logger.info("alerts: daily summary for %s written for %d bot(s)", today, len(alerts))
    delivery.deliver_pending()
    return alerts


def _own_calendar_summaries(now: dt.datetime) -> list[Alert]:
    alerts: list[Alert] = []
    for calendar, bots in own_calendar_bots().items():
        day = closed_day(calendar, now, AFTER_CLOSE)
        if day is None:
            continue
        for bot in bots:
            written = _once(
                "daily_summary", f"bot-{bot.pk}:{day.isoformat()}", partial(summary_alerts, day, bot, now=now)
            )
            if written:
                logger.info("alerts: daily summary for %s (%s) written for %s", day, calendar.code, bot.name)
            alerts += written
    return alerts


def send_now(day: dt.date, bot: Bot | None = None) -> str:
    """``daily_summary --send``: write and deliver at once; one line on what happened."""
    return _deliver_now(summary_alerts(day, bot))


def period_lines(summary: PeriodSummary) -> str:
    """A line per strategy (and per symbol), as the report's description."""
    lines = _lines_by_group(summary, lambda p: (p.total_trades, format_money(p.total_pnl), p.win_rate))
    return lines or "No trades in this period."


def period_alerts(
    start: dt.date,
    end: dt.date,
    bot: Bot | None = None,
    *,
    source: str = "period_summary",
    label: str = "Performance",
    now: dt.datetime | None = None,
    bots: list[Bot] | None = None,
) -> list[Alert]:
    """Write one performance report per active bot (or for ``bot`` alone, or each of ``bots``)."""
    if bots is None:
        bots = [bot] if bot is not None else list(Bot.objects.filter(is_active=True))
    alerts: list[Alert] = []
    for each in bots:
        summary = Trade.objects.for_bot(each).period_summary(start, end)
        alerts += raise_alert(
            source=source,
            subject=f"bot-{each.pk}:{start.isoformat()}:{end.isoformat()}",
            level=Level.INFO,
            title=f"{label}: {each.name}, {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            message=period_lines(summary),
            fields=performance_lines(summary.overall),
            bot=each,
            now=now,
            silenceable=False,  # a report, not an alarm
        )
    return alerts


def send_period_now(start: dt.date, end: dt.date, bot: Bot | None = None) -> str:
    """``period_summary --send``: write and deliver at once; one line on what happened."""
    return _deliver_now(period_alerts(start, end, bot))


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def send_weekly_if_due(now: dt.datetime | None = None) -> list[Alert]:
    """After the trading week's last close (and the time set in the admin), the week's report, once.

    The week is claimed with a conditional UPDATE of ``last_weekly_sent_day``,
    so two workers or a re-run send it once.
    """
    now = now or timezone.now()
    schedule = SummarySchedule.current()
    if not schedule.weekly_enabled:
        return []
    own = _own_calendar_weekly(now)
    if own:
        delivery.deliver_pending()
    return _site_weekly(schedule, now) + own


def _site_weekly(schedule: SummarySchedule, now: dt.datetime) -> list[Alert]:
    local = now.astimezone(market.market_zone())
    today = local.date()
    if local.time() < schedule.weekly_send_at:
        return []
    if schedule.last_weekly_sent_day == today or not market.is_last_trading_day_of_week(today):
        return []
    claimed = (
        SummarySchedule.objects.filter(pk=schedule.pk)
        .filter(Q(last_weekly_sent_day__isnull=True) | Q(last_weekly_sent_day__lt=today))
        .update(last_weekly_sent_day=today)
    )
    if claimed != 1:
        return []
    alerts = period_alerts(
        week_start(today),
        today,
        source="weekly_report",
        label="Weekly report",
        now=now,
        bots=site_calendar_bots(),
    )
    logger.info("alerts: weekly report for the week to %s written for %d bot(s)", today, len(alerts))
    delivery.deliver_pending()
    return alerts


def _own_calendar_weekly(now: dt.datetime) -> list[Alert]:
    alerts: list[Alert] = []
    for calendar, bots in own_calendar_bots().items():
        day = closed_day(calendar, now, WEEKLY_AFTER_CLOSE)
        if day is None or not calendar.is_last_trading_day_of_week(day):
            continue
        start = week_start(day)
        for bot in bots:
            alerts += _once(
                "weekly_report",
                f"bot-{bot.pk}:{start.isoformat()}:{day.isoformat()}",
                partial(
                    period_alerts, start, day, bot, source="weekly_report", label="Weekly report", now=now
                ),
            )
    return alerts


def _deliver_now(alerts: list[Alert]) -> str:
    delivery.deliver_pending()
    states = [Alert.objects.get(pk=a.pk).state for a in alerts]
    if not states:
        return "No active bot: nothing to send."
    if all(state == AlertState.SENT for state in states):
        return f"Sent {len(states)} summary message(s)."
    if all(state == AlertState.STORED for state in states):
        return (
            "Stored in the alert history; not sent: no channel is configured "
            "(set a channel's variables, see .env.example, or add one in the admin)."
        )
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    return f"Summary messages: {counts} (see the alert history in the admin)."
