"""The plug-in family of alert transports: one base class, one module per channel kind.

A member declares its settings (``SETTINGS``: the key in ``Channel.config``, the
environment variable of the default channel, the check, whether it is a
secret), renders an alert within its service's limits, sends it, and maps its
service's answers to the one ``TransportError``. The outbox (claims, leases,
rate limit, digests, delivery history) knows nothing of any one service. HTTP goes
through ``alerts.outbound`` (``Transport.post``), which stands below this family.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import requests

from alerts import outbound
from alerts.outbound import ELLIPSIS, Outcome, fragments, mask

if TYPE_CHECKING:
    from alerts.models import Alert, Channel


class TransportError(Exception):
    """Delivery failed. ``permanent``: retrying the same request cannot help.

    ``disables_channel``: the destination itself is gone or refuses us (401,
    404, a deleted chat), so every alert for the channel would fail alike.
    ``retry_after``: the other side asked us to wait this many seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        disables_channel: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent or disables_channel
        self.disables_channel = disables_channel
        self.retry_after = retry_after
        self.status_code = status_code


class ConfigError(ValueError):
    """A channel setting is wrong: ``key`` names it (the admin field, the YAML key)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


# --- reading a service's error answer ---


def json_body(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object; empty when the body is not one (a proxy's HTML error page, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_text(response: requests.Response, key: str) -> str:
    """What the service says went wrong, for the delivery history: ``key`` of its JSON answer, else
    the status line's reason, at most 200 characters."""
    return str(json_body(response).get(key) or response.reason or "")[:200]


# --- checks: str -> stored value, or ValueError saying what is expected (never echoing a secret) ---


