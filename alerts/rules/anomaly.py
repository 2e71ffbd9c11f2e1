"""Anomaly rules: a bot's hour judged against its own history at the same hour.

``trade_rate_anomaly`` (fills per hour: too many, or too few while the market is open) and
``pnl_anomaly`` (P&L per hour: a loss far outside its history; realized, and, for a bot that
reports its positions, with the change of its unrealized P&L since the hour began, judged after
each heartbeat with its state too). The history is the bot's
stored hours (``trades.hours``): the same hour of its market's week over the last eight weeks, or,
when fewer than ``MIN_SAMPLES`` of those are open hours (a young bot, holidays), the same hour of
its market's day over the same weeks (the newest ``DAY_SAMPLES``). Closed hours (nights,
weekends, holidays on the bot's calendar) are in no baseline, and a closed hour is not judged.

The score is robust: ``(figure - median) / scale``, with ``scale = 1.4826 x MAD`` (the median
absolute deviation, scaled to a standard deviation for normal data), so one wild hour in the
history moves neither. The scale has a floor, else a bot that filled exactly 4 times at this hour
every week (MAD 0) would score infinite on a fifth fill: for fills, the square root of the median
(a count's own noise; at least 1); for P&L, the minimum loss divided by the threshold (with no
spread in its history, a loss is far outside it when it is the minimum loss beyond the usual).
The P&L's spread is also at least the same hour of the day's (20 samples rather than 8) and one
fill's spread times the square root of the hour's fills (``History.pnl_scale``).
It alerts when the score reaches the rule's threshold (``>=``; default 6) and the absolute floor
is reached too: at least ``ANOMALY_MIN_FILLS`` fills, a loss of at least ``ANOMALY_MIN_LOSS``. No
rule judges a bot whose stored history at the hour reaches back less than
``ANOMALY_MIN_HISTORY_DAYS`` (its first stored hour at that hour of the day, open or not).

When they are judged: after each batch of trades, the current clock hour so far (its fills and
P&L from the hour's start, one aggregate on the (bot, executed_at) index) against the baseline of
that hour: a partial hour can only undercount, so it alerts as soon as the hour is unusual
already. On the schedule, the hour that just ended, once stored: a loss or too many fills
(caught late, e.g. trades sent in a late batch), and "unusually quiet": a bot that filled at least
``ANOMALY_MIN_FILLS`` times at this hour every time in its history, and filled at most
1/threshold of its usual (median) this hour while its market was open.

No flapping: one subject per bot and figure; a breach ends (an info notice) only on the schedule,
once a whole ended hour and the current one so far are back within the usual, so a burst that
goes on alerts once per cooldown and a new clock hour does not end it.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from alerts.conf import setting
from alerts.models import Level
from alerts.rules.base import (
    Breach,
    Finding,
    Judge,
    Memo,
    Moment,
    NewState,
    NewTrades,
    Notice,
    Recovery,
    Rule,
)
from trades import hours, market
from trades.formats import format_money, format_quantity
from trades.models import Bot

MIN_SAMPLES = 4  # open hours at the same hour of the week before the week's baseline is used
DAY_SAMPLES = 20  # the newest open hours at the same hour of the day, when the week's are too few
MAD_TO_SD = Decimal("1.4826")
MAX_THRESHOLD = Decimal(50)
DEFAULT_THRESHOLD = Decimal(6)


@dataclass(frozen=True)
class Baseline:
    """One figure's history at one hour: its median, its spread and its usual range (the middle
    half of the samples: the lower to the upper quartile). Decimal throughout, so a figure exactly
    at the threshold is at it, not a rounding either side."""

    values: list[Decimal]
    by: str  # "week" or "day": which samples it was made of

    @functools.cached_property
    def median(self) -> Decimal:
        return Decimal(statistics.median(self.values))

    @functools.cached_property
    def scale(self) -> Decimal:
        """The spread as a standard deviation: 1.4826 x the median absolute deviation."""
        median = self.median
        return MAD_TO_SD * Decimal(statistics.median(abs(value - median) for value in self.values))

    @functools.cached_property
    def usual(self) -> tuple[Decimal, Decimal]:
        if len(self.values) < 2:
            return self.values[0], self.values[0]
        quartiles = statistics.quantiles(self.values, n=4, method="inclusive")
        return Decimal(quartiles[0]), Decimal(quartiles[2])

    @property
    def described(self) -> str:
        what = "the same hour of the week" if self.by == "week" else "the same hour of the day"
        unit = "weeks" if self.by == "week" else "open days"
        return f"{what}, last {len(self.values)} {unit}"


def score(excess: Decimal, scale: Decimal) -> str:
    """The robust score, for the alert's fields."""
    return f"{excess / scale:.1f}" if scale else "∞"


