"""The Telegram stand-in answers the Bot API as Telegram documents it, driven with plain ``requests``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.telegram_server import (
    CHAT_ID,
    FIRST_UPDATE_ID,
    OTHER_CHAT_ID,
    OTHER_USER_ID,
    STRANGER_ID,
    TERMINATED,
    TOKEN,
    WEBHOOK_ACTIVE,
    TelegramServer,
)


@pytest.fixture
def tg() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


def call(tg: TelegramServer, method: str, token: str = TOKEN, **payload: Any) -> tuple[int, dict[str, Any]]:
    response = requests.post(f"{tg.api_url}/bot{token}/{method}", json=payload, timeout=10)
    body = response.json()
    assert body["ok"] == (response.status_code == 200)
    if not body["ok"]:
        assert body["error_code"] == response.status_code
    return response.status_code, body


def in_background(tg: TelegramServer, method: str, **payload: Any) -> dict[str, Any]:
    """Start a call on a thread; its (status, body) lands in the returned dict under "answer"."""
    out: dict[str, Any] = {}

    def run() -> None:
        out["answer"] = call(tg, method, **payload)
        out["at"] = time.monotonic()

    out["thread"] = threading.Thread(target=run, daemon=True)
    out["thread"].start()
    return out


def test_every_method_checks_the_token_and_get_me_names_the_bot(tg: TelegramServer) -> None:
    assert call(tg, "getMe", token="123456789:wrong")[0] == 401
    assert call(tg, "getUpdates", token="not-a-token")[0] == 404
    assert call(tg, "noSuchMethod")[0] == 404
    status, body = call(tg, "getMe")
    assert status == 200 and body["result"]["id"] == 123456789 and body["result"]["is_bot"]
    got = requests.get(f"{tg.api_url}/bot{TOKEN}/getMe", timeout=5).json()
    assert got["result"]["username"] == "monitor_test_bot"


def test_a_long_poll_wakes_the_moment_an_update_arrives(tg: TelegramServer) -> None:
    poll = in_background(tg, "getUpdates", timeout=20)
    assert tg.wait_for(lambda: tg.in_flight == 1)
    said = time.monotonic()
    update_id = tg.user_says("/status@monitor_test_bot now", user_id=STRANGER_ID)
    poll["thread"].join(5)
    status, body = poll["answer"]
    assert status == 200 and poll["at"] - said < 1.0  # not the 20 s timeout
    (update,) = body["result"]
    assert update["update_id"] == update_id
    message = update["message"]
    assert message["from"]["id"] == STRANGER_ID and message["chat"] == {
        "id": int(CHAT_ID),
        "type": "supergroup",
        "title": "Trading desk",
    }
    assert message["entities"] == [
        {"offset": 0, "length": len("/status@monitor_test_bot"), "type": "bot_command"}
    ]


def test_an_empty_poll_answers_nothing_once_its_timeout_ends(tg: TelegramServer) -> None:
    started = time.monotonic()
    assert call(tg, "getUpdates", timeout=1)[1]["result"] == []
    assert time.monotonic() - started >= 1.0


def test_an_offset_confirms_every_update_below_it_and_limit_caps_an_answer(tg: TelegramServer) -> None:
    first, second, third = (tg.user_says(text) for text in ("a", "b", "c"))
    assert first == FIRST_UPDATE_ID
    assert [u["update_id"] for u in call(tg, "getUpdates", limit=2)[1]["result"]] == [first, second]
    assert tg.pending_update_ids() == [first, second, third]  # handed out is not confirmed
    got = requests.get(f"{tg.api_url}/bot{TOKEN}/getUpdates", params={"offset": second}, timeout=5).json()
    assert [u["update_id"] for u in got["result"]] == [second, third]
    assert tg.pending_update_ids() == [second, third]
    assert call(tg, "getUpdates", offset=third + 1)[1]["result"] == []
    assert tg.pending_update_ids() == []
    assert tg.handed_out == [(0, [first, second]), (second, [second, third]), (third + 1, [])]


def test_a_second_poller_ends_the_one_waiting_with_a_conflict(tg: TelegramServer) -> None:
    earlier = in_background(tg, "getUpdates", timeout=20)
    assert tg.wait_for(lambda: tg.in_flight == 1)
    later = in_background(tg, "getUpdates", timeout=20)
    earlier["thread"].join(5)
    assert earlier["answer"] == (409, {"ok": False, "error_code": 409, "description": TERMINATED})
    update_id = tg.user_says("hello")
    later["thread"].join(5)
    assert [u["update_id"] for u in later["answer"][1]["result"]] == [update_id]
    assert tg.conflicts == 1 and tg.max_in_flight == 2


def test_get_updates_is_refused_while_a_webhook_is_set(tg: TelegramServer) -> None:
    assert call(tg, "setWebhook", url="http://insecure.example/hook")[0] == 400
    assert call(tg, "setWebhook", url="https://site.example/hook")[0] == 200
    tg.user_says("pending")
    assert call(tg, "getUpdates") == (409, {"ok": False, "error_code": 409, "description": WEBHOOK_ACTIVE})
    info = call(tg, "getWebhookInfo")[1]["result"]
    assert info["url"] == "https://site.example/hook" and info["pending_update_count"] == 1
    assert call(tg, "deleteWebhook", drop_pending_updates=True)[0] == 200
    assert call(tg, "getUpdates")[1]["result"] == [] and tg.conflicts == 1


def test_allowed_updates_keeps_other_kinds_from_being_queued(tg: TelegramServer) -> None:
    message_id = call(tg, "sendMessage", chat_id=CHAT_ID, text="pick")[1]["result"]["message_id"]
    call(tg, "getUpdates", allowed_updates=["callback_query"])
    tg.user_says("ignored")
    update_id, _ = tg.user_presses(message_id, "ack:1")
    assert [u["update_id"] for u in call(tg, "getUpdates")[1]["result"]] == [update_id]


def test_set_my_commands_checks_each_command_as_documented(tg: TelegramServer) -> None:
    def refusal(commands: list[dict[str, str]]) -> str | None:
        status, body = call(tg, "setMyCommands", commands=commands)
        return None if status == 200 else body["description"]

    assert refusal([{"command": "a" * 32, "description": "d" * 256}]) is None
    assert tg.my_commands == [{"command": "a" * 32, "description": "d" * 256}]
    assert refusal([{"command": "a" * 33, "description": "d"}]) == "Bad Request: BOT_COMMAND_INVALID"
    assert refusal([{"command": "Status", "description": "d"}]) == "Bad Request: BOT_COMMAND_INVALID"
    assert refusal([{"command": "", "description": "d"}]) == "Bad Request: BOT_COMMAND_INVALID"
    invalid_description = "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID"
    assert refusal([{"command": "ok", "description": "d" * 257}]) == invalid_description
    assert refusal([{"command": "ok", "description": ""}]) == invalid_description
    hundred = [{"command": f"c{n}", "description": "d"} for n in range(100)]
    assert refusal(hundred) is None
    assert (
        refusal([*hundred, {"command": "more", "description": "d"}]) == "Bad Request: BOT_COMMANDS_TOO_MUCH"
    )
    assert call(tg, "getMyCommands")[1]["result"] == hundred


def test_buttons_carry_1_to_64_bytes_of_callback_data(tg: TelegramServer) -> None:
    def keyboard(data: str, text: str = "OK") -> dict[str, Any]:
        return {"inline_keyboard": [[{"text": text, "callback_data": data}]]}

    assert call(tg, "sendMessage", chat_id=CHAT_ID, text="x", reply_markup=keyboard("é" * 32))[0] == 200
    for bad in (keyboard("é" * 32 + "x"), keyboard(""), keyboard("a", text="")):
        status, body = call(tg, "sendMessage", chat_id=CHAT_ID, text="x", reply_markup=bad)
        assert (status, body["description"]) == (400, "Bad Request: BUTTON_DATA_INVALID")
    assert call(tg, "sendMessage", chat_id=OTHER_CHAT_ID, text="x")[0] == 400  # no one wrote from there
    tg.user_says("hi", chat_id=OTHER_CHAT_ID)
    assert call(tg, "sendMessage", chat_id=OTHER_CHAT_ID, text="x")[0] == 200
    assert tg.texts() == ["x", "x"]


def test_a_callback_query_is_answered_once(tg: TelegramServer) -> None:
    markup = {"inline_keyboard": [[{"text": "Ack", "callback_data": "ack:7"}]]}
    message_id = call(tg, "sendMessage", chat_id=CHAT_ID, text="alert", reply_markup=markup)[1]["result"][
        "message_id"
    ]
    _, query_id = tg.user_presses(message_id, "ack:7")
    update = call(tg, "getUpdates")[1]["result"][0]["callback_query"]
    assert (
        update["id"] == query_id and update["data"] == "ack:7" and update["message"]["reply_markup"] == markup
    )
    assert call(tg, "answerCallbackQuery", callback_query_id=query_id, text="t" * 201)[0] == 400
    assert call(tg, "answerCallbackQuery", callback_query_id=query_id, text="t" * 200)[0] == 200
    status, body = call(tg, "answerCallbackQuery", callback_query_id=query_id)
    assert status == 400 and body["description"].startswith("Bad Request: query is too old")
    assert call(tg, "answerCallbackQuery", callback_query_id="12345")[0] == 400
    assert tg.callback_answers == {query_id: {"callback_query_id": query_id, "text": "t" * 200}}


def test_an_edit_must_change_something_of_a_message_the_bot_sent_there(tg: TelegramServer) -> None:
    markup = {"inline_keyboard": [[{"text": "Ack", "callback_data": "ack:7"}]]}
    message_id = call(tg, "sendMessage", chat_id=CHAT_ID, text="alert", reply_markup=markup)[1]["result"][
        "message_id"
    ]
    same = call(
        tg, "editMessageText", chat_id=CHAT_ID, message_id=message_id, text="alert", reply_markup=markup
    )
    assert same[0] == 400 and same[1]["description"].startswith("Bad Request: message is not modified: ")
    for chat, number in ((CHAT_ID, message_id + 1), (OTHER_CHAT_ID, message_id)):
        missing = call(tg, "editMessageText", chat_id=chat, message_id=number, text="new")
        assert missing[1]["description"] == "Bad Request: message to edit not found"
    assert call(tg, "editMessageText", chat_id=CHAT_ID, message_id=message_id, text="alert (acked)")[0] == 200
    assert tg.sent[(int(CHAT_ID), message_id)]["text"] == "alert (acked)"
    assert "reply_markup" not in tg.sent[(int(CHAT_ID), message_id)]  # no markup: the keyboard goes
    assert call(tg, "editMessageReplyMarkup", chat_id=CHAT_ID, message_id=message_id)[0] == 400
    assert [edit["method"] for edit in tg.edits] == ["editMessageText"]


def test_planned_answers_aimed_at_one_method_and_a_dropped_connection(tg: TelegramServer) -> None:
    tg.then("status", 502, method="getUpdates").then("drop", method="sendMessage")
    assert call(tg, "getMe")[0] == 200
    assert call(tg, "getUpdates")[0] == 502
    with pytest.raises(requests.ConnectionError):
        call(tg, "sendMessage", chat_id=CHAT_ID, text="lost")
    assert call(tg, "sendMessage", chat_id=CHAT_ID, text="kept")[0] == 200 and tg.texts() == ["kept"]


def test_a_user_writing_privately_opens_a_private_chat_the_bot_may_answer(tg: TelegramServer) -> None:
    tg.user_says("/help", user_id=OTHER_USER_ID, chat_id=OTHER_USER_ID, username="bob")
    message = call(tg, "getUpdates")[1]["result"][0]["message"]
    assert message["chat"] == {"id": OTHER_USER_ID, "type": "private", "first_name": "Bob"}
    assert message["from"]["username"] == "bob" and message["message_id"] == 1
    sent = call(tg, "sendMessage", chat_id=OTHER_USER_ID, text="Commands: ...")[1]["result"]
    assert sent["chat"]["id"] == OTHER_USER_ID and sent["message_id"] == 2  # ids count per chat
