"""A period's P&L chart, drawn here as inline SVG: nothing fetched, no script, no library.

Bars are each day's realized P&L about a zero line (green above, red below), the line is
the period's cumulative realized P&L; the x axis names the first and last day and a few
between, the y axis the lowest value, zero and the highest, as money. Every bar and point
carries a ``<title>`` (the tooltip), and the whole an ``aria-label`` that says it in words.
The cockpit's cards and the report page draw the same function.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from trades.formats import format_money
from trades.summary import DayPnl, PeriodSummary

# The viewBox. The SVG is drawn at its box's width, 340 px and up (a card on a phone), so a
# 10-unit font reads at about 10 px there and grows with a desk's wider cards.
WIDTH, HEIGHT = 360, 200
FONT = 10
DIGIT = 6.2  # a digit's width at FONT, near enough to leave room for the labels
# TOP leaves a line above the plot for a highest value just over zero (see label_y); BOTTOM holds the dates.
TOP, RIGHT, BOTTOM = 16, 8, 20
# First, last and two between: four "Dec 24" fit a phone's 300 px of plot without touching.
DATE_LABELS = 4
GREEN, RED, GREY, LINE = "#1a7f37", "#ba2121", "#888", "#2f5f9e"


class Frame:
    """A chart's plot area and axes, shared by the charts here: a slot per day along x (named by
    a few dates beneath), and y from the lowest to the highest value with zero always in (named as
    money at the left, with a rule across at each)."""

    def __init__(self, dates: Sequence[dt.date], values: Iterable[Decimal]) -> None:
        self.dates = dates
        values = list(values)
        self.low = min(Decimal(0), *values)
        self.high = max(Decimal(0), *values)
        self.y_values = sorted({self.low, Decimal(0), self.high})
        self.left = round(6 + DIGIT * max(len(format_money(v)) for v in self.y_values), 1)
        self.plot_width, self.plot_height = WIDTH - self.left - RIGHT, HEIGHT - TOP - BOTTOM
        self.span = self.high - self.low
        self.slot = self.plot_width / len(dates)
        self.zero = self.y(Decimal(0))

    def y(self, value: Decimal) -> float:
        if not self.span:  # every value is zero: the zero line across the middle
            return TOP + self.plot_height / 2
        return round(TOP + float((self.high - value) / self.span) * self.plot_height, 1)

    def x(self, index: int) -> float:
        return round(self.left + self.slot * (index + 0.5), 1)

    def label_y(self, value: Decimal) -> float:
        # A lowest or highest value close to zero has its label moved off the zero's, into the
        # margin if need be: left of the axis, where no date is written.
        if value < 0:
            return max(self.y(value), self.zero + FONT + 1)
        if value > 0:
            return min(self.y(value), self.zero - FONT - 1)
        return self.zero

    def y_axis(self) -> SafeString:
        return format_html_join(
            "",
            '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"{}/>'
            '<text class="y-label" x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
            (
                (
                    self.left,
                    WIDTH - RIGHT,
                    self.y(v),
                    self.y(v),
                    "#555" if v == 0 else "#ddd",
                    "" if v == 0 else format_html(' stroke-dasharray="{}"', "2 3"),
                    round(self.left - 4, 1),
                    self.label_y(v),
                    format_money(v),
                )
                for v in self.y_values
            ),
        )

    def x_axis(self) -> SafeString:
        """The axis line up the left, and the dates under the plot."""
        return format_html(
            '<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#555"/>{labels}',
            left=self.left,
            top=TOP,
            bottom=TOP + self.plot_height,
            labels=format_html_join(
                "",
                '<text class="x-label" x="{}" y="{}" text-anchor="middle">{}</text>',
                (
                    (_clamped(self.x(i), label, self.left), HEIGHT - 5, label)
                    for i, label in _date_labels(self.dates, self.slot)
                ),
            ),
        )


def pnl_chart(period: PeriodSummary) -> SafeString:
    """Daily P&L bars and the cumulative line over ``period.days`` (the days with a closed trade)."""
    days = period.days
    if not days:
        return format_html(
            '<p class="cockpit-empty">No closed trades from {} to {}.</p>', period.start, period.end
        )
    frame = Frame([d.date for d in days], [*(d.pnl for d in days), *(d.cumulative for d in days)])
    x, y, slot = frame.x, frame.y, frame.slot
    bar_width = round(max(1.0, min(slot * 0.7, 28.0)), 1)
    radius = 2.5 if slot >= 8 else 1.2  # a long period's points would run into a thick band
    bars = format_html_join(
        "", "{}", ((_bar(d, x(i), y(d.pnl), frame.zero, bar_width),) for i, d in enumerate(days))
    )
    points = " ".join(f"{x(i)},{y(d.cumulative)}" for i, d in enumerate(days))
    dots = format_html_join(
        "",
        '<circle class="point" cx="{}" cy="{}" r="{}" fill="{}"><title>{}: {} cumulative</title></circle>',
        (
            (x(i), y(d.cumulative), radius, LINE, _long_date(d.date), format_money(d.cumulative))
            for i, d in enumerate(days)
        ),
    )
    return format_html(
        '<svg class="pnl-chart" viewBox="0 0 {w} {h}" role="img" aria-label="{summary}"'
        ' xmlns="http://www.w3.org/2000/svg" font-size="{font}" fill="currentColor">'
        "<title>{summary}</title>{y_axis}{bars}"
        '<polyline class="cumulative" fill="none" stroke="{line}" stroke-width="2" points="{points}"/>'
        "{dots}{x_axis}</svg>",
        w=WIDTH,
        h=HEIGHT,
        font=FONT,
        summary=chart_summary(period),
        y_axis=frame.y_axis(),
        bars=bars,
        line=LINE,
        points=points,
        dots=dots,
        x_axis=frame.x_axis(),
    )


def chart_summary(period: PeriodSummary) -> str:
    """The chart in words, for a screen reader (``aria-label``) and as the SVG's own title."""
    days = period.days
    best = max(days, key=lambda d: d.pnl)
    worst = min(days, key=lambda d: d.pnl)
    count = f"{len(days)} day{'s' if len(days) != 1 else ''} with closed trades"
    return (
        f"Realized P&L per day (bars) and cumulative (line), {period.start} to {period.end}: {count};"
        f" best day {best.date} {format_money(best.pnl)}, worst day {worst.date} {format_money(worst.pnl)};"
        f" cumulative {format_money(days[-1].cumulative)} at the end."
    )


