"""The report page: a period's figures (any day or span, one bot or all), as a page and as CSV.

The figures are ``trades``' ``PeriodSummary``, the same value the period API answers and
``manage.py period_summary`` prints; the dates are checked by the API's own query
serializer, so a period the API refuses is refused here with the same words. The page
and the CSV are written from one ``Report``, so they cannot disagree.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import HttpResponse, QueryDict
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import slugify

from monitorsite.chart import compares_strategies, pnl_chart, strategies_chart
from trades import market, positions
from trades.formats import format_money
from trades.models import Bot, Trade
from trades.serializers import PeriodQuerySerializer
from trades.summary import PeriodSummary, group_table, performance_lines

ALL_BOTS = "All bots"


class ReportForm(forms.Form):
    """A period and a bot; every field defaults to today's trading day and every bot."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="First trading day.")
    end = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), help_text="Last trading day, included."
    )
    bot = forms.ModelChoiceField(
        queryset=Bot.objects.order_by("name"), to_field_name="name", required=False, empty_label=ALL_BOTS
    )

    @classmethod
    def of(cls, query: QueryDict, today: dt.date) -> ReportForm:
        """The form bound to the page's query, today and every bot where it gives nothing."""
        data = {"start": today.isoformat(), "end": today.isoformat(), "bot": ""}
        data.update({name: query[name] for name in data if name in query})
        return cls(data)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start is None or end is None:
            return cleaned
        # The period API's rules (its years, end not before start, its longest period), by field.
        period = PeriodQuerySerializer(data={"start": start.isoformat(), "end": end.isoformat()})
        if not period.is_valid():
            for field, messages in period.errors.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, str(message))
        return cleaned


@dataclass(frozen=True)
class Table:
    caption: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    chart: SafeString | None = None  # drawn under the table (the strategies' lines side by side)

    @property
    def labelled_rows(self) -> list[list[tuple[str, str]]]:
        """Each cell with its column's header: on a phone a row stacks and each cell says what it is."""
        return [list(zip(self.headers, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Report:
    """What the page shows and the CSV holds: the figures, then a table per strategy, symbol and day."""

    bot: Bot | None
    summary: PeriodSummary
    figures: list[tuple[str, str]]
    tables: list[Table]

    @classmethod
    def build(cls, bot: Bot | None, start: dt.date, end: dt.date) -> Report:
        # One bot's figures come with its state at each day's close (equity, day P&L marked to market).
        summary = (
            positions.period_summary(bot, start, end)
            if bot
            else Trade.objects.all().period_summary(start, end)
        )
        strategies = strategies_chart(summary) if compares_strategies(summary) else None
        tables = [
            Table("By strategy", *group_table("strategy", summary.by_strategy), strategies),
            Table("By symbol", *group_table("symbol", summary.by_symbol)),
        ]
        days = [(f"{d.date:%Y-%m-%d}", format_money(d.pnl), format_money(d.cumulative)) for d in summary.days]
        tables.append(Table("By day (days with a closed trade)", ("day", "P&L", "cumulative P&L"), days))
        if summary.closes:
            tables.append(
                Table(
                    "Each day's close (equity, and the day's P&L with open positions)", *summary.close_table()
                )
            )
        return cls(bot, summary, performance_lines(summary.overall), tables)

    @property
    def bot_name(self) -> str:
        return self.bot.name if self.bot else ALL_BOTS.lower()

    @property
    def title(self) -> str:
        start, end = self.summary.start, self.summary.end
        when = f"{start:%a %Y-%m-%d}" if start == end else f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
        return f"Report: {self.bot_name}, {when}"

    @property
    def chart(self) -> SafeString:
        return pnl_chart(self.summary)

    def query(self, **extra: str) -> str:
        """This report's address query (``extra`` added), e.g. for its CSV."""
        params = {
            "start": self.summary.start,
            "end": self.summary.end,
            "bot": self.bot.name if self.bot else "",
        }
        return urlencode({**params, **extra})

    def csv_response(self) -> HttpResponse:
        """The page's figures and tables, in the page's words and numbers, as a CSV download."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["report", self.bot_name, f"{self.summary.start:%Y-%m-%d}", f"{self.summary.end:%Y-%m-%d}"]
        )
        writer.writerow([])
        writer.writerow(["figure", "value"])
        writer.writerows(self.figures)
        for table in self.tables:
            writer.writerow([])
            writer.writerow([table.caption])
            writer.writerow(table.headers)
            writer.writerows(table.rows)
        who = slugify(self.bot.name) if self.bot else "all"
        name = f"report_{who}_{self.summary.start:%Y%m%d}_{self.summary.end:%Y%m%d}"
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response


def report_for(query: QueryDict, today: dt.date | None = None) -> tuple[ReportForm, Report | None]:
    """The form read from ``query``, and its report when the form is valid."""
    if today is None:  # one bot's today is its calendar's
        bot = Bot.objects.filter(name=query["bot"]).first() if query.get("bot") else None
        today = (market.calendar_for(bot) if bot else market.site_calendar()).today()
    form = ReportForm.of(query, today)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    return form, Report.build(data["bot"], data["start"], data["end"])
