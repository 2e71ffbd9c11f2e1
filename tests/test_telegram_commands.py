"""Telegram commands, in one process: the site's reader against the loopback Bot API, handling
each update as Telegram hands it over. What each command answers (against the API's own figures),
who is refused, the confirm button's rules at their boundaries, and the reader's offset."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from rest_framework.test import APIClient

from alerts.models import (
    Alert,
    AlertRule,
    CommandConfirmation,
    CommandReader,
    Level,
    OperatorAction,
    Silence,
    TradingHalt,
)
from alerts.transports.telegram import command_users
from monitorsite.telegram import commands
from monitorsite.telegram.reader import FRESH_NUMBERING, Config, Reader
from tests.alert_fixtures import *  # noqa: F403  (the telegram fixture: the loopback Bot API)
from tests.conftest import stored_trade
from tests.state_fixtures import client_for, position, post_state
from tests.telegram_server import (
    CHAT_ID,
    FIRST_UPDATE_ID,
    OTHER_CHAT_ID,
    OTHER_USER_ID,
    STRANGER_ID,
    TOKEN,
    USER_ID,
    TelegramServer,
)
from tests.test_cockpit import THURSDAY, utc
from trades import market
from trades.formats import format_money
from trades.models import Bot, Trade

pytestmark = pytest.mark.django_db
NOW = utc(THURSDAY, 11)  # a trading Thursday, the market open
FRIDAY = THURSDAY + dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def reader(telegram: TelegramServer, db: Any) -> Reader:
    config = Config(
        token=TOKEN, chat_id=CHAT_ID, api_url=telegram.api_url, users=frozenset({USER_ID, OTHER_USER_ID})
    )
    reader = Reader(config, holder="test-reader")
    reader.prepare()
    return reader


def poll(reader: Reader, now: dt.datetime = NOW) -> list[dict[str, Any]]:
    """One long poll (not waiting) under the lease, each update handled at ``now``; the updates."""
    row = reader.claim(now)
    assert row is not None
    payload: dict[str, Any] = {"timeout": 0}
    if offset := reader.offset(row, now):
        payload["offset"] = offset
    updates = reader.api.call("getUpdates", payload)
    for update in updates:
        reader.handle(update, now)
    return updates


def say(
    reader: Reader, telegram: TelegramServer, text: str, now: dt.datetime = NOW, **sender: Any
) -> list[str]:
    """``text`` sent to the chat; the texts the site sent back."""
    before = len(telegram.messages)
    telegram.user_says(text, **sender)
    poll(reader, now)
    return [m["text"] for m in telegram.messages[before:]]


def one_reply(reader: Reader, telegram: TelegramServer, text: str, now: dt.datetime = NOW) -> str:
    replies = say(reader, telegram, text, now)
    assert len(replies) == 1, replies
    return replies[0]


@pytest.fixture
def alpha(db: Any) -> Bot:
    return Bot.objects.create(name="alpha")


def trade(bot: Bot, n: int, pnl: str, at: dt.datetime, **fields: Any) -> None:
    Trade.objects.record_batch(bot, [stored_trade(n, pnl=Decimal(pnl), executed_at=at, **fields)])


def api(client: APIClient, path: str) -> dict[str, Any]:
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()


# --- read commands -------------------------------------------------------------------------------


def test_status_says_each_bots_state_heartbeat_todays_pnl_with_positions_and_halts(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    beta = Bot.objects.create(name="beta")
    trade(alpha, 1, "-92.10", utc(THURSDAY, 10))
    client = client_for(alpha)
    post_state(client, NOW - dt.timedelta(seconds=30), positions=[position("AAPL", 10, 180, 175.5)])
    TradingHalt.objects.halt(beta, THURSDAY, "max daily loss: -1,200.00", NOW)
    text = one_reply(reader, telegram, "/status")
    figures = api(client, "/api/v1/positions/")
    assert text.splitlines()[0] == "Market open, closes 16:00 EST."
    assert "alpha: running, heartbeat 0\xa0minutes ago" in text
    # Today: realized -92.10, with the position's -45.00 marked to market (no snapshot before today).
    assert figures["day_pnl"] == -137.1
    assert (
        f"today {format_money(Decimal('-92.10'))} realized, {format_money(Decimal('-137.10'))} with open"
        in text
    )
    assert "beta: HALTED until Fri 2026-01-16 (never reported), heartbeat never" in text
    assert "Halt: beta until Fri 2026-01-16: max daily loss: -1,200.00" in text


def test_today_is_the_daily_summary_without_markup(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    trade(alpha, 1, "100.25", utc(THURSDAY, 10), strategy="momentum")
    trade(alpha, 2, "-40", utc(THURSDAY, 10, 5), strategy="momentum")
    daily = api(client_for(alpha), "/api/v1/summary/daily/?date=2026-01-15")
    text = one_reply(reader, telegram, "/today")
    assert text.startswith("Today, Thu 2026-01-15\n\nalpha\n")
    assert daily["total_pnl"] == 60.25
    assert f"Total P&L: {format_money(Decimal(str(daily['total_pnl'])))}" in text
    assert "Wins / losses: 1 / 1" in text and "By strategy" in text and "**" not in text


def test_week_and_period_give_the_period_figures_of_the_api(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    trade(alpha, 1, "50", utc(THURSDAY - dt.timedelta(days=1), 10))
    trade(alpha, 2, "-20", utc(THURSDAY - dt.timedelta(days=10), 10))
    start, end = market.last_trading_days(5, THURSDAY)
    week = api(client_for(alpha), f"/api/v1/summary/period/?start={start}&end={end}")
    text = one_reply(reader, telegram, "/week")
    assert text.startswith(f"The last week: {start:%a %Y-%m-%d} to Thu 2026-01-15 (5 trading days)")
    assert f"P&L: {format_money(Decimal(str(week['total_pnl'])))}" in text and "P&L: 50.00" in text
    start10, _ = market.last_trading_days(10, THURSDAY)
    text = one_reply(reader, telegram, "/period 10")
    assert f"{start10:%a %Y-%m-%d} to Thu 2026-01-15 (10 trading days)" in text and "P&L: 30.00" in text


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        ("1", True),
        (str(commands.PERIOD_MAX_DAYS), True),
        (str(commands.PERIOD_MAX_DAYS + 1), False),
        ("0", False),
        ("-3", False),
        ("ten", False),
        ("9" * 40, False),
    ],
)
def test_period_takes_a_number_of_trading_days_within_its_bounds(
    reader: Reader, telegram: TelegramServer, alpha: Bot, args: str, accepted: bool
) -> None:
    text = one_reply(reader, telegram, f"/period {args}")
    assert text.startswith("Period: ") is accepted, text
    if not accepted:
        days = commands.PERIOD_MAX_DAYS
        assert text == f"/period takes a number of trading days from 1 to {days}, e.g. /period 20."


def test_positions_match_the_positions_api(reader: Reader, telegram: TelegramServer, alpha: Bot) -> None:
    client = client_for(alpha)
    post_state(
        client,
        NOW - dt.timedelta(minutes=1),
        positions=[position("AAPL", 10, 180, 175.5), position("TSLA", -5, 200, 190)],
        equity=25000.5,
        cash=1000,
    )
    figures = api(client, "/api/v1/positions/")
    text = one_reply(reader, telegram, "/positions")
    assert (
        f"2 open, unrealized {format_money(Decimal(str(figures['unrealized_pnl'])))} (as of 10:59 EST)"
        in text
    )
    assert "AAPL 10 @ 180.00 now 175.50: -45.00" in text and "TSLA -5 @ 200.00 now 190.00: 50.00" in text
    assert "equity 25,000.50, cash 1,000.00" in text
    # The largest by |unrealized| first: TSLA's 50 before AAPL's -45.
    assert text.index("TSLA") < text.index("AAPL")


def test_positions_of_a_bot_that_never_reported_them_say_so(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    assert one_reply(reader, telegram, "/positions") == "alpha\n  positions never reported"


def test_five_hundred_positions_fit_one_message(reader: Reader, telegram: TelegramServer, alpha: Bot) -> None:
    held = [position(f"SYM{i:03d}", 1 + i, 10, 10 + i % 7) for i in range(500)]
    post_state(client_for(alpha), NOW, positions=held)
    text = one_reply(reader, telegram, "/positions")
    assert len(text.splitlines()) == 2 + commands.SHOWN_POSITIONS + 1
    assert text.endswith(f"… and {500 - commands.SHOWN_POSITIONS} more")


def test_alerts_lists_the_latest_critical_first(reader: Reader, telegram: TelegramServer, alpha: Bot) -> None:
    Alert.objects.create(
        source="x",
        subject="a",
        level=Level.WARNING,
        title="old warning",
        created_at=NOW - dt.timedelta(minutes=5),
        bot=alpha,
    )
    Alert.objects.create(
        source="x",
        subject="b",
        level=Level.CRITICAL,
        title="the crash",
        created_at=NOW - dt.timedelta(minutes=9),
        bot=alpha,
    )
    Alert.objects.create(
        source="x",
        subject="c",
        level=Level.INFO,
        title="newest info",
        created_at=NOW - dt.timedelta(minutes=1),
    )
    lines = one_reply(reader, telegram, "/alerts").splitlines()
    assert lines == [
        "Latest alerts, critical first:",
        "🚨 10:51 EST alpha: the crash",
        "🔔 10:59 EST newest info",
        "⚠️ 10:55 EST alpha: old warning",
    ]


def test_health_names_each_component(reader: Reader, telegram: TelegramServer) -> None:
    text = one_reply(reader, telegram, "/health")
    assert text.splitlines()[0].startswith("Site: ")
    assert "database: ok" in text and "Telegram commands: off" in text


def test_help_lists_every_command_and_the_menu_registered_is_the_same(
    reader: Reader, telegram: TelegramServer
) -> None:
    text = one_reply(reader, telegram, "/help")
    names = list(commands.COMMANDS)
    assert [re.match(r"/(\w+)", line).group(1) for line in text.splitlines()[1 : 1 + len(names)]] == names
    assert [c["command"] for c in telegram.my_commands] == names
    assert set(names) >= {
        "status",
        "today",
        "week",
        "period",
        "positions",
        "alerts",
        "health",
        "help",
        "halt",
        "resume",
        "mute",
    }


def test_an_unknown_command_points_at_help_and_talk_gets_nothing(
    reader: Reader, telegram: TelegramServer
) -> None:
    assert one_reply(reader, telegram, "/balance") == "I don't know /balance. /help lists the commands."
    assert say(reader, telegram, "good morning everyone") == []
    assert say(reader, telegram, "/status@some_other_bot") == []
    assert one_reply(reader, telegram, "/help@monitor_test_bot").startswith("Commands:")


# --- who is answered ----------------------------------------------------------------------------


def test_strangers_and_other_chats_get_nothing_and_each_attempt_is_logged(
    reader: Reader, telegram: TelegramServer, alpha: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="monitorsite.telegram.reader")
    assert say(reader, telegram, "/status", user_id=STRANGER_ID) == []
    assert say(reader, telegram, "/halt alpha", user_id=STRANGER_ID) == []
    assert say(reader, telegram, "/status", chat_id=OTHER_CHAT_ID) == []  # an operator, elsewhere
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == [
        f"telegram commands: refused command /status from user {STRANGER_ID} in chat {CHAT_ID}",
        f"telegram commands: refused command /halt from user {STRANGER_ID} in chat {CHAT_ID}",
        f"telegram commands: refused command /status from user {USER_ID} in chat {OTHER_CHAT_ID}",
    ]
    assert telegram.messages == [] and not CommandConfirmation.objects.exists()
    # Every update was handled (the offset moved past them): none comes back.
    assert poll(reader) == []


# --- control: ask first -------------------------------------------------------------------------


def ask_halt(
    reader: Reader, telegram: TelegramServer, text: str = "/halt", now: dt.datetime = NOW
) -> dict[str, Any]:
    before = len(telegram.messages)
    telegram.user_says(text)
    poll(reader, now)
    assert len(telegram.messages) == before + 1
    # The question as Telegram keeps it: with its message id and keyboard.
    return json.loads(json.dumps(telegram.sent[max(key for key in telegram.sent if key[0] == int(CHAT_ID))]))


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (b["text"], b["callback_data"]) for row in message["reply_markup"]["inline_keyboard"] for b in row
    ]


def press(
    reader: Reader,
    telegram: TelegramServer,
    message: dict[str, Any],
    which: int,
    now: dt.datetime,
    user_id: int = USER_ID,
) -> str | None:
    """Press button ``which`` of ``message``; the notice shown on the button (None: no answer)."""
    data = buttons(message)[which][1]
    _, query_id = telegram.user_presses(message["message_id"], data, user_id=user_id)
    poll(reader, now)
    answer = telegram.callback_answers.get(query_id)
    return None if answer is None else answer.get("text", "")


def edited(telegram: TelegramServer, message: dict[str, Any]) -> list[str]:
    return [e["text"] for e in telegram.edits if e["message_id"] == message["message_id"]]


def test_halt_asks_then_the_askers_press_halts_once_and_is_recorded(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    question = ask_halt(reader, telegram)
    assert question["text"].startswith("Halt alpha? It is told to stop trading until Fri 2026-01-16")
    assert [label for label, _ in buttons(question)] == ["Halt alpha", "Cancel"]
    assert not TradingHalt.objects.exists()
    # Another allowed operator's press does nothing: only the asker may confirm.
    assert (
        press(reader, telegram, question, 0, NOW, user_id=OTHER_USER_ID)
        == "Only ann (Telegram 111111111) can answer this."
    )
    assert not TradingHalt.objects.exists()
    assert press(reader, telegram, question, 0, NOW + dt.timedelta(seconds=30)) == "Done."
    halt = TradingHalt.objects.get()
    assert (halt.bot, halt.trading_day, halt.ends_on) == (alpha, THURSDAY, FRIDAY)
    assert (
        halt.halted_by == f"ann (Telegram {USER_ID})" and halt.reason == f"halted by ann (Telegram {USER_ID})"
    )
    assert edited(telegram, question) == ["alpha halted until Fri 2026-01-16 by ann."]
    # The bot hears it through the API it already asks.
    status = api(client_for(alpha), "/api/v1/status/")
    assert status["trading_allowed"] is False
    # A second press of the same button acts no more.
    assert press(reader, telegram, question, 0, NOW + dt.timedelta(seconds=40)) == "Already answered."
    assert TradingHalt.objects.count() == 1
    (action,) = OperatorAction.objects.all()
    assert (action.who, action.action, action.bot, action.outcome) == (
        f"ann (Telegram {USER_ID})",
        "halt",
        alpha,
        "alpha halted until Fri 2026-01-16 by ann.",
    )


@pytest.mark.parametrize(
    ("after", "acts"),
    [(commands.CONFIRM_WITHIN, True), (commands.CONFIRM_WITHIN + dt.timedelta(microseconds=1), False)],
)
def test_a_confirm_acts_within_two_minutes_exactly(
    reader: Reader, telegram: TelegramServer, alpha: Bot, after: dt.timedelta, acts: bool
) -> None:
    question = ask_halt(reader, telegram)
    notice = press(reader, telegram, question, 0, NOW + after)
    assert TradingHalt.objects.exists() is acts
    if acts:
        assert notice == "Done."
    else:
        assert notice == "Too late: nothing was done."
        assert edited(telegram, question) == [
            "Not done: the confirmation expired after 2 min. Send /halt alpha again."
        ]
        assert not OperatorAction.objects.exists()
        # The expired question is answered: a later press does nothing either.
        assert press(reader, telegram, question, 0, NOW + after) == "Already answered."


def test_cancel_changes_nothing(reader: Reader, telegram: TelegramServer, alpha: Bot) -> None:
    question = ask_halt(reader, telegram)
    assert press(reader, telegram, question, 1, NOW) == "Cancelled."
    assert edited(telegram, question) == ["Cancelled: alpha not halted; nothing changed."]
    assert press(reader, telegram, question, 0, NOW) == "Already answered."
    assert not TradingHalt.objects.exists() and not OperatorAction.objects.exists()


def test_a_stranger_pressing_a_confirm_gets_nothing_and_changes_nothing(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    question = ask_halt(reader, telegram)
    assert press(reader, telegram, question, 0, NOW, user_id=STRANGER_ID) is None
    assert not TradingHalt.objects.exists() and CommandConfirmation.objects.get().answered_at is None


def test_a_forged_or_stale_button_does_nothing(reader: Reader, telegram: TelegramServer, alpha: Bot) -> None:
    question = ask_halt(reader, telegram)
    forged = {
        **question,
        "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "ok:not-a-nonce"}]]},
    }
    assert press(reader, telegram, forged, 0, NOW) == "This button is no longer valid."
    assert not TradingHalt.objects.exists()


def test_halt_and_resume_name_the_bot_when_there_are_several(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    Bot.objects.create(name="beta")
    assert one_reply(reader, telegram, "/halt") == "Which bot? /halt alpha or /halt beta"
    assert one_reply(reader, telegram, "/halt gamma") == "No bot named gamma. Bots: alpha, beta."
    question = ask_halt(reader, telegram, "/halt BETA")
    assert question["text"].startswith("Halt beta?")


def test_resume_asks_then_resumes_and_says_the_rule_stays_quiet(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    assert one_reply(reader, telegram, "/resume") == "alpha is not halted."
    TradingHalt.objects.halt(alpha, THURSDAY, "max daily loss: -1,200.00", NOW)
    assert one_reply(reader, telegram, "/halt").startswith("alpha is already halted until Fri 2026-01-16")
    question = ask_halt(reader, telegram, "/resume")
    assert question["text"].startswith("Resume alpha? It is halted until Fri 2026-01-16: max daily loss")
    assert press(reader, telegram, question, 0, NOW) == "Done."
    halt = TradingHalt.objects.get()
    assert halt.resumed_by == f"ann (Telegram {USER_ID})" and halt.resumed_at == NOW
    assert edited(telegram, question) == [
        "alpha resumed by ann. max daily loss will not halt alpha again until Fri 2026-01-16"
        " (the next trading day)."
    ]
    # Halted again by the operator the same day: the day's one halt stands again, as theirs.
    question = ask_halt(reader, telegram, "/halt")
    assert press(reader, telegram, question, 0, NOW + dt.timedelta(seconds=5)) == "Done."
    halt.refresh_from_db()
    assert halt.resumed_at is None and halt.halted_by == f"ann (Telegram {USER_ID})"
    assert [a.action for a in OperatorAction.objects.order_by("at")] == ["resume", "halt"]


def test_a_confirm_pressed_after_the_halt_was_resumed_elsewhere_says_so(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    TradingHalt.objects.halt(alpha, THURSDAY, "max daily loss: -1,200.00", NOW)
    question = ask_halt(reader, telegram, "/resume")
    TradingHalt.objects.all().resume(by="admin", now=NOW)  # someone in the admin was quicker
    assert press(reader, telegram, question, 0, NOW) == "alpha was not halted any more; nothing changed."
    assert TradingHalt.objects.get().resumed_by == "admin"


# --- /mute ----------------------------------------------------------------------------------------


@pytest.fixture
def rule(db: Any) -> AlertRule:
    return AlertRule.objects.get_or_create(
        name="max-daily-loss", defaults={"kind": "max_daily_loss", "threshold": -1000}
    )[0]


@pytest.mark.parametrize(
    ("minutes", "accepted"),
    [
        ("1", True),
        (str(commands.MUTE_MAX_MINUTES), True),
        (str(commands.MUTE_MAX_MINUTES + 1), False),
        ("0", False),
        ("", False),
        ("1.5", False),
    ],
)
def test_mute_adds_a_silence_for_the_minutes_asked_within_bounds(
    reader: Reader, telegram: TelegramServer, rule: AlertRule, minutes: str, accepted: bool
) -> None:
    text = one_reply(reader, telegram, f"/mute {rule.name} {minutes}".strip())
    if not accepted:
        assert text.startswith("Usage: /mute RULE MINUTES") and not Silence.objects.exists()
        return
    silence = Silence.objects.get()
    assert silence.rule == rule and silence.until == NOW + dt.timedelta(minutes=int(minutes))
    assert silence.in_force(NOW) and not silence.in_force(silence.until)
    assert text.startswith(f"Muted {rule.name} until ")
    action = OperatorAction.objects.get()
    assert (action.action, action.rule, action.who) == ("mute", rule, f"ann (Telegram {USER_ID})")


def test_mute_of_an_unknown_rule_lists_the_rules(
    reader: Reader, telegram: TelegramServer, rule: AlertRule
) -> None:
    assert one_reply(reader, telegram, "/mute nosuchrule 5").startswith("No rule named nosuchrule. Rules: ")
    assert rule.name in one_reply(reader, telegram, "/mute nosuchrule 5")
    assert not Silence.objects.exists()


# --- the reader's offset ----------------------------------------------------------------------------


def test_an_update_is_handled_once_even_when_telegram_hands_it_over_again(
    reader: Reader, telegram: TelegramServer, alpha: Bot
) -> None:
    telegram.user_says("/help")
    (update,) = reader.api.call("getUpdates", {"timeout": 0})
    reader.claim(NOW)
    assert reader.handle(update, NOW) is True
    # The process died before its next getUpdates confirmed the update: Telegram sends it again,
    # to this reader or to the one that took over.
    successor = Reader(reader.config, holder="successor")
    CommandReader.objects.update(lease_until=NOW - dt.timedelta(seconds=1))
    assert successor.claim(NOW) is not None
    assert successor.handle(update, NOW) is False and reader.handle(update, NOW) is False
    assert len(telegram.messages) == 1
    assert CommandReader.objects.get().next_update_id == update["update_id"] + 1


def test_a_command_that_fails_answers_so_and_is_not_tried_again(
    reader: Reader, telegram: TelegramServer, alpha: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    with mock.patch.dict(commands.COMMANDS, {"status": commands.Command("status", "x", lambda *a: 1 / 0)}):
        assert (
            one_reply(reader, telegram, "/status")
            == "/status failed (ZeroDivisionError); the site's log has more."
        )
    assert poll(reader) == []
    assert "Traceback" in caplog.text


def test_only_the_lease_holder_handles_updates(reader: Reader, telegram: TelegramServer) -> None:
    assert reader.claim(NOW) is not None
    other = Reader(reader.config, holder="other")
    assert other.claim(NOW) is None
    # Until the lease runs out: then the other takes it, and the first can no longer handle.
    row = CommandReader.objects.get()
    assert other.claim(row.lease_until - dt.timedelta(microseconds=1)) is None
    assert other.claim(row.lease_until) is not None  # a lease runs until, not through, its end
    telegram.user_says("/help")
    (update,) = reader.api.call("getUpdates", {"timeout": 0})
    assert reader.handle(update, NOW) is False and telegram.messages == []


# --- the text --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [commands.TEXT_LIMIT, commands.TEXT_LIMIT + 1])
def test_a_reply_is_cut_to_telegrams_limit_only_past_it(size: int) -> None:
    lines = ["x" * 99] * (size // 100) + ["y" * (size % 100 - 1 if size % 100 else 99)]
    text = "\n".join(lines)
    text = text + "z" * (size - len(text))
    assert len(text) == size
    fitted = commands.fit(text)
    if size <= commands.TEXT_LIMIT:
        assert fitted == text
    else:
        assert len(fitted) <= commands.TEXT_LIMIT and fitted.endswith("(cut: open the cockpit for the rest)")


def test_the_limit_counts_utf16_units_as_telegram_does() -> None:
    text = "💥" * (commands.TEXT_LIMIT // 2)  # each two UTF-16 units: exactly at the limit
    assert commands.fit(text) == text
    assert commands.fit(text + "💥") != text + "💥"


@pytest.mark.parametrize(
    ("value", "users"),
    [("111111111", (111111111,)), (" 111111111, 222222222 ,111111111", (111111111, 222222222)), ("1", (1,))],
)
def test_command_users_are_telegram_user_ids(value: str, users: tuple[int, ...]) -> None:
    assert command_users(value) == users


@pytest.mark.parametrize("value", ["", " , ", "0", "-5", "ann", "111;222", "1" * 17])
def test_anything_else_is_refused_where_it_is_typed(value: str) -> None:
    with pytest.raises(ValueError):
        command_users(value)


def test_a_confirmation_is_claimed_once_and_by_its_asker_alone(alpha: Bot) -> None:
    asked = CommandConfirmation.objects.create(
        nonce="n1", user_id=USER_ID, who="ann", action="halt", bot=alpha, asked_at=NOW
    )
    claim = CommandConfirmation.objects.claim
    assert claim(asked.nonce, OTHER_USER_ID, NOW, commands.CONFIRM_WITHIN) == 0
    assert claim(asked.nonce, USER_ID, NOW, commands.CONFIRM_WITHIN) == 1
    # A second reader pressing the same button at the same moment finds it taken.
    assert claim(asked.nonce, USER_ID, NOW, commands.CONFIRM_WITHIN) == 0


def test_the_admin_lists_what_operators_did_and_lets_no_one_change_it(
    reader: Reader, telegram: TelegramServer, alpha: Bot, rule: AlertRule, admin_client: Any
) -> None:
    question = ask_halt(reader, telegram)
    press(reader, telegram, question, 0, NOW)
    one_reply(reader, telegram, f"/mute {rule.name} 30")
    page = admin_client.get("/admin/alerts/operatoraction/").content.decode()
    assert page.count(f"ann (Telegram {USER_ID})") == 2
    assert "alpha halted until Fri 2026-01-16 by ann." in page and f"muted {rule.name} until" in page
    action = OperatorAction.objects.first()
    assert admin_client.get("/admin/alerts/operatoraction/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/alerts/operatoraction/{action.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert OperatorAction.objects.count() == 2
    # The halt names who halted it, beside the others.
    halts = admin_client.get(
        f"/admin/alerts/tradinghalt/{TradingHalt.objects.get().pk}/change/"
    ).content.decode()
    assert f"ann (Telegram {USER_ID})" in halts


@pytest.mark.parametrize(("quiet", "handled"), [(FRESH_NUMBERING - SECOND, False), (FRESH_NUMBERING, True)])
def test_after_a_quiet_week_an_update_numbered_afresh_is_still_handled(
    reader: Reader, telegram: TelegramServer, quiet: dt.timedelta, handled: bool
) -> None:
    """Telegram may number the next update at random after a week without any: lower than the
    stored offset, which would confirm (drop) it unseen."""
    reader.claim(NOW)
    CommandReader.objects.update(next_update_id=FIRST_UPDATE_ID + 10_000, last_update_at=NOW - quiet)
    telegram.user_says("/help")
    assert len(poll(reader)) == (1 if handled else 0)
    assert len(telegram.messages) == (1 if handled else 0)