def _bar(day: DayPnl, centre: float, top: float, zero: float, width: float) -> SafeString:
    """One day's bar from the zero line up (a gain) or down (a loss); a break-even day is a grey tick."""
    sign = "pos" if day.pnl > 0 else "neg" if day.pnl < 0 else "zero"
    colour = {"pos": GREEN, "neg": RED, "zero": GREY}[sign]
    upper, height = (min(top, zero), abs(zero - top)) if day.pnl else (zero - 0.5, 1.0)
    return format_html(
        '<rect class="bar bar-{}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
        "<title>{}: {} that day</title></rect>",
        sign,
        round(centre - width / 2, 1),
        round(upper, 1),
        width,
        round(height, 1),
        colour,
        _long_date(day.date),
        format_money(day.pnl),
    )


def _date_labels(days: Sequence[dt.date], slot: float) -> list[tuple[int, str]]:
    """The days named under the x axis: the first, the last and evenly spaced ones between, as
    many as fit apart (``slot`` is a day's width), at most ``DATE_LABELS``."""
    one_year = days[0].year == days[-1].year
    for count in range(min(len(days), DATE_LABELS), 1, -1):
        indexes = sorted({round(k * (len(days) - 1) / (count - 1)) for k in range(count)})
        labels = [(i, _short_date(days[i], one_year)) for i in indexes]
        widest = max(DIGIT * len(text) for _, text in labels)
        if min(b - a for (a, _), (b, _) in itertools.pairwise(labels)) * slot >= widest + DIGIT:
            return labels
    return [(0, _short_date(days[0], one_year))]


def _short_date(day: dt.date, one_year: bool) -> str:
    # "Dec 4" within a year; across years the whole date says which.
    return f"{day:%b} {day.day}" if one_year else f"{day:%Y-%m-%d}"


def _long_date(day: dt.date) -> str:
    return f"{day:%a %Y-%m-%d}"


def _clamped(centre: float, label: str, left: float) -> float:
    """A label's centre, moved in so that the label stays inside the chart."""
    half = DIGIT * len(label) / 2
    return round(max(left - 4 + half, min(centre, WIDTH - 2 - half)), 1)


# --- the strategies side by side ---------------------------------------------------------------

# Okabe and Ito's colour-blind-safe palette without its yellow (too pale on white), in their order;
# the legend names each line as well. As many lines as colours: the rest are named in the legend.
STRATEGY_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
SHOWN_STRATEGIES = len(STRATEGY_COLOURS)
LEGEND_COLUMNS, LEGEND_ROW = 2, 14  # the legend's entries two a row under the dates, a row's height
SWATCH = 14  # a legend entry's sample of its line


def compares_strategies(period: PeriodSummary) -> bool:
    """Whether the period has strategies to set side by side: two or more traded in it (one
    strategy's figures and line are the bot's own, shown already)."""
    return len(period.by_strategy) >= 2


def strategy_name(name: str) -> str:
    """A strategy as people read it: trades without one are "(none)", as in every table."""
    return name or "(none)"


def shown_strategies(period: PeriodSummary) -> tuple[list[str], list[str]]:
    """The strategies drawn (those with a closed trade, the largest |P&L| first, ties by name, at most
    ``SHOWN_STRATEGIES``) and the rest with a closed trade, named in the legend as "N more"."""
    drawn = [name for name, days in period.strategy_days.items() if days]
    drawn.sort(key=lambda name: (-abs(period.strategy_days[name][-1].cumulative), name))
    return drawn[:SHOWN_STRATEGIES], drawn[SHOWN_STRATEGIES:]


