"""A local SMTP server (aiosmtpd) that takes mail as a real one does, with a login when asked.

``users`` switches on AUTH (PLAIN/LOGIN, allowed without TLS on loopback): a
wrong password is answered 535. ``refuse`` lists recipients answered 550
(mailbox unavailable), ``defer`` those answered 450 (try again later). Every
accepted message is parsed and kept.
"""

from __future__ import annotations

import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "alerts@example.com", "smtp-PaSsWoRd-0123456789"


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    logins: list[bool] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.defer:
            return "450 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.mailbox = Mailbox()
        self.users = users
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        options: dict[str, Any] = {}
        if users is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True}
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.users is not None
        ok = ok and self.users.get(data.login.decode()) == data.password.decode()
        self.mailbox.logins.append(ok)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[EmailMessage]:
        return self.mailbox.messages
