"""A loopback stand-in for Telegram's Bot API, as documented (https://core.telegram.org/bots/api).

Every method: ``POST /bot<token>/<method>`` with a JSON (or form) body, or ``GET`` with a query
string (JSON-serialized values such as ``allowed_updates`` or ``reply_markup`` read as JSON).
Answers ``{"ok": true, "result": ...}`` (200) or ``{"ok": false, "error_code": N, "description":
..., ["parameters": {...}]}`` with the same HTTP status.

- A well-formed but wrong token: 401 ``Unauthorized``; a malformed one or an unknown method:
  404 ``Not Found``. A body that is not JSON: 400 ``Bad Request: invalid JSON``.
- ``getMe``: the bot (its id is the token's digits, username ``monitor_test_bot``).
- ``sendMessage`` with ``chat_id`` and ``text``: the message as Telegram returns it. A chat is
  known when it is ``CHAT_ID`` or a user has written from it (``user_says``); else 400
  ``Bad Request: chat not found``. Text empty: 400 ``Bad Request: message text is empty``;
  over 4096 UTF-16 units: 400 ``Bad Request: message is too long``. A ``parse_mode`` is refused
  (400 ``can't parse entities``): the site sends plain text, so markup in an alert can never break a
  message. ``reply_markup`` ``{"inline_keyboard": [[{"text", "callback_data"}]]}``: a button with
  empty text or ``callback_data`` not 1-64 bytes: 400 ``Bad Request: BUTTON_DATA_INVALID``.
  Message ids count per chat, the users' messages included.
- ``editMessageText`` / ``editMessageReplyMarkup`` (``chat_id``, ``message_id``): 400 ``Bad Request:
  message to edit not found`` for an id the bot did not send in that chat; 400 ``Bad Request:
  message is not modified: ...`` when text and keyboard are unchanged; the text limits of
  ``sendMessage``. An edit without ``reply_markup`` removes the keyboard.
- ``getUpdates`` (``offset``, ``limit`` 1-100 default 100, ``timeout`` seconds, ``allowed_updates``):
  an offset confirms (forgets) every update below it, a negative one keeps only the last
  ``-offset``; answers the pending updates from the offset on, oldest first, at most ``limit``;
  with none, waits up to ``timeout`` and wakes the moment one arrives. A second call while one
  waits ends the waiting one, the earlier, with 409 ``Conflict: terminated by other getUpdates
  request; make sure that only one bot instance is running``; the newer one carries on.
  While a webhook is set: 409 ``Conflict: can't use getUpdates method while webhook is active;
  use deleteWebhook to delete the webhook first``. ``allowed_updates`` is kept until the next call
  that names it (``[]``: all kinds); as at Telegram, updates of other kinds made after it are not
  queued at all, those already queued are still handed out.
- ``setWebhook`` (``url``; HTTPS only, ``""`` removes it; ``drop_pending_updates``), ``deleteWebhook``
  (``drop_pending_updates``), ``getWebhookInfo``. A test may set ``webhook_url`` directly.
- ``setMyCommands`` (``commands``; ``scope``, ``language_code`` ignored): a command not 1-32 of
  ``a-z0-9_``: 400 ``Bad Request: BOT_COMMAND_INVALID``; a description not 1-256 characters: 400
  ``Bad Request: BOT_COMMAND_DESCRIPTION_INVALID``; over 100: 400 ``Bad Request:
  BOT_COMMANDS_TOO_MUCH``. ``getMyCommands`` returns the last list set.
- ``answerCallbackQuery`` (``callback_query_id``, ``text`` up to 200 characters, ``show_alert``):
  an unknown id or one already answered: 400 ``Bad Request: query is too old and response
  timeout expired or query ID is invalid``; a longer text: 400 ``Bad Request: MESSAGE_TOO_LONG``.
- On demand (``then``, for any method or aimed with ``method=``): 429 ``{"parameters":
  {"retry_after": N}}`` (whole seconds, no ``Retry-After`` header, so the client must read the
  body), a 429 with the wait in its ``Retry-After`` header alone (``429-header``), 403 ``Forbidden:
  bot was blocked by the user``, a supergroup migration, a 5xx, a hang, a dropped connection
  (``drop``), a 502 that echoes the request's path (``echo``).

The tests play the users with ``user_says`` and ``user_presses``; what the bot did is in
``messages`` (sendMessage payloads), ``sent`` (the bot's messages as they stand now), ``edits``,
``callback_answers``, ``my_commands``, ``handed_out``, ``conflicts`` and ``max_in_flight``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.loopback_http import Answer, LoopbackServer, Request

TOKEN = "123456789:AAH-sEcReT-kEy_abcdefghijklmnopqrstu"
CHAT_ID = "-1001234567890"
OTHER_CHAT_ID = "-1009999999999"
USER_ID = 111111111  # an allowed operator
OTHER_USER_ID = 222222222
STRANGER_ID = 333333333
BOT_USERNAME = "monitor_test_bot"
BOT = {"id": int(TOKEN.split(":")[0]), "is_bot": True, "first_name": "Monitor", "username": BOT_USERNAME}
FIRST_UPDATE_ID = 700000001

TERMINATED = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
COMMAND = re.compile(r"[a-z0-9_]{1,32}")
NAMES = {USER_ID: "Ann", OTHER_USER_ID: "Bob", STRANGER_ID: "Eve"}


class BadRequest(Exception):
    def __init__(self, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.status = status


def failure(status: int, description: str, **parameters: Any) -> Answer:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Answer(status, json.dumps(body).encode())


def success(result: Any, description: str | None = None) -> Answer:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return Answer(200, json.dumps(body).encode())


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _number(payload: dict[str, Any], name: str, default: int) -> int:
    value = payload.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Bad Request: invalid {name} specified") from None


def _text_limits(text: Any) -> str:
    if not isinstance(text, str) or not text:
        raise BadRequest("Bad Request: message text is empty")
    if len(text.encode("utf-16-le")) // 2 > 4096:
        raise BadRequest("Bad Request: message is too long")
    return text


def _keyboard(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise BadRequest(
            'Bad Request: can\'t parse inline keyboard button: field "inline_keyboard" must be an Array'
        )
    for row in rows:
        for button in row:
            data = button.get("callback_data") if isinstance(button, dict) else None
            if (
                not isinstance(button, dict)
                or not isinstance(button.get("text"), str)
                or not button["text"]
                or not isinstance(data, str)
                or not 1 <= len(data.encode()) <= 64
            ):
                raise BadRequest("Bad Request: BUTTON_DATA_INVALID")
    return {"inline_keyboard": rows}


class TelegramServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition(self._lock)
        self.messages: list[dict[str, Any]] = []  # each accepted sendMessage payload
        self.received_at: list[float] = []  # time.monotonic() of each accepted message
        # (chat id, message id) -> the bot's message as it stands now
        self.sent: dict[tuple[int, int], dict[str, Any]] = {}
        self.edits: list[dict[str, Any]] = []  # each accepted edit* payload, with "method"
        # callback_query_id -> its answerCallbackQuery payload
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.my_commands: list[dict[str, str]] = []
        self.webhook_url = ""
        # (offset asked, update ids answered) for each getUpdates answered 200
        self.handed_out: list[tuple[int, list[int]]] = []
        self.conflicts = 0  # 409s given to getUpdates
        self.in_flight = 0  # getUpdates calls being answered now
        self.max_in_flight = 0
        self.allowed_updates: list[str] = []  # [] = every kind
        self._updates: list[dict[str, Any]] = []  # not yet confirmed, oldest first
        self._next_update_id = FIRST_UPDATE_ID
        self._next_message_id: dict[int, int] = {}
        self._known_chats = {int(CHAT_ID)}
        self._queries: dict[str, int] = {}  # callback_query_id -> its update id, until answered
        self._poller = 0  # the ticket of the getUpdates call allowed to go on waiting

    @property
    def api_url(self) -> str:
        return self.base

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]

    def stop(self) -> None:
        with self._changed:
            self._release.set()
            self._changed.notify_all()
        super().stop()

    # --- the users, played by the tests ---
    def user_says(
        self, text: str, *, user_id: int = USER_ID, chat_id: int | str = CHAT_ID, username: str = "ann"
    ) -> int:
        """A user writes ``text`` in the chat; returns the update's id (``update_id``)."""
        chat = int(chat_id)
        with self._changed:
            message: dict[str, Any] = {
                "message_id": self._message_id(chat),
                "from": self._user(user_id, username),
                "chat": self._chat(chat),
                "date": int(time.time()),
                "text": text,
            }
            command = re.match(r"/\S+", text)
            if command:
                message["entities"] = [{"offset": 0, "length": len(command.group()), "type": "bot_command"}]
            self._known_chats.add(chat)
            return self._add_update("message", message)

    def user_presses(
        self, message_id: int, data: str, *, user_id: int = USER_ID, chat_id: int | str = CHAT_ID
    ) -> tuple[int, str]:
        """A user presses a button of the bot's message; returns (update id, callback query id)."""
        chat = int(chat_id)
        with self._changed:
            message = self.sent[(chat, message_id)]  # KeyError: the bot sent no such message
            query_id = f"{4382000000000000000 + self._next_update_id}"
            query = {
                "id": query_id,
                "from": self._user(user_id, NAMES.get(user_id, "user").lower()),
                "message": json.loads(json.dumps(message)),
                "chat_instance": f"-{abs(chat) % 10**12 + 5550000000000000000}",
                "data": data,
            }
            update_id = self._add_update("callback_query", query)
            self._queries[query_id] = update_id
            return update_id, query_id

    def pending_update_ids(self) -> list[int]:
        """The updates queued and not yet confirmed by an offset."""
        with self._lock:
            return [u["update_id"] for u in self._updates]

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Wait (woken by each change, not by sleeps) until ``predicate()`` is true; False at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    def _user(self, user_id: int, username: str) -> dict[str, Any]:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": NAMES.get(user_id, "User"),
            "username": username,
        }

    def _chat(self, chat: int) -> dict[str, Any]:
        """A group (negative id) or a user's private chat with the bot (the user's id)."""
        if chat < 0:
            return {
                "id": chat,
                "type": "supergroup",
                "title": "Trading desk" if chat == int(CHAT_ID) else "Elsewhere",
            }
        return {"id": chat, "type": "private", "first_name": NAMES.get(chat, "User")}

    def _message_id(self, chat: int) -> int:
        number = self._next_message_id.get(chat, 0) + 1
        self._next_message_id[chat] = number
        return number

    def _add_update(self, kind: str, body: dict[str, Any]) -> int:  # holding the lock
        update_id = self._next_update_id
        self._next_update_id += 1
        if not self.allowed_updates or kind in self.allowed_updates:
            self._updates.append({"update_id": update_id, kind: body})
        self._changed.notify_all()
        return update_id

    # --- the Bot API ---
    def method_of(self, request: Request) -> str | None:
        match = re.fullmatch(r"/bot[^/]+/(\w+)", urlsplit(request.path).path)
        return match.group(1) if match else None

    def planned(self, action: str, value: Any, request: Request) -> Answer:
        if action == "429":
            return failure(429, f"Too Many Requests: retry after {value}", retry_after=value)
        if action == "429-header":
            answer = failure(429, "Too Many Requests")
            answer.headers = {"Retry-After": str(value)}
            return answer
        if action == "echo":  # a careless proxy's error page: the request line, token included
            return failure(502, f"Bad Gateway: POST {request.path} failed")
        if action == "migrate":
            return failure(
                400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=value
            )
        descriptions = {401: "Unauthorized", 403: "Forbidden: bot was blocked by the user"}
        return failure(value, descriptions.get(value, "Internal Server Error"))

    def answer(self, request: Request) -> Answer:
        parts = urlsplit(request.path)
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", parts.path)
        if not match or not re.fullmatch(r"\d+:[\w-]+", match.group(1)):
            return failure(404, "Not Found")
        if match.group(1) != TOKEN:
            return failure(401, "Unauthorized")
        handler = getattr(self, f"_{match.group(2)}", None)
        if handler is None:
            return failure(404, "Not Found")
        try:
            return handler(self._payload(request, parts.query), request)
        except BadRequest as error:
            return failure(error.status, str(error))

    def _payload(self, request: Request, query: str) -> dict[str, Any]:
        kind = request.headers.get("Content-Type", request.headers.get("content-type", ""))
        if request.body and "application/x-www-form-urlencoded" not in kind:
            try:
                payload = json.loads(request.body)
            except ValueError:
                raise BadRequest("Bad Request: invalid JSON") from None
            if not isinstance(payload, dict):
                raise BadRequest("Bad Request: invalid JSON")
            return payload
        pairs = parse_qsl(request.body.decode() if request.body else query, keep_blank_values=True)
        payload = {}
        for name, value in pairs:
            if value[:1] in ("[", "{"):
                try:
                    payload[name] = json.loads(value)
                    continue
                except ValueError:
                    pass
            payload[name] = value
        return payload

    def _getMe(self, payload: dict[str, Any], request: Request) -> Answer:
        return success(BOT)

    def _chat_id(self, payload: dict[str, Any]) -> int:
        try:
            chat = int(str(payload.get("chat_id")))
        except (TypeError, ValueError):
            raise BadRequest("Bad Request: chat not found") from None
        if chat not in self._known_chats:
            raise BadRequest("Bad Request: chat not found")
        return chat

    def _sendMessage(self, payload: dict[str, Any], request: Request) -> Answer:
        chat = self._chat_id(payload)
        if "parse_mode" in payload:
            raise BadRequest("Bad Request: can't parse entities")
        text = _text_limits(payload.get("text") or "")
        markup = _keyboard(payload.get("reply_markup"))
        with self._changed:
            message: dict[str, Any] = {
                "message_id": self._message_id(chat),
                "from": BOT,
                "chat": self._chat(chat),
                "date": int(time.time()),
                "text": text,
            }
            if markup:
                message["reply_markup"] = markup
            self.messages.append(payload)
            self.received_at.append(request.at)
            self.sent[(chat, message["message_id"])] = message
            self._changed.notify_all()
        return success(message)

    def _edit(self, payload: dict[str, Any], request: Request, text: str | None) -> Answer:
        chat = int(payload["chat_id"]) if str(payload.get("chat_id", "")).lstrip("-").isdigit() else None
        message_id = _number(payload, "message_id", 0)
        markup = _keyboard(payload.get("reply_markup"))
        with self._changed:
            message = self.sent.get((chat, message_id)) if chat is not None else None
            if message is None:
                raise BadRequest("Bad Request: message to edit not found")
            new_text = message["text"] if text is None else text
            if new_text == message["text"] and markup == message.get("reply_markup"):
                raise BadRequest(NOT_MODIFIED)
            message["text"] = new_text
            message["edit_date"] = int(time.time())
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            self.edits.append({"method": self.method_of(request), **payload})
            self._changed.notify_all()
            return success(json.loads(json.dumps(message)))

    def _editMessageText(self, payload: dict[str, Any], request: Request) -> Answer:
        if "parse_mode" in payload:
            raise BadRequest("Bad Request: can't parse entities")
        return self._edit(payload, request, _text_limits(payload.get("text") or ""))

    def _editMessageReplyMarkup(self, payload: dict[str, Any], request: Request) -> Answer:
        return self._edit(payload, request, None)

    def _answerCallbackQuery(self, payload: dict[str, Any], request: Request) -> Answer:
        query_id = str(payload.get("callback_query_id") or "")
        text = payload.get("text") or ""
        with self._changed:
            if query_id not in self._queries:
                raise BadRequest(QUERY_INVALID)
            if len(str(text)) > 200:
                raise BadRequest("Bad Request: MESSAGE_TOO_LONG")
            del self._queries[query_id]
            self.callback_answers[query_id] = payload
            self._changed.notify_all()
        return success(True)

    def _setMyCommands(self, payload: dict[str, Any], request: Request) -> Answer:
        commands = payload.get("commands", [])
        if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
            raise BadRequest("Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            raise BadRequest("Bad Request: BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command.get("command"), str) or not COMMAND.fullmatch(command["command"]):
                raise BadRequest("Bad Request: BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise BadRequest("Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._changed:
            self.my_commands = [{"command": c["command"], "description": c["description"]} for c in commands]
            self._changed.notify_all()
        return success(True)

    def _getMyCommands(self, payload: dict[str, Any], request: Request) -> Answer:
        with self._lock:
            return success(list(self.my_commands))

    def _setWebhook(self, payload: dict[str, Any], request: Request) -> Answer:
        url = str(payload.get("url") or "")
        if url and not url.startswith("https://"):
            raise BadRequest("Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        with self._changed:
            self.webhook_url = url
            if _flag(payload.get("drop_pending_updates")):
                self._updates.clear()
            self._changed.notify_all()
        return success(True, "Webhook was set" if url else "Webhook was deleted")

    def _deleteWebhook(self, payload: dict[str, Any], request: Request) -> Answer:
        with self._changed:
            had = bool(self.webhook_url)
            self.webhook_url = ""
            if _flag(payload.get("drop_pending_updates")):
                self._updates.clear()
            self._changed.notify_all()
        return success(True, "Webhook was deleted" if had else "Webhook is already deleted")

    def _getWebhookInfo(self, payload: dict[str, Any], request: Request) -> Answer:
        with self._lock:
            info: dict[str, Any] = {
                "url": self.webhook_url,
                "has_custom_certificate": False,
                "pending_update_count": len(self._updates),
            }
            if self.allowed_updates:
                info["allowed_updates"] = list(self.allowed_updates)
        return success(info)

    def _getUpdates(self, payload: dict[str, Any], request: Request) -> Answer:
        offset = _number(payload, "offset", 0)
        limit = min(max(_number(payload, "limit", 100), 1), 100)
        timeout = max(_number(payload, "timeout", 0), 0)
        allowed = payload.get("allowed_updates")
        if isinstance(allowed, str):  # one JSON-serialized list arrived as text
            allowed = json.loads(allowed) if allowed.startswith("[") else [allowed]
        deadline = time.monotonic() + timeout
        with self._changed:
            if self.webhook_url:
                self.conflicts += 1
                self._changed.notify_all()
                return failure(409, WEBHOOK_ACTIVE)
            if isinstance(allowed, list):
                self.allowed_updates = [str(kind) for kind in allowed]
            if offset > 0:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
            self._poller += 1
            ticket = self._poller
            self._changed.notify_all()  # an earlier call still waiting is ended below
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                while True:
                    if ticket != self._poller:
                        self.conflicts += 1
                        return failure(409, TERMINATED)
                    if self.webhook_url:
                        self.conflicts += 1
                        return failure(409, "Conflict: terminated by setWebhook request")
                    ready = self._updates[:limit]
                    left = deadline - time.monotonic()
                    if ready or left <= 0 or self._release.is_set():
                        self.handed_out.append((offset, [u["update_id"] for u in ready]))
                        return success(json.loads(json.dumps(ready)))
                    self._changed.wait(left)
            finally:
                self.in_flight -= 1
                self._changed.notify_all()
