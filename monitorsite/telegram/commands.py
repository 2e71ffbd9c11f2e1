"""What each Telegram command answers and does: plain text, short, in the market's time.

The one list of commands is ``COMMANDS``: ``/help`` and the menu registered with Telegram
(``setMyCommands``) come from it. A command reads through each app's own offers, as the cockpit
does (the figures from ``trades``, states, halts and alerts from ``alerts.status``, health from
the registry), so a reply says what the cockpit says.

Control commands ask first: ``/halt`` and ``/resume`` answer with a confirm button that only the
asker may press, once, within ``CONFIRM_WITHIN``. What an operator changes is recorded as an
``OperatorAction`` (who, when, what), shown in the admin beside the halts and silences.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.utils.timesince import timesince

from alerts import status
from alerts.models import (
    AlertRule,
    CommandConfirmation,
    ConfirmAction,
    Level,
    OperatorAction,
    Silence,
    TradingHalt,
)
from alerts.summary import summary_fields, summary_lines
from alerts.transports.base import utf16_len
from monitorsite.cockpit import HEALTH_NAMES, health_words
from monitorsite.registry import run_health_checks
from trades import market, positions
from trades.formats import format_duration, format_money, format_price, format_quantity
from trades.models import Bot, BotSnapshot, Trade
from trades.summary import performance_lines

# Telegram's limit for a message's text, in UTF-16 code units (sendMessage, editMessageText).
TEXT_LIMIT = 4096
# A confirm button acts when pressed this long after the question at the most.
CONFIRM_WITHIN = dt.timedelta(minutes=2)
# /mute takes this many minutes at most (a week): a longer silence belongs in the admin.
MUTE_MAX_MINUTES = 7 * 24 * 60
# /period takes this many trading days at most (three years).
PERIOD_MAX_DAYS = 756
WEEK_TRADING_DAYS = 5
SHOWN_POSITIONS = 10
SHOWN_ALERTS = 8
LEVEL_MARK = {Level.CRITICAL: "🚨", Level.WARNING: "⚠️", Level.INFO: "🔔"}


@dataclass(frozen=True)
class Sender:
    """Who sent a command: their Telegram user id and a name to record (``ann (Telegram 111)``)."""

    user_id: int
    name: str

    @property
    def who(self) -> str:
        return f"{self.name} (Telegram {self.user_id})"[:150]


@dataclass
class Reply:
    """A message to send: its text, and a keyboard of ``(label, callback data)`` rows if any.
    ``confirmation``: the question it asks, whose message id is kept once it is sent."""

    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)
    confirmation: CommandConfirmation | None = None


@dataclass(frozen=True)
class Press:
    """What a button press answers: ``notice`` on the button (answerCallbackQuery), and ``edit``
    the question's new text (its button gone), or None to leave it."""

    notice: str
    edit: str | None = None


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    run: Callable[[Sender, str, dt.datetime], Reply]
    usage: str = ""


