"""Typed readers for environment variables.

Every reader fails with ``ImproperlyConfigured`` whose message names the
variable and says what was expected, so a typo in ``.env`` stops start-up
with one readable line instead of surfacing later as a strange error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def load_env_file(project_root: Path) -> None:
    """Read ``.env`` (or the file ``ENV_FILE`` names) into the environment; variables already set win.

    The tests point ``ENV_FILE`` elsewhere to stay clear of a developer's ``.env``.
    """
    load_dotenv(os.environ.get("ENV_FILE") or project_root / ".env", override=False)


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} must be a comma separated list, got {value!r}")
    return items


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return lowered


def env_path(name: str, default: Path, *, base: Path) -> Path:
    """A filesystem path; relative values are taken from the project root."""
    value = _raw(name)
    path = Path(value).expanduser() if value is not None else default
    return path if path.is_absolute() else base / path


def env_timezone(name: str, default: str) -> str:
    value = _raw(name) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name} must be an IANA time zone such as America/New_York, got {value!r}"
        ) from None
    return value


def env_url(name: str) -> str | None:
    value = _raw(name)
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        # The value is not echoed: webhook URLs carry their secret in the path.
        raise ImproperlyConfigured(f"{name} must be an http:// or https:// URL")
    return value.rstrip("/")


def env_checked(name: str, check: Callable[[str], T]) -> T | None:
    """The variable passed through ``check``, which raises ValueError saying what is expected.

    The value is not echoed: most checked variables are secrets (tokens, webhook URLs).
    """
    value = _raw(name)
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} {exc}") from None


# RFC 6750's b64token: what may follow "Bearer " in an Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
BEARER_TOKEN_MIN_LENGTH = 16


def bearer_token(value: str) -> str:
    """A secret a client sends as ``Authorization: Bearer <value>`` (``env_checked``'s check).

    Letters, digits and ``-._~+/`` (then ``=`` padding) only: a space inside could not be sent in
    the header, nor kept by a credentials file (Prometheus trims it). At least 16 characters: a
    shorter one is guessed too soon (``openssl rand -hex 32`` gives 64).
    """
    if not _BEARER_TOKEN.fullmatch(value):
        raise ValueError("may hold only letters, digits and -._~+/ (then = padding), no spaces")
    if len(value) < BEARER_TOKEN_MIN_LENGTH:
        raise ValueError(f"must be at least {BEARER_TOKEN_MIN_LENGTH} characters long")
    return value