@dataclass(frozen=True)
class History:
    """A bot's samples at one hour (None from ``history``: not judged)."""

    samples: list[hours.Sample]
    by: str
    zone: dt.tzinfo
    # The newest open hours at the same hour of the day (up to DAY_SAMPLES): the P&L's spread is
    # the wider of theirs and the samples' own, as 8 weekly samples may agree closely by chance.
    day: list[hours.Sample]

    @functools.cached_property
    def fills(self) -> Baseline:
        return Baseline([Decimal(s.fills) for s in self.samples], self.by)

    @functools.cached_property
    def pnl(self) -> Baseline:
        return Baseline([s.realized_pnl for s in self.samples], self.by)

    @functools.cached_property
    def pnl_spread(self) -> Decimal:
        return max(self.pnl.scale, Baseline([s.realized_pnl for s in self.day], "day").scale)

    @functools.cached_property
    def pnl_per_fill(self) -> Decimal:
        """The spread of one fill's P&L: a robust spread of each sample hour's P&L over the square
        root of its fills (hours that closed something), so an hour of n fills varies by about
        this x the square root of n. It keeps a quiet hour whose few closes often net to 0 from
        having a spread of nearly nothing."""
        values = [
            s.realized_pnl / Decimal(s.fills).sqrt()
            for s in {s.hour_start: s for s in self.samples + self.day}.values()
            if s.realized_pnl and s.fills
        ]
        return Baseline(values, "day").scale if values else Decimal(0)

    @functools.cached_property
    def with_open(self) -> Baseline | None:
        """The P&L with open positions (realized + the open positions' change) of the samples that
        have it; None when fewer than ``MIN_SAMPLES`` have."""
        values = [s.realized_pnl + s.open_change for s in self.samples if s.open_change is not None]
        return Baseline(values, self.by) if len(values) >= MIN_SAMPLES else None

    @functools.cached_property
    def with_open_spread(self) -> Decimal:
        day = [s.realized_pnl + s.open_change for s in self.day if s.open_change is not None]
        own = self.with_open.scale if self.with_open is not None else Decimal(0)
        return max(own, Baseline(day, "day").scale if day else Decimal(0))

    def pnl_scale(self, fills: int) -> Decimal:
        """The P&L's spread for an hour of ``fills`` fills."""
        return max(self.pnl_spread, self.pnl_per_fill * Decimal(max(fills, 1)).sqrt())


def history(bot: Bot, hour_start: dt.datetime, now: dt.datetime, memo: Memo) -> History | None:
    """What the bot's hour from ``hour_start`` is judged against: None for a closed hour, a bot with
    less than the minimum history at that hour, or too few open samples. One read (none for a
    closed hour) per bot and hour in an evaluation pass."""
    key = ("anomaly_history", bot.pk, hour_start)
    if key not in memo:
        memo[key] = _history(bot, hour_start, now)
    return memo[key]


def _history(bot: Bot, hour_start: dt.datetime, now: dt.datetime) -> History | None:
    found = _samples(bot, hour_start)
    if found is None:
        return None  # a closed hour
    since, past = found
    if since is None or now - since < dt.timedelta(days=setting("ANOMALY_MIN_HISTORY_DAYS")):
        return None  # too young: its history at this hour reaches back less than the minimum
    return past