def fit(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to Telegram's limit on a line's end, saying that the rest was left out."""
    if utf16_len(text) <= limit:
        return text
    note = "\n… (cut: open the cockpit for the rest)"
    lines, kept = text.split("\n"), []
    room = limit - utf16_len(note)
    for line in lines:
        if utf16_len("\n".join([*kept, line])) > room:
            break
        kept.append(line)
    if not kept:  # one line longer than a message
        cut, size = [], 0
        for char in text:
            size += utf16_len(char)
            if size > room:
                break
            cut.append(char)
        kept = ["".join(cut)]
    return "\n".join(kept) + note


def active_bots() -> list[Bot]:
    return list(Bot.objects.filter(is_active=True).order_by("name"))


def ago(moment: dt.datetime | None, now: dt.datetime) -> str:
    return "never" if moment is None else f"{timesince(moment, now)} ago"


def local_time(moment: dt.datetime, now: dt.datetime) -> str:
    """``14:32 EST`` today (market time), else ``Fri 2026-12-04 14:32 EST``."""
    local = moment.astimezone(market.market_zone())
    if local.date() == now.astimezone(market.market_zone()).date():
        return local.strftime("%H:%M %Z")
    return local.strftime("%a %Y-%m-%d %H:%M %Z")


def own_calendar(bot: Bot, first: dt.date, last: dt.date | None = None) -> str:
    """After a bot's name when its calendar is not the site's: its code and its days,
    " (XLON, Thu 2026-12-03)"; "" for a bot on the site's calendar."""
    calendar = market.calendar_for(bot)
    if calendar == market.site_calendar():
        return ""
    days = f"{first:%a %Y-%m-%d}" if last is None else f"{first:%a %Y-%m-%d} to {last:%a %Y-%m-%d}"
    return f" ({calendar.code}, {days})"


def plain(lines: str) -> str:
    """The summaries' lines without their Discord emphasis (Telegram gets plain text)."""
    return lines.replace("**", "")


# --- read commands ------------------------------------------------------------------------------


def status_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    words = market.market_clock(now).words
    lines = [f"{words[0].upper()}{words[1:]}."]
    bots = active_bots()
    if not bots:
        lines.append("No bots yet: add one in the admin (Bots) or with create_bot.")
    for bot in bots:
        state = status.bot_state(bot, now)
        words = state.label
        if state.halted_until is not None:
            words = f"HALTED until {state.halted_until:%a %Y-%m-%d} ({state.label})"
        lines.append(f"{bot.name}: {words}, heartbeat {ago(bot.last_heartbeat_at, now)}")
        today = market.calendar_for(bot).today(now)
        realized = Trade.objects.for_bot(bot).realized_pnl(today)
        marked = positions.day_pnl(bot, today, realized=realized)
        today_words = f"today {format_money(realized)} realized"
        if marked is not None:
            today_words += (
                f", {format_money(marked.total)} with open positions (as of {local_time(marked.as_of, now)})"
            )
        lines.append(f"  {today_words}")
    for halt in status.halts_in_force(now):
        lines.append(f"Halt: {halt.bot.name} until {halt.ends_on:%a %Y-%m-%d}: {halt.reason}")
    return Reply(fit("\n".join(lines)))


def today_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    today = market.trading_day_of(now)
    parts = [f"Today, {today:%a %Y-%m-%d}"]
    for bot in active_bots():
        day = market.calendar_for(bot).today(now)
        summary = positions.daily_summary(bot, day)
        fields = "\n".join(f"{label}: {value}" for label, value in summary_fields(summary))
        parts.append(f"{bot.name}{own_calendar(bot, day)}\n{fields}\n{plain(summary_lines(summary))}")
    if len(parts) == 1:
        parts.append("No bots yet.")
    return Reply(fit("\n\n".join(parts)))


def period_reply(title: str, days: int, now: dt.datetime) -> Reply:
    start, end = market.last_trading_days(days, market.trading_day_of(now))
    parts = [f"{title}: {start:%a %Y-%m-%d} to {end:%a %Y-%m-%d} ({days} trading days)"]
    for bot in active_bots():
        calendar = market.calendar_for(bot)
        first, last = calendar.last_trading_days(days, calendar.today(now))
        summary = positions.period_summary(bot, first, last)
        figures = "\n".join(f"{label}: {value}" for label, value in performance_lines(summary.overall))
        parts.append(f"{bot.name}{own_calendar(bot, first, last)}\n{figures}")
    if len(parts) == 1:
        parts.append("No bots yet.")
    return Reply(fit("\n\n".join(parts)))


def week_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    return period_reply("The last week", WEEK_TRADING_DAYS, now)


def period_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    if not args:
        return period_reply("Period", market.DEFAULT_PERIOD_TRADING_DAYS, now)
    if not re.fullmatch(r"\d{1,4}", args) or not 1 <= int(args) <= PERIOD_MAX_DAYS:
        return Reply(f"/period takes a number of trading days from 1 to {PERIOD_MAX_DAYS}, e.g. /period 20.")
    return period_reply("Period", int(args), now)


def positions_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    parts = []
    for bot in active_bots():
        snapshot = BotSnapshot.objects.latest_with_positions(bot)
        account = positions.latest_account(bot)
        lines = [bot.name]
        if snapshot is None:
            lines.append("  positions never reported")
        else:
            held = snapshot.position_list()
            if not held:
                lines.append(f"  flat (as of {local_time(snapshot.taken_at, now)})")
            else:
                lines.append(
                    f"  {len(held)} open, unrealized {format_money(snapshot.unrealized_pnl or Decimal(0))}"
                    f" (as of {local_time(snapshot.taken_at, now)})"
                )
                largest = sorted(held, key=lambda p: (-abs(p.unrealized_pnl), p.symbol))[:SHOWN_POSITIONS]
                for p in largest:
                    lines.append(
                        f"  {p.symbol} {format_quantity(p.quantity)} @ {format_price(p.avg_price)}"
                        f" now {format_price(p.market_price)}: {format_money(p.unrealized_pnl)}"
                    )
                if len(held) > len(largest):
                    lines.append(f"  … and {len(held) - len(largest)} more")
        if account is not None:
            figures = [
                f"{label} {format_money(value)}"
                for label, value in (("equity", account.equity), ("cash", account.cash))
                if value is not None
            ]
            lines.append(f"  {', '.join(figures)}")
        parts.append("\n".join(lines))
    return Reply(fit("\n\n".join(parts) if parts else "No bots yet."))


def alerts_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    groups = status.latest_alerts(now, limit=SHOWN_ALERTS)
    if not groups:
        return Reply("No alerts yet.")
    lines = ["Latest alerts, critical first:"]
    for group in groups:
        alert = group.alert
        mark = "✅" if group.resolved else LEVEL_MARK.get(alert.level, "")
        bot = f"{alert.bot.name}: " if alert.bot_id and alert.bot else ""
        line = f"{mark} {local_time(alert.created_at, now)} {bot}{alert.title}"
        lines.append(line[:300])
    return Reply(fit("\n".join(lines)))


def health_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    state, components = run_health_checks()
    lines = [f"Site: {state}"]
    for name, part in components.items():
        mark = "✅" if part["ok"] else "❌"
        lines.append(f"{mark} {HEALTH_NAMES.get(name, name.replace('_', ' '))}: {health_words(part)}")
    return Reply(fit("\n".join(lines)))


def help_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    lines = ["Commands:"]
    lines += [f"/{c.name}{' ' + c.usage if c.usage else ''}: {c.description}" for c in COMMANDS.values()]
    lines.append(
        f"/halt and /resume ask first: press Confirm within {format_duration(CONFIRM_WITHIN)}. "
        "Times are market time."
    )
    return Reply("\n".join(lines))


# --- control commands ----------------------------------------------------------------------------


def which_bot(command: str, args: str) -> Bot | str:
    """The bot ``args`` names (any case), or the only bot when none is named; else what to say."""
    bots = active_bots()
    names = ", ".join(b.name for b in bots)
    if args:
        for bot in bots:
            if bot.name.lower() == args.strip().lower():
                return bot
        return f"No bot named {args.strip()[:64]}. Bots: {names or 'none'}."
    if len(bots) == 1:
        return bots[0]
    if not bots:
        return "No bots yet."
    choices = " or ".join(f"/{command} {b.name}" for b in bots)
    return f"Which bot? {choices}"


def ask(sender: Sender, action: ConfirmAction, bot: Bot, question: str, now: dt.datetime) -> Reply:
    confirmation = CommandConfirmation.objects.create(
        nonce=secrets.token_urlsafe(12),
        user_id=sender.user_id,
        who=sender.who,
        action=action,
        bot=bot,
        asked_at=now,
    )
    label = f"{action.label.capitalize()} {bot.name}"
    return Reply(
        f"{question}\nPress {label} within {format_duration(CONFIRM_WITHIN)}; only you can.",
        buttons=[(label, f"ok:{confirmation.nonce}"), ("Cancel", f"no:{confirmation.nonce}")],
        confirmation=confirmation,
    )


def halt_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    bot = which_bot("halt", args)
    if isinstance(bot, str):
        return Reply(bot)
    calendar = market.calendar_for(bot)
    today = calendar.today(now)
    halt = TradingHalt.objects.in_force(bot, today)
    if halt is not None:
        return Reply(f"{bot.name} is already halted until {halt.ends_on:%a %Y-%m-%d}: {halt.reason}")
    ends = calendar.next_trading_day(today)
    return ask(
        sender,
        ConfirmAction.HALT,
        bot,
        f"Halt {bot.name}? It is told to stop trading until {ends:%a %Y-%m-%d} (the next trading day) "
        "or until resumed.",
        now,
    )


def resume_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    bot = which_bot("resume", args)
    if isinstance(bot, str):
        return Reply(bot)
    halt = TradingHalt.objects.in_force(bot, market.calendar_for(bot).today(now))
    if halt is None:
        return Reply(f"{bot.name} is not halted.")
    return ask(
        sender,
        ConfirmAction.RESUME,
        bot,
        f"Resume {bot.name}? It is halted until {halt.ends_on:%a %Y-%m-%d}: {halt.reason}",
        now,
    )


def mute_command(sender: Sender, args: str, now: dt.datetime) -> Reply:
    usage = f"Usage: /mute RULE MINUTES, e.g. /mute max-daily-loss 60 (1 to {MUTE_MAX_MINUTES} minutes)."
    name, _, minutes = args.strip().rpartition(" ")
    if not name or not re.fullmatch(r"\d{1,6}", minutes) or not 1 <= int(minutes) <= MUTE_MAX_MINUTES:
        return Reply(usage)
    rule = AlertRule.objects.filter(name__iexact=name.strip()).first()
    if rule is None:
        names = ", ".join(AlertRule.objects.order_by("name").values_list("name", flat=True))
        return Reply(fit(f"No rule named {name.strip()[:64]}. Rules: {names or 'none'}."))
    until = now + dt.timedelta(minutes=int(minutes))
    Silence.objects.create(rule=rule, until=until, reason=f"muted by {sender.who} from Telegram"[:200])
    outcome = f"muted {rule.name} until {local_time(until, now)} ({format_duration(until - now)})"
    OperatorAction.objects.create(at=now, who=sender.who, action="mute", rule=rule, outcome=outcome)
    return Reply(
        f"{outcome[0].upper()}{outcome[1:]}. Its alerts are still recorded; the admin lists the silence."
    )


def pressed(sender: Sender, data: str, now: dt.datetime) -> Press:
    """A confirm or cancel button was pressed: act once, for its asker, within the time."""
    verb, _, nonce = data.partition(":")
    confirmation = CommandConfirmation.objects.filter(nonce=nonce).select_related("bot").first()
    if verb not in ("ok", "no") or confirmation is None:
        return Press("This button is no longer valid.")
    if confirmation.user_id != sender.user_id:
        return Press(f"Only {confirmation.who} can answer this.")
    if confirmation.answered_at is not None:
        return Press("Already answered.")
    bot, action = confirmation.bot, ConfirmAction(confirmation.action)
    if verb == "no":
        if not CommandConfirmation.objects.claim(nonce, sender.user_id, now):
            return Press("Already answered.")
        return Press("Cancelled.", f"Cancelled: {bot.name} not {action.label}ed; nothing changed.")
    if not CommandConfirmation.objects.claim(nonce, sender.user_id, now, CONFIRM_WITHIN):
        if CommandConfirmation.objects.claim(nonce, sender.user_id, now):
            return Press(
                "Too late: nothing was done.",
                f"Not done: the confirmation expired after {format_duration(CONFIRM_WITHIN)}. "
                f"Send /{action.value} {bot.name} again.",
            )
        return Press("Already answered.")
    act = halt_now if action == ConfirmAction.HALT else resume_now
    done, outcome = act(bot, sender, now)
    if done:
        OperatorAction.objects.create(at=now, who=sender.who, action=action.value, bot=bot, outcome=outcome)
    return Press("Done." if done else outcome[:200], outcome)


def halt_now(bot: Bot, sender: Sender, now: dt.datetime) -> tuple[bool, str]:
    """Halt ``bot``: whether this halted it, and the outcome in words."""
    halt, halted = TradingHalt.objects.halt_by_operator(
        bot, market.calendar_for(bot).today(now), by=sender.who, now=now
    )
    if not halted:
        return False, f"{bot.name} was already halted until {halt.ends_on:%a %Y-%m-%d}: {halt.reason}"
    return True, f"{bot.name} halted until {halt.ends_on:%a %Y-%m-%d} by {sender.name}."


def resume_now(bot: Bot, sender: Sender, now: dt.datetime) -> tuple[bool, str]:
    """Resume ``bot``'s halt in force: whether this resumed it, and the outcome in words."""
    today = market.calendar_for(bot).today(now)
    ids = list(TradingHalt.objects.all_in_force(today).filter(bot=bot).values_list("pk", flat=True))
    if not TradingHalt.objects.filter(pk__in=ids).resume(by=sender.who, now=now):
        return False, f"{bot.name} was not halted any more; nothing changed."
    quiet = [h.quiet_until for h in TradingHalt.objects.filter(pk__in=ids).resumed_quiet(today)]
    return True, f"{bot.name} resumed by {sender.name}." + "".join(f" {q}." for q in quiet)


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("status", "each bot's state, heartbeat, today's P&L and halts", status_command),
        Command("today", "today's summary", today_command),
        Command("week", "the last 5 trading days' figures", week_command),
        Command("period", "the figures of the last N trading days (default 30)", period_command, "[days]"),
        Command("positions", "open positions and account", positions_command),
        Command("alerts", "the latest alerts, critical first", alerts_command),
        Command("health", "the site's health", health_command),
        Command("halt", "stop a bot trading until the next trading day (asks first)", halt_command, "[bot]"),
        Command("resume", "let a halted bot trade again (asks first)", resume_command, "[bot]"),
        Command("mute", "silence a rule for some minutes", mute_command, "RULE MINUTES"),
        Command("help", "this list", help_command),
    )
}