def url_value(value: str) -> str:
    value = str(value).strip()
    if not re.match(r"^https?://[^/\s]+", value) or any(c.isspace() for c in value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def text_value(value: str) -> str:
    value = str(value).strip()
    if not value or len(value) > 500 or any(c in value for c in "\r\n"):
        raise ValueError("must be one line of text (at most 500 characters)")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting of a channel kind: ``Channel.config[key]``, and ``env`` for the default channel."""

    key: str
    env: str
    label: str
    check: Callable[[str], Any] = text_value
    secret: bool = False
    required: bool = True
    default: Any = None
    help: str = ""


# --- text within a service's limits -------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


Measure = Callable[[str], int]


def cut(text: str, limit: int, measure: Measure = utf16_len) -> str:
    """``text`` shortened to ``limit`` (as ``measure`` counts), ending in an ellipsis when shortened."""
    if measure(text) <= limit:
        return text
    budget = limit - measure(ELLIPSIS)
    if budget < 0:
        return ""
    out: list[str] = []
    used = 0
    for char in text:
        size = measure(char)
        if used + size > budget:
            break
        out.append(char)
        used += size
    return "".join(out) + ELLIPSIS


# What a plain-text message keeps clear of a digest's lines: its title, fields and footer.
DIGEST_ROOM = 400


LEVEL_EMOJI = {"info": "🔔", "warning": "⚠️", "critical": "🚨"}


def plain_text(alert: Alert, limit: int, measure: Measure = len, *, title: bool = True) -> str:
    """An alert as plain text within ``limit``: title, message, fields, footer.

    Over the limit the message gives way first, then the fields from the
    end: the title and the first fields carry what matters most.
    """
    head = f"{LEVEL_EMOJI.get(alert.level, '')} {alert.title}".strip() if title else ""
    lines = [f"{name}: {value}" for name, value in (alert.fields or [])]
    footer = f"{alert.level} · {alert.source} · alert #{alert.pk}"

    def join(message: str, field_lines: list[str]) -> str:
        blocks = [head, message, "\n".join(field_lines), footer]
        return "\n\n".join(block for block in blocks if block)

    message = alert.message or ""
    text = join(message, lines)
    if measure(text) > limit and message:
        spare = limit - measure(join("", lines)) - 2
        message = cut(message, max(spare, 0), measure) if spare > 20 else ""
        text = join(message, lines)
    while measure(text) > limit and lines:
        lines = lines[:-1]
        text = join(message, lines)
    return cut(text, limit, measure)


# --- the base class -----------------------------------------------------------------------------


class Transport:
    """Sends one alert (or digest) to one channel; raises TransportError on failure.

    A member sets ``label`` and ``SETTINGS`` and implements ``send``; it may
    override ``check``, ``secrets`` and ``destination``.
    """

    label: ClassVar[str] = ""
    SETTINGS: ClassVar[tuple[Setting, ...]] = ()

    # The most text an alert's message may carry in one message of this service, as
    # ``text_length`` counts it (None: no limit). A digest fits its lines to it.
    text_limit: ClassVar[int | None] = None

    # The key of the service's JSON error answer that says what went wrong ("": none, the status
    # line's reason is recorded); a member whose service answers otherwise overrides ``describe``.
    error_key: ClassVar[str] = ""

    @staticmethod
    def text_length(text: str) -> int:
        return len(text)

    def describe(self, response: requests.Response) -> str:
        """What the service says went wrong, for the delivery history (secrets are masked after)."""
        return error_text(response, self.error_key) if self.error_key else outbound.reason(response)

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.config = self.resolved(channel.settings)
        self.outcomes: list[Outcome] = []
        self.host = ""  # where the last request went (``post``)

    # --- settings ---
    @classmethod
    def setting(cls, key: str) -> Setting:
        return next(s for s in cls.SETTINGS if s.key == key)

    @classmethod
    def check(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The channel's own settings, checked and normalised; ConfigError names the first wrong key."""
        known = {s.key for s in cls.SETTINGS}
        for key in values:
            if key not in known:
                raise ConfigError(key, f"unknown setting; expected one of {', '.join(sorted(known))}")
        checked: dict[str, Any] = {}
        for setting in cls.SETTINGS:
            raw = values.get(setting.key)
            if raw is None or raw == "" or raw == []:
                if setting.required:
                    raise ConfigError(setting.key, "is required")
                continue
            try:
                checked[setting.key] = setting.check(raw)
            except ValueError as exc:
                raise ConfigError(setting.key, str(exc)) from None
        return checked

    @classmethod
    def environment(cls) -> dict[str, Any]:
        """The default channel's settings, from the environment (read and checked by the settings module)."""
        from django.conf import settings

        values = {}
        for setting in cls.SETTINGS:
            value = getattr(settings, setting.env, None)
            if value not in (None, "", []) and value != setting.default:
                values[setting.key] = value
        return values

    @classmethod
    def is_complete(cls, values: dict[str, Any]) -> bool:
        return bool(values) and all(values.get(s.key) for s in cls.SETTINGS if s.required)

    @classmethod
    def resolved(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with each optional setting's default filled in."""
        return {s.key: values.get(s.key) or s.default for s in cls.SETTINGS}

    # --- secrets ---
    @classmethod
    def secrets_of(cls, values: dict[str, Any]) -> list[str]:
        """Every string to hide for these settings: each secret and its long pieces."""
        found: list[str] = []
        for setting in cls.SETTINGS:
            if setting.secret and values.get(setting.key):
                found += fragments(str(values[setting.key]))
        return found

    def secrets(self) -> list[str]:
        return self.secrets_of(self.config)

    def destination(self) -> str:
        """Where alerts go, masked: fit for the admin and for logs."""
        setting = next((s for s in self.SETTINGS if s.required), None)
        if setting is None or not self.config.get(setting.key):
            return ""
        value = str(self.config[setting.key])
        return mask(value) if setting.secret else value

    def send(self, alert: Alert) -> None:
        raise NotImplementedError

    def post(self, url: str, **options: Any) -> requests.Response:
        """POST through ``alerts.outbound`` (timeouts, bounded retries, waits, masking), each
        request recorded in ``outcomes``; a request that got no usable answer is a ``TransportError``."""
        options.setdefault("describe", self.describe)
        self.host = outbound.host_of(url)  # named in the error words; the URL itself may hold a token
        try:
            return outbound.post(url, record=self.outcomes.append, secrets=self.secrets(), **options)
        except outbound.RequestFailed as exc:
            raise TransportError(
                exc.message,
                permanent=not exc.retryable,
                retry_after=exc.retry_after,
                status_code=exc.status_code,
            ) from None

    def post_or_refuse(
        self,
        url: str,
        *,
        service: str,
        refused: Callable[[int, str], bool],
        what: str,
        check: str,
        **options: Any,
    ) -> None:
        """POST (``post``) and map the answer.

        A 2xx returns. An answer ``refused(status, detail)`` recognises as the service turning
        the destination away for good disables the channel; any other answer fails the alert.
        """
        response = self.post(url, **options)
        if response.ok:
            return
        status = response.status_code
        detail = self.outcomes[-1].error if self.outcomes else ""
        if refused(status, detail):
            raise TransportError(
                f"{service} refused {what} (HTTP {status} from {self.host}: {detail}); check {check}",
                disables_channel=True,
                status_code=status,
            )
        raise TransportError(
            f"{service} ({self.host}) answered HTTP {status}: {detail}", permanent=True, status_code=status
        )