# The samples of a bot's hour, kept by each process for the hours it judges: they are the stored
# hours one to 56 days before it, which do not change while it is judged (each was stored minutes
# after it ended). A bot is its id and its creation time (a new bot never reads a removed one's).
_SAMPLES: collections.OrderedDict[tuple[object, ...], tuple[dt.datetime | None, History | None] | None] = (
    collections.OrderedDict()
)
_SAMPLES_KEPT = 1024


def _samples(bot: Bot, hour_start: dt.datetime) -> tuple[dt.datetime | None, History | None] | None:
    """None for a closed hour; else how far the bot's history at the hour reaches, and its samples
    (None: too few open ones). One read per bot and hour in a process."""
    key = (bot.pk, bot.created_at, bot.calendar, bot.timezone, hour_start)
    if key in _SAMPLES:
        _SAMPLES.move_to_end(key)
        return _SAMPLES[key]
    calendar = market.calendar_for(bot)
    found: tuple[dt.datetime | None, History | None] | None = None
    if hours.hour_is_open(calendar, hour_start):
        same = hours.same_hour(bot, hour_start, calendar)
        past = None
        if len(same.week) >= MIN_SAMPLES:
            past = History(same.week, "week", calendar.zone, same.day[:DAY_SAMPLES])
        elif len(same.day) >= MIN_SAMPLES:
            past = History(same.day[:DAY_SAMPLES], "day", calendar.zone, same.day[:DAY_SAMPLES])
        found = (same.since, past)
    _SAMPLES[key] = found
    if len(_SAMPLES) > _SAMPLES_KEPT:
        _SAMPLES.popitem(last=False)
    return found


def so_far(bot: Bot, hour_start: dt.datetime, memo: Memo) -> tuple[int, Decimal]:
    """The bot's fills and realized P&L in the hour from ``hour_start``, once per pass."""
    key = ("anomaly_so_far", bot.pk, hour_start)
    if key not in memo:
        memo[key] = hours.hour_totals(bot, hour_start, hour_start + hours.HOUR)
    return memo[key]


def min_fills() -> int:
    return int(setting("ANOMALY_MIN_FILLS"))


def min_loss() -> Decimal:
    return Decimal(setting("ANOMALY_MIN_LOSS"))


def _fills(value: Decimal) -> str:
    return format_quantity(value.to_integral_value())


def _range(low: str, high: str) -> str:
    return low if low == high else f"{low}–{high}"


def _at(hour_start: dt.datetime, zone: dt.tzinfo) -> str:
    return f"{hour_start.astimezone(zone):%H:%M %Z}"


