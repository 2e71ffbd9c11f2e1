"""E-mail through Django's SMTP backend, to the channel's recipients.

The server and the sender are Django's own settings (``EMAIL_HOST``,
``EMAIL_PORT``, ``EMAIL_HOST_USER``, ``EMAIL_HOST_PASSWORD``,
``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``, ``DEFAULT_FROM_EMAIL``), read from the
environment in the settings module; a channel names only its recipients.

A plain-text body and a short subject with the level (``[CRITICAL] …``, at
most 120 characters, one line: a subject is a header). SMTP answers map to
the family's error: a refused login, a refused sender or refused recipients
(5xx) hold for every alert and disable the channel; any other 5xx fails the
message; 4xx answers, refused or dropped connections and timeouts are tried
again later.
"""

from __future__ import annotations

import re
import smtplib
import time
from typing import TYPE_CHECKING, Any

from alerts.conf import setting
from alerts.outbound import Outcome, fragments
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

        connection = get_connection(
            setting("ALERT_EMAIL_BACKEND"), fail_silently=False, timeout=setting("ALERT_HTTP_TIMEOUT")
        )
        message = EmailMessage(
            subject(alert),
            plain_text(alert, BODY_LIMIT, len),
            settings.DEFAULT_FROM_EMAIL,
            list(self.config["to"]),
            connection=connection,
        )
        started = time.monotonic()
        try:
            message.send()
        except smtplib.SMTPAuthenticationError as exc:
            self._fail(started, exc.smtp_code, "the mail server refused the login", disables=True)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            code = codes[0] if codes else None
            permanent = all(c >= 500 for c in codes)
            self._fail(started, code, "the mail server refused every recipient", disables=permanent)
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
            reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
            self._fail(
                started, exc.smtp_code, f"SMTP {exc.smtp_code} {reply[:150]}", permanent=exc.smtp_code >= 500
            )
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, TLS failures: the server may be back later.
            self._fail(started, None, f"cannot reach the mail server ({type(exc).__name__})")
        else:
            self.outcomes.append(Outcome(250, "", _ms(started)))

    def _fail(
        self, started: float, code: int | None, text: str, *, disables: bool = False, permanent: bool = False
    ) -> None:
        self.outcomes.append(Outcome(code, text, _ms(started)))
        raise TransportError(f"e-mail not sent: {text}", permanent=permanent, disables_channel=disables)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
