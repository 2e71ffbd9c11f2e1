"""The one reader of the Telegram bot's updates for the whole site: long polling under a lease.

It runs as a thread of the task cluster's main process (``qcluster``, which every way of starting
the site runs), and only when ``TELEGRAM_COMMAND_USERS`` names someone. Every cluster on every
machine starts one; only the holder of the ``CommandReader`` lease polls, so Telegram never sees
two ``getUpdates`` at once (it would end one with 409). A holder that dies is replaced when its
lease runs out.

Each update is claimed by moving the stored ``offset`` past it (a conditional UPDATE) before it is
handled, and each command's changes (a halt, a silence, a confirmation, their record) are written
in one transaction; so an update is handled once even when the process is killed or another
reader takes over (a process killed mid-command leaves it unanswered, never done twice). A 409, a
429 or a network failure waits (``retry_after`` when Telegram gives one) and polls again from the
stored offset: no update is lost or repeated.

Only the configured chat (``TELEGRAM_CHAT_ID``) and users are answered; anyone else gets nothing,
and each refused attempt is logged with the user's id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from alerts.models import CommandConfirmation, CommandReader
from monitorsite.telegram import commands
from monitorsite.telegram.botapi import BotApi, BotApiError
from trades.formats import format_duration

logger = logging.getLogger(__name__)

# A long poll's length (getUpdates ``timeout``) and the lease that covers it with room to spare.
POLL_SECONDS = 25
LEASE_SECONDS = 60
# A process without the lease looks again this often.
IDLE_SECONDS = 15
# Waits after failures that give no ``retry_after``: 1 s, 2 s, 5 s … at most a minute.
BACKOFF_SECONDS = (1, 2, 5, 10, 30, 60)
# "If there are no new updates for at least a week, then identifier of the next update will be
# chosen randomly instead of sequentially" (the Bot API's Update): a day's margin.
FRESH_NUMBERING = dt.timedelta(days=6)
# A reply that meets a 429 is tried this many times in all.
REPLY_TRIES = 3


@dataclass(frozen=True)
class Config:
    token: str
    chat_id: str
    api_url: str
    users: frozenset[int]

    @classmethod
    def from_settings(cls) -> Config | None:
        """The commands' settings, or None when they are off (``TELEGRAM_COMMAND_USERS`` unset)."""
        users = getattr(settings, "TELEGRAM_COMMAND_USERS", ())
        if not users:
            return None
        return cls(
            token=settings.TELEGRAM_BOT_TOKEN,
            chat_id=str(settings.TELEGRAM_CHAT_ID),
            api_url=getattr(settings, "TELEGRAM_API_URL", None) or "https://api.telegram.org",
            users=frozenset(users),
        )

    @property
    def token_hash(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()

    def is_our_chat(self, chat: dict[str, Any]) -> bool:
        if self.chat_id.startswith("@"):
            return str(chat.get("username") or "").lower() == self.chat_id[1:].lower()
        return str(chat.get("id")) == self.chat_id


def poll_seconds() -> int:
    return int(getattr(settings, "TELEGRAM_POLL_SECONDS", POLL_SECONDS))


def lease_seconds() -> int:
    return int(getattr(settings, "TELEGRAM_LEASE_SECONDS", LEASE_SECONDS))


def sender_of(user: dict[str, Any]) -> commands.Sender:
    name = (
        user.get("username")
        or " ".join(str(user.get(part) or "") for part in ("first_name", "last_name")).strip()
    )
    return commands.Sender(int(user["id"]), str(name or "someone")[:64])


class Reader:
    def __init__(self, config: Config, *, stop: threading.Event | None = None, holder: str = "") -> None:
        self.config = config
        self.api = BotApi(config.token, config.api_url)
        self.stop = stop or threading.Event()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.username = ""
        self.prepared = False
        self.failures = 0
        self._logged_error = ""

    # --- the lease ----------------------------------------------------------------------------

    def row(self) -> CommandReader:
        try:
            return CommandReader.objects.get_or_create(token_hash=self.config.token_hash)[0]
        except IntegrityError:  # another reader made it a moment ago
            return CommandReader.objects.get(token_hash=self.config.token_hash)

    def claim(self, now: dt.datetime | None = None) -> CommandReader | None:
        """Take or renew the lease: the row when this process may poll, else None."""
        now = now or timezone.now()
        row = self.row()
        taken = CommandReader.objects.filter(pk=row.pk).exclude(lease_until__gt=now, holder__gt="").update(
            holder=self.holder, lease_until=now + dt.timedelta(seconds=lease_seconds())
        ) or CommandReader.objects.filter(pk=row.pk, holder=self.holder).update(
            lease_until=now + dt.timedelta(seconds=lease_seconds())
        )
        if not taken:
            self.prepared = False  # whoever holds it now set Telegram up its way
            return None
        row.refresh_from_db()
        return row

    def release(self) -> None:
        """Let another process take over at once (a process stopping, not one killed)."""
        CommandReader.objects.filter(token_hash=self.config.token_hash, holder=self.holder).update(
            holder="", lease_until=None
        )

    # --- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        """Poll until ``stop`` is set; never raises."""
        logger.info("telegram commands: reading updates for %d user(s)", len(self.config.users))
        while not self.stop.is_set():
            close_old_connections()
            try:
                wait = self.step()
            except Exception as exc:  # the database away or busy, a bug: wait, then go on
                logger.exception("telegram commands: %s", type(exc).__name__)
                self.note_error(f"{type(exc).__name__}")  # logged above, with its traceback
                wait = self.backoff()
            if wait:
                self.stop.wait(wait)
        close_old_connections()

    def step(self) -> float:
        """One round: hold the lease, poll once, handle what came. The seconds to wait after it."""
        row = self.claim()
        if row is None:
            return min(IDLE_SECONDS, lease_seconds() / 2)
        try:
            if not self.prepared:
                self.prepare()
            payload: dict[str, Any] = {
                "timeout": poll_seconds(),
                "allowed_updates": ["message", "callback_query"],
            }
            if offset := self.offset(row, timezone.now()):
                payload["offset"] = offset
            updates = self.api.call("getUpdates", payload, wait=poll_seconds())
        except BotApiError as exc:
            return self.failed(exc)
        CommandReader.objects.filter(pk=row.pk).update(polled_at=timezone.now())
        self.failures, self._logged_error = 0, ""  # the next outage is logged again
        for update in sorted(updates or [], key=lambda u: u.get("update_id", 0)):
            if self.stop.is_set():
                break
            self.handle(update)
        return 0

    def offset(self, row: CommandReader, now: dt.datetime) -> int:
        """The ``offset`` to ask for: past the last update handled. After a quiet week Telegram may
        number the next update at random, lower than that, and an offset above an update confirms
        (drops) it; so once no update has come for ``FRESH_NUMBERING`` (Telegram keeps updates a day,
        so none is pending from before), the stored offset is let go and any id is taken."""
        if row.next_update_id and (row.last_update_at is None or now - row.last_update_at >= FRESH_NUMBERING):
            CommandReader.objects.filter(
                pk=row.pk, holder=self.holder, next_update_id=row.next_update_id
            ).update(next_update_id=0)
            row.next_update_id = 0
        return row.next_update_id

    def prepare(self) -> None:
        """What polling needs first: no webhook (Telegram refuses getUpdates while one is set), our
        username (commands in groups may carry it), and the command menu."""
        self.api.call("deleteWebhook", {"drop_pending_updates": False})
        me = self.api.call("getMe") or {}
        self.username = str(me.get("username") or "")
        menu = [{"command": c.name, "description": c.description} for c in commands.COMMANDS.values()]
        try:
            self.api.call("setMyCommands", {"commands": menu})
        except BotApiError as exc:  # the commands still work without the menu
            logger.warning("telegram commands: the command menu was not registered: %s", exc.message)
        self.prepared = True

    def failed(self, exc: BotApiError) -> float:
        if exc.webhook_set:
            self.prepared = False  # delete the webhook again before the next poll
        if exc.status == 429 and exc.retry_after is not None:
            wait = exc.retry_after
        else:
            wait = self.backoff()
        # Logged once an outage: its method and status (a network failure's words may vary).
        kind = f"{exc.message.partition(':')[0]} {exc.status}"
        self.note_error(f"{exc.message}; trying again in {format_duration(wait)}", log_as=kind)
        return wait

    def backoff(self) -> float:
        wait = BACKOFF_SECONDS[min(self.failures, len(BACKOFF_SECONDS) - 1)]
        self.failures += 1
        return wait

    def note_error(self, message: str, *, log_as: str = "") -> None:
        """Record the error for health; log it unless ``log_as`` (its kind) was the last logged."""
        if log_as and log_as != self._logged_error:
            logger.warning("telegram commands: %s", message)
            self._logged_error = log_as
        try:
            CommandReader.objects.filter(token_hash=self.config.token_hash).update(
                error=message[:300], error_at=timezone.now()
            )
        except Exception:  # the database itself is what failed
            pass

    # --- one update ---------------------------------------------------------------------------

    def handle(self, update: dict[str, Any], now: dt.datetime | None = None) -> bool:
        """Handle ``update`` if no one has: True when this call handled it."""
        now = now or timezone.now()
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            return False
        # Claimed first, in a transaction of its own: a command that reads the whole day's trades
        # holds no write lock meanwhile. A process killed after this line leaves the update
        # unanswered (the operator sends it again), never handled twice.
        claimed = CommandReader.objects.filter(
            token_hash=self.config.token_hash, holder=self.holder, next_update_id__lte=update_id
        ).update(
            next_update_id=update_id + 1,
            last_update_at=now,
            lease_until=now + dt.timedelta(seconds=lease_seconds()),
        )
        if not claimed:
            return False
        for call in self.decide(update, now):
            self.send(call)
        return True

    def decide(self, update: dict[str, Any], now: dt.datetime) -> list[tuple[str, dict[str, Any], Any]]:
        """The calls that answer ``update``, with what it changes written (each command atomic)."""
        if isinstance(message := update.get("message"), dict):
            return self.on_message(message, now)
        if isinstance(press := update.get("callback_query"), dict):
            return self.on_press(press, now)
        return []

    def allowed(self, kind: str, user: Any, chat: Any, what: str) -> bool:
        user_id = user.get("id") if isinstance(user, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if isinstance(user_id, int) and user_id in self.config.users and self.config.is_our_chat(chat or {}):
            return True
        logger.warning(
            "telegram commands: refused %s %s from user %s in chat %s", kind, what[:40], user_id, chat_id
        )
        return False

    def on_message(self, message: dict[str, Any], now: dt.datetime) -> list[tuple[str, dict[str, Any], Any]]:
        text = message.get("text")
        if not isinstance(text, str) or not text.startswith("/"):
            return []  # talk in the group, not a command
        word, _, args = text.strip().partition(" ")
        name, _, addressee = word[1:].partition("@")
        if addressee and self.username and addressee.lower() != self.username.lower():
            return []  # a command for another bot in the same group
        if not self.allowed("command", message.get("from"), message.get("chat"), f"/{name}"):
            return []
        sender = sender_of(message["from"])
        command = commands.COMMANDS.get(name.lower())
        if command is None:
            return [self.message(commands.Reply(f"I don't know /{name[:32]}. /help lists the commands."))]
        try:
            with transaction.atomic():  # a failing command changes nothing, and is not tried again
                reply = command.run(sender, args.strip(), now)
        except Exception as exc:
            logger.exception("telegram commands: /%s failed", command.name)
            reply = commands.Reply(f"/{command.name} failed ({type(exc).__name__}); the site's log has more.")
        if command.name in ("halt", "resume", "mute"):
            logger.info("telegram commands: /%s %s from %s", command.name, args.strip()[:64], sender.who)
        return [self.message(reply)]

    def on_press(self, press: dict[str, Any], now: dt.datetime) -> list[tuple[str, dict[str, Any], Any]]:
        message = press.get("message") if isinstance(press.get("message"), dict) else {}
        if not self.allowed("button press", press.get("from"), message.get("chat"), "confirm"):
            return []
        sender = sender_of(press["from"])
        try:
            with transaction.atomic():
                result = commands.pressed(sender, str(press.get("data") or ""), now)
        except Exception as exc:
            logger.exception("telegram commands: a button press failed")
            result = commands.Press(f"That failed ({type(exc).__name__}); nothing was done.")
        calls: list[tuple[str, dict[str, Any], Any]] = [
            ("answerCallbackQuery", {"callback_query_id": press.get("id"), "text": result.notice[:200]}, None)
        ]
        if result.edit is not None and isinstance(message.get("message_id"), int):
            calls.append(
                (
                    "editMessageText",
                    {
                        "chat_id": self.config.chat_id,
                        "message_id": message["message_id"],
                        "text": commands.fit(result.edit),
                    },
                    None,
                )
            )
        return calls

    def message(self, reply: commands.Reply) -> tuple[str, dict[str, Any], Any]:
        payload: dict[str, Any] = {
            "chat_id": self.config.chat_id,
            "text": commands.fit(reply.text),
            "disable_web_page_preview": True,
        }
        if reply.buttons:
            payload["reply_markup"] = {
                "inline_keyboard": [[{"text": label, "callback_data": data}] for label, data in reply.buttons]
            }
        return ("sendMessage", payload, reply.confirmation)

    def send(self, call: tuple[str, dict[str, Any], Any]) -> None:
        """Make one answering call. A 429 waits as asked, a network failure or a 5xx a moment, a
        few times in all; a refusal (4xx) is logged, and the next update is handled."""
        method, payload, confirmation = call
        for attempt in range(1, REPLY_TRIES + 1):
            try:
                result = self.api.call(method, payload)
            except BotApiError as exc:
                again = exc.status is None or exc.status == 429 or exc.status >= 500
                if again and attempt < REPLY_TRIES and not self.stop.is_set():
                    self.stop.wait(exc.retry_after if exc.retry_after is not None else attempt)
                    continue
                logger.warning("telegram commands: a reply was not sent: %s", exc.message)
                return
            if isinstance(confirmation, CommandConfirmation) and isinstance(result, dict):
                CommandConfirmation.objects.filter(pk=confirmation.pk).update(
                    message_id=result.get("message_id")
                )
            return


# --- running it beside the task cluster ---------------------------------------------------------


def start(stop: threading.Event) -> Reader | None:
    """Start the reader in a thread of this process when commands are on; the reader or None."""
    config = Config.from_settings()
    if config is None:
        return None
    reader = Reader(config, stop=stop)
    threading.Thread(target=reader.run, name="telegram-commands", daemon=True).start()
    return reader


def reader_state() -> dict[str, Any]:
    """Health: have the commands been read lately (by any process)? Off when they are off."""
    config = Config.from_settings()
    if config is None:
        return {"ok": True, "enabled": False}
    row = CommandReader.objects.filter(token_hash=config.token_hash).first()
    limit = dt.timedelta(seconds=2 * (poll_seconds() + 10) + IDLE_SECONDS)
    now = timezone.now()
    if row is not None and row.polled_at is not None and now - row.polled_at <= limit:
        return {"ok": True, "polled_at": row.polled_at.isoformat()}
    since = (
        "never read"
        if row is None or row.polled_at is None
        else f"not read for {format_duration(now - row.polled_at)}"
    )
    error = f": {row.error}" if row is not None and row.error else ""
    return {"ok": False, "reason": f"Telegram commands {since}{error}"}