class HourAnomaly(Judge):
    """What both kinds share: the threshold (a robust score), when they are judged, the subjects."""

    threshold_means = "a robust score: how unusual, e.g. 6 (lower alerts more often)"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"trades", "schedule"})
    takes_scope: ClassVar[bool] = False  # the history is the bot's, not a strategy's or a symbol's
    figure_name: ClassVar[str] = ""

    def threshold_problem(self, threshold: Decimal) -> str:
        if threshold <= 0 or threshold > MAX_THRESHOLD:
            return (
                f"Must be a score above 0 and at most {MAX_THRESHOLD} (how unusual an hour must be"
                f" to alert, e.g. {DEFAULT_THRESHOLD}), got {threshold}."
            )
        return ""

    def subject(self, bot: Bot, what: str) -> str:
        return f"bot-{bot.pk}:{what}"

    def after_trades(self, rule: Rule, trades: NewTrades, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        if rule.threshold is None:
            return
        bot, start = trades.bot, hours.hour_floor(now)
        past = history(bot, start, now, memo)
        if past is None:
            return
        fills, pnl = so_far(bot, start, memo)
        notice = self.judge_hour(bot, start, fills, pnl, None, past, rule.threshold, ended=False)
        if notice is not None:
            yield Breach(self.subject(bot, self.figure_name), notice)

    def on_schedule(
        self, rule: Rule, bot: Bot, today: dt.date, now: dt.datetime, memo: Memo
    ) -> Iterator[Finding]:
        """The hour that just ended, once stored (and open): unusual, or back to usual."""
        if rule.threshold is None:
            return
        threshold = rule.threshold
        current = hours.hour_floor(now)
        ended = current - hours.HOUR
        key = ("anomaly_stored_hour", bot.pk, ended)
        if key not in memo:
            memo[key] = hours.stored_hour(bot, ended)
        row = memo[key]
        if row is None:
            return
        past = history(bot, ended, now, memo)
        if past is None:
            return
        yield from self.ended_hour(bot, ended, row.fills, row.realized_pnl, past, threshold)
        notice = self.judge_hour(
            bot, ended, row.fills, row.realized_pnl, row.open_change, past, threshold, ended=True
        )
        subject = self.subject(bot, self.figure_name)
        if notice is not None:
            yield Breach(subject, notice)
            return
        now_past = history(bot, current, now, memo)
        if now_past is not None:
            fills, pnl = so_far(bot, current, memo)
            change = self.current_open(bot, current, now, memo)
            if self.judge_hour(bot, current, fills, pnl, change, now_past, threshold, ended=False):
                return  # the current hour is unusual already: the breach goes on
        yield Recovery(subject)

    # --- what a member says ---

    def judge_hour(
        self,
        bot: Bot,
        hour_start: dt.datetime,
        fills: int,
        pnl: Decimal,
        open_change: Decimal | None,
        past: History,
        threshold: Decimal,
        *,
        ended: bool,
    ) -> Notice | None:
        """The notice when the hour is unusual (``open_change``: its open positions' part, when
        reported and judged)."""
        return self.unusual(bot, hour_start, fills, pnl, past, threshold, ended=ended)

    def current_open(self, bot: Bot, hour_start: dt.datetime, now: dt.datetime, memo: Memo) -> Decimal | None:
        """The current hour's open positions' part, for a member that judges it (None: not judged)."""
        return None

    def unusual(
        self,
        bot: Bot,
        hour_start: dt.datetime,
        fills: int,
        pnl: Decimal,
        past: History,
        threshold: Decimal,
        *,
        ended: bool,
    ) -> Notice | None:
        raise NotImplementedError

    def ended_hour(
        self, bot: Bot, hour_start: dt.datetime, fills: int, pnl: Decimal, past: History, threshold: Decimal
    ) -> Iterator[Finding]:
        """More findings on an ended hour (the quiet hour)."""
        return iter(())


class TradeRateAnomaly(HourAnomaly):
    summary = "fills in an hour far more, or far fewer while the market is open, than usual at that hour"
    figure_name = "fills"

    def unusual(
        self,
        bot: Bot,
        hour_start: dt.datetime,
        fills: int,
        pnl: Decimal,
        past: History,
        threshold: Decimal,
        *,
        ended: bool,
    ) -> Notice | None:
        base = past.fills
        # The scale's floor: a count's own noise, the square root of its median (at least 1).
        scale = max(base.scale, max(base.median, Decimal(1)).sqrt())
        excess = fills - base.median
        if fills < min_fills() or excess < threshold * scale:
            return None
        low, high = (_fills(value) for value in base.usual)
        when = (
            f"in the hour from {_at(hour_start, past.zone)}"
            if ended
            else f"since {_at(hour_start, past.zone)}"
        )
        usual = _range(low, high)
        return Notice(
            title=f"{bot.name}: {format_quantity(fills)} fills {'in an hour' if ended else 'this hour'},"
            f" usually {usual}",
            message=f"{bot.name} filled {format_quantity(fills)} times {when}; at this hour it usually"
            f" fills {usual}.",
            fields=self.fields(bot, fills, base, score(excess, scale), threshold, hour_start, past),
        )

    def ended_hour(
        self, bot: Bot, hour_start: dt.datetime, fills: int, pnl: Decimal, past: History, threshold: Decimal
    ) -> Iterator[Finding]:
        """Unusually quiet: a bot that always filled at least the minimum at this hour, this time
        filled at most 1/threshold of its median. Ends when an ended open hour is not quiet."""
        base = past.fills
        subject = self.subject(bot, "quiet")
        if min(base.values) < min_fills() or fills * threshold > base.median:
            yield Recovery(subject)
            return
        low, high = (_fills(value) for value in base.usual)
        at = _at(hour_start, past.zone)
        usual = _range(low, high)
        yield Breach(
            subject,
            Notice(
                title=f"{bot.name}: {format_quantity(fills)} fills in the hour from {at}, usually {usual}",
                message=f"{bot.name} filled {format_quantity(fills)} times in the hour from {at} while its"
                f" market was open; at this hour it usually fills {usual}, and never fewer than"
                f" {_fills(min(base.values))}.",
                fields=self.fields(bot, fills, base, None, threshold, hour_start, past),
            ),
        )

    def fields(
        self,
        bot: Bot,
        fills: int,
        base: Baseline,
        score: str | None,
        threshold: Decimal,
        hour_start: dt.datetime,
        past: History,
    ) -> list[tuple[str, object]]:
        low, high = (_fills(value) for value in base.usual)
        found: list[tuple[str, object]] = [
            ("Bot", bot.name),
            ("Hour from", f"{hour_start.astimezone(past.zone):%Y-%m-%d %H:%M %Z}"),
            ("Fills", format_quantity(fills)),
            ("Usual (middle half)", _range(low, high)),
            ("Median", _fills(base.median)),
        ]
        if score is not None:
            found.append(("Score", f"{score} (threshold {format_quantity(threshold)})"))
        found.append(("Compared with", base.described))
        return found

    def recovered(self, rule: Rule, bot: Bot, since: dt.datetime, now: dt.datetime) -> Notice:
        return Notice(
            level=Level.INFO,
            title=f"{bot.name}: fills per hour back to usual",
            message=f"{bot.name} fills as usual for the hour again (unusual since"
            f" {since.astimezone(market.calendar_for(bot).zone):%Y-%m-%d %H:%M %Z}).",
            fields=[("Bot", bot.name)],
        )


class PnlAnomaly(HourAnomaly):
    summary = "P&L in an hour (realized, and with open positions when reported) far below its usual then"
    figure_name = "pnl"
    judged_on: ClassVar[frozenset[Moment]] = frozenset({"trades", "schedule", "state"})

    def on_state(self, rule: Rule, state: NewState, now: dt.datetime, memo: Memo) -> Iterator[Finding]:
        """The current hour with the open positions' change since its start (newest snapshot)."""
        if rule.threshold is None:
            return
        bot, start = state.bot, hours.hour_floor(now)
        past = history(bot, start, now, memo)
        if past is None:
            return
        change = self.current_open(bot, start, now, memo)
        if change is None:
            return  # positions not reported since the hour began, or not in the hour before it
        fills, pnl = so_far(bot, start, memo)
        notice = self.judge_hour(bot, start, fills, pnl, change, past, rule.threshold, ended=False)
        if notice is not None:
            yield Breach(self.subject(bot, self.figure_name), notice)

    def current_open(self, bot: Bot, hour_start: dt.datetime, now: dt.datetime, memo: Memo) -> Decimal | None:
        key = ("anomaly_open_change", bot.pk, hour_start)
        if key not in memo:
            memo[key] = hours.open_change(bot, hour_start, now)
        return memo[key]

    def judge_hour(
        self,
        bot: Bot,
        hour_start: dt.datetime,
        fills: int,
        pnl: Decimal,
        open_change: Decimal | None,
        past: History,
        threshold: Decimal,
        *,
        ended: bool,
    ) -> Notice | None:
        """Realized P&L first; then, when the open positions' part is known and enough samples have
        it, the P&L with open positions against the same figure of the samples."""
        notice = self.unusual(bot, hour_start, fills, pnl, past, threshold, ended=ended)
        if notice is not None or open_change is None or past.with_open is None:
            return notice
        base, floor, total = past.with_open, min_loss(), pnl + open_change
        excess = base.median - total
        spread = max(past.with_open_spread, past.pnl_per_fill * Decimal(max(fills, 1)).sqrt())
        if total > -floor or excess < max(threshold * spread, floor):
            return None
        low, high = (format_money(value) for value in base.usual)
        at = _at(hour_start, past.zone)
        when = f"in the hour from {at}" if ended else f"this hour (since {at})"
        return Notice(
            title=f"{bot.name}: lost {format_money(-total)} {'in an hour' if ended else 'this hour'}"
            f" with open positions, usually {low} to {high}",
            message=f"{bot.name} lost {format_money(-total)} {when} with its open positions marked to market"
            f" (realized {format_money(pnl)}, open positions {format_money(open_change)}); at this hour its"
            f" P&L with open positions is usually between {low} and {high}.",
            fields=[
                ("Bot", bot.name),
                ("Hour from", f"{hour_start.astimezone(past.zone):%Y-%m-%d %H:%M %Z}"),
                ("Realized", format_money(pnl)),
                ("Open positions", format_money(open_change)),
                ("P&L with open positions", format_money(total)),
                ("Usual (middle half)", f"{low} to {high}"),
                ("Median", format_money(base.median)),
                ("Score", f"{score(excess, max(spread, floor / threshold))}"),
                ("Threshold", format_quantity(threshold)),
                ("Compared with", base.described),
            ],
        )

    def unusual(
        self,
        bot: Bot,
        hour_start: dt.datetime,
        fills: int,
        pnl: Decimal,
        past: History,
        threshold: Decimal,
        *,
        ended: bool,
    ) -> Notice | None:
        base = past.pnl
        floor = min_loss()
        # How far below its median; the scale's floor is the minimum loss / threshold: with no
        # spread in its history, a loss is far outside it once it is the minimum loss below the usual.
        excess = base.median - pnl
        spread = past.pnl_scale(fills)
        if pnl > -floor or excess < max(threshold * spread, floor):
            return None
        low, high = (format_money(value) for value in base.usual)
        when = (
            f"in the hour from {_at(hour_start, past.zone)}"
            if ended
            else f"this hour (since {_at(hour_start, past.zone)})"
        )
        return Notice(
            title=f"{bot.name}: lost {format_money(-pnl)} {'in an hour' if ended else 'this hour'},"
            f" usually {low} to {high}",
            message=f"{bot.name} lost {format_money(-pnl)} {when}; at this hour its realized P&L is usually"
            f" between {low} and {high}.",
            fields=[
                ("Bot", bot.name),
                ("Hour from", f"{hour_start.astimezone(past.zone):%Y-%m-%d %H:%M %Z}"),
                ("Realized P&L", format_money(pnl)),
                ("Usual (middle half)", f"{low} to {high}"),
                ("Median", format_money(base.median)),
                (
                    "Score",
                    f"{score(excess, max(spread, floor / threshold))}"
                    f" (threshold {format_quantity(threshold)})",
                ),
                ("Compared with", base.described),
            ],
        )

    def recovered(self, rule: Rule, bot: Bot, since: dt.datetime, now: dt.datetime) -> Notice:
        return Notice(
            level=Level.INFO,
            title=f"{bot.name}: hourly P&L back to usual",
            message=f"{bot.name}'s P&L per hour is within its usual range again (unusual since"
            f" {since.astimezone(market.calendar_for(bot).zone):%Y-%m-%d %H:%M %Z}).",
            fields=[("Bot", bot.name)],
        )