def strategies_chart(period: PeriodSummary) -> SafeString:
    """Each strategy's cumulative realized P&L over the period, a line each in its own colour, with
    a legend (name and P&L at the end): ``period.strategy_days`` on the axes of ``pnl_chart``.

    Every line starts from zero at the period's start (the axis) and has a point on each day any
    drawn strategy closed a trade, keeping its total on the days it closed nothing; the last point
    is a dot, so that a one-day period shows too. Each line and dot carries a ``<title>``."""
    shown, rest = shown_strategies(period)
    if not shown:
        return format_html(
            '<p class="cockpit-empty">No closed trades from {} to {}.</p>', period.start, period.end
        )
    dates = sorted({day.date for name in shown for day in period.strategy_days[name]})
    series: dict[str, list[Decimal]] = {}
    for name in shown:
        by_date = {day.date: day.cumulative for day in period.strategy_days[name]}
        running, values = Decimal(0), []
        for date in dates:
            running = by_date.get(date, running)
            values.append(running)
        series[name] = values
    frame = Frame(dates, (value for values in series.values() for value in values))
    lines = format_html_join(
        "",
        '<polyline class="strategy-line" data-strategy="{}" fill="none" stroke="{}" stroke-width="2"'
        ' stroke-linejoin="round" points="{}"><title>{}: {} cumulative at the end</title></polyline>'
        '<circle class="strategy-end" cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {} on {}</title></circle>',
        (
            (
                name,
                colour,
                " ".join(
                    [f"{frame.left},{frame.zero}"]
                    + [f"{frame.x(i)},{frame.y(value)}" for i, value in enumerate(values)]
                ),
                strategy_name(name),
                format_money(values[-1]),
                frame.x(len(values) - 1),
                frame.y(values[-1]),
                colour,
                strategy_name(name),
                format_money(values[-1]),
                _long_date(dates[-1]),
            )
            for (name, values), colour in zip(series.items(), STRATEGY_COLOURS, strict=False)
        ),
    )
    entries = [
        (strategy_name(name), format_money(series[name][-1]), colour)
        for name, colour in zip(shown, STRATEGY_COLOURS, strict=False)
    ]
    legend_rows = -(-(len(entries) + bool(rest)) // LEGEND_COLUMNS)
    height = HEIGHT + 4 + legend_rows * LEGEND_ROW
    column = (WIDTH - 8) / LEGEND_COLUMNS
    legend = format_html_join(
        "",
        '<g class="legend-entry"><title>{}: {}</title>'
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}" stroke-width="3"/>'
        '<text class="legend-name" x="{}" y="{}" dominant-baseline="middle">{}</text></g>',
        (
            (
                name,
                money,
                _legend_x(k, column),
                _legend_x(k, column) + SWATCH,
                _legend_y(k),
                _legend_y(k),
                colour,
                _legend_x(k, column) + SWATCH + 4,
                _legend_y(k),
                _fitted(name, money, column - SWATCH - 6),
            )
            for k, (name, money, colour) in enumerate(entries)
        ),
    )
    if rest:
        k = len(entries)
        more = ", ".join(strategy_name(name) for name in rest)
        legend += format_html(
            '<text class="legend-more" x="{}" y="{}" dominant-baseline="middle">{} more<title>Not drawn'
            " (smaller P&amp;L): {}</title></text>",
            _legend_x(k, column),
            _legend_y(k),
            len(rest),
            more,
        )
    return format_html(
        '<svg class="pnl-chart strategies-chart" viewBox="0 0 {w} {h}" role="img" aria-label="{summary}"'
        ' xmlns="http://www.w3.org/2000/svg" font-size="{font}" fill="currentColor">'
        "<title>{summary}</title>{y_axis}{lines}{x_axis}{legend}</svg>",
        w=WIDTH,
        h=height,
        font=FONT,
        summary=strategies_summary(period, shown, rest),
        y_axis=frame.y_axis(),
        lines=lines,
        x_axis=frame.x_axis(),
        legend=legend,
    )


def strategies_summary(period: PeriodSummary, shown: list[str], rest: list[str]) -> str:
    """The strategies chart in words (``aria-label`` and the SVG's title)."""
    ends = "; ".join(
        f"{strategy_name(name)} {format_money(period.strategy_days[name][-1].cumulative)}" for name in shown
    )
    more = f"; {len(rest)} more not drawn" if rest else ""
    return f"Cumulative realized P&L per strategy, {period.start} to {period.end}, at the end: {ends}{more}."


def _legend_x(k: int, column: float) -> float:
    return round(4 + (k % LEGEND_COLUMNS) * column, 1)


def _legend_y(k: int) -> float:
    return HEIGHT + 4 + (k // LEGEND_COLUMNS) * LEGEND_ROW + LEGEND_ROW / 2


def _fitted(name: str, money: str, width: float) -> str:
    """ "name money" in ``width``, the name cut short with "…" where it would not fit (the entry's
    title has it whole)."""
    room = int(width / DIGIT) - len(money) - 1
    if len(name) > room:
        name = name[: max(room - 1, 1)] + "…"
    return f"{name} {money}"
