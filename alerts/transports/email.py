"""E-mail through Django's SMTP backend, to the channel's recipients.

The server and the sender are Django's own settings (``EMAIL_HOST``,
``EMAIL_PORT``, ``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``,
``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``, ``DEFAULT_FROM_EMAIL``), read from the
environment in the settings module; a channel names only its recipients.

A plain-text body and a short subject with the level (``[CRITICAL] …``, at
most 120 characters, one line: a subject is a header). SMTP answers map to
the family's error: a refused login, a refused sender or every recipient
refused (5xx) hold for every alert and disable the channel; any other 5xx fails
the message; 4xx answers, refused or dropped connections and timeouts are tried
again later.

The server answers for each recipient. Each attempt records those that took the
message (``Outcome.reached``) and goes only to those the alert has not reached
yet, so a recipient deferred (4xx) beside others gets it on a retry and nobody
gets two. One refused for good (5xx) beside others is named in the attempt.
"""

from __future__ import annotations

import re
import smtplib
import time
from typing import TYPE_CHECKING, Any

from alerts.conf import setting
from alerts.outbound import Outcome, cause, fragments
from alerts.transports.base import DIGEST_ROOM, Setting, Transport, TransportError, cut, plain_text

if TYPE_CHECKING:
    from alerts.models import Alert

SUBJECT_LIMIT = 120
BODY_LIMIT = 64_000
_ADDRESS = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")


def recipients(value: str | list[str]) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    addresses = [str(item).strip() for item in items if str(item).strip()]
    if not addresses or not all(_ADDRESS.match(a) for a in addresses):
        raise ValueError("must be e-mail addresses, separated by commas")
    return addresses


def subject(alert: Alert) -> str:
    return cut(f"[{alert.level.upper()}] " + " ".join(alert.title.split()), SUBJECT_LIMIT, len)


class EmailTransport(Transport):
    # A digest's lines fit the message; the title, fields and footer take the rest.
    text_limit = BODY_LIMIT - DIGEST_ROOM

    label = "E-mail"
    SETTINGS = (Setting("to", "ALERT_EMAIL_TO", "recipients", recipients, help="Comma separated."),)

    @classmethod
    def secrets_of(cls, values: dict[str, Any]) -> list[str]:
        from django.conf import settings

        password = getattr(settings, "EMAIL_HOST_PASSWORD", "") or ""
        return fragments(password) if password else []

    def destination(self) -> str:
        return ", ".join(self.config.get("to") or [])

    def send(self, alert: Alert) -> None:
        from django.conf import settings
        from django.core.mail import EmailMessage, get_connection
        from django.core.mail.message import sanitize_address

        earlier = alert.reached()
        owed = [address for address in self.config["to"] if address not in earlier]
        reached_before = len(owed) < len(self.config["to"])
        if not owed:
            return  # every recipient took it before (a worker stopped before marking it sent)
        message = EmailMessage(
            subject(alert),
            plain_text(alert, BODY_LIMIT, len),
            settings.DEFAULT_FROM_EMAIL,
            list(self.config["to"]),  # the header names them all, whoever this copy goes to
        )
        encoding = message.encoding or settings.DEFAULT_CHARSET
        envelope = {sanitize_address(address, encoding): address for address in owed}
        # Django's backend sets up the connection (TLS or SSL, login, timeout), but its send()
        # drops the recipients smtplib says the server refused; sendmail itself returns them.
        connection = get_connection(
            setting("ALERT_EMAIL_BACKEND"), fail_silently=False, timeout=setting("ALERT_HTTP_TIMEOUT")
        )
        started = time.monotonic()
        try:
            try:
                connection.open()
                refused = connection.connection.sendmail(
                    sanitize_address(message.from_email, encoding),
                    list(envelope),
                    message.message().as_bytes(linesep="\r\n"),
                )
            finally:
                _close(connection)
        except smtplib.SMTPAuthenticationError as exc:
            self._fail(started, exc.smtp_code, "the mail server refused the login", disables=True)
        except smtplib.SMTPRecipientsRefused as exc:
            self._answer(started, owed, _by_address(exc.recipients, envelope), reached_before=reached_before)
        except smtplib.SMTPSenderRefused as exc:
            self._fail(
                started,
                exc.smtp_code,
                "the mail server refused the sender (DEFAULT_FROM_EMAIL)",
                disables=exc.smtp_code >= 500,
            )
        except smtplib.SMTPNotSupportedError:
            self._fail(started, None, "the mail server does not offer what EMAIL_USE_TLS asks", disables=True)
        except smtplib.SMTPResponseException as exc:
            self._fail(
                started,
                exc.smtp_code,
                f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}",
                permanent=exc.smtp_code >= 500,
            )
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, TLS failures: the server may be back later.
            where = f"{settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
            self._fail(started, None, f"cannot reach the mail server {where}: {cause(exc)}")
        else:
            self._answer(started, owed, _by_address(refused, envelope), reached_before=reached_before)

    def _answer(self, started: float, owed: list[str], refused: Answers, *, reached_before: bool) -> None:
        """Record whom this attempt reached; raise when the alert is still owed to someone."""
        reached = tuple(address for address in owed if address not in refused)
        deferred = {address: answer for address, answer in refused.items() if answer[0] < 500}
        rejected = {address: answer for address, answer in refused.items() if answer[0] >= 500}
        if not refused:
            self.outcomes.append(Outcome(250, "", _ms(started), reached))
        elif deferred:
            # Those it reached are recorded, so the retry goes only to the ones still owed.
            text = f"the mail server deferred {_listed(deferred)}"
            if rejected:
                text += f" and refused {_listed(rejected)}"
            code = next(iter(deferred.values()))[0]
            self._fail(started, code, text, reached=reached, partly=bool(reached) or reached_before)
        elif reached or reached_before:
            # The rest are refused for good, yet the alert counts as sent: it reached someone, and
            # a retry can only bring the same 5xx. A mistyped address must neither stop the others
            # getting their alerts (disabling the channel) nor mark them failed; the attempt names it.
            code = 250 if reached else next(iter(rejected.values()))[0]
            text = f"the mail server refused {_listed(rejected)} for good; the other recipients have it"
            self.outcomes.append(Outcome(code, text, _ms(started), reached))
        else:
            code = next(iter(rejected.values()))[0]
            self._fail(started, code, "the mail server refused every recipient", disables=True)

    def _fail(
        self,
        started: float,
        code: int | None,
        text: str,
        *,
        disables: bool = False,
        permanent: bool = False,
        reached: tuple[str, ...] = (),
        partly: bool = False,
    ) -> None:
        self.outcomes.append(Outcome(code, text, _ms(started), reached))
        head = "e-mail not sent to every recipient yet" if partly else "e-mail not sent"
        raise TransportError(f"{head}: {text}", permanent=permanent, disables_channel=disables)


def _close(connection: Any) -> None:
    """Quit politely; the message went or did not before this, so a failed QUIT changes nothing."""
    try:
        connection.close()
    except (smtplib.SMTPException, OSError):
        pass


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:150]


Answers = dict[str, tuple[int, str]]  # recipient -> the server's code and reply


def _by_address(refused: dict[str, tuple[int, bytes]], envelope: dict[str, str]) -> Answers:
    """smtplib's refused recipients, by the channel's own spelling of each address."""
    return {envelope.get(to, to): (code, _text(reply)) for to, (code, reply) in refused.items()}


def _listed(answers: Answers) -> str:
    """``ops@example.com (450 4.2.1 mailbox busy)``, comma separated: addresses are no secret."""
    return ", ".join(f"{address} ({code} {reply[:80]})" for address, (code, reply) in answers.items())


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
