"""One logging setup for the bot and the site: a rotating file log always, Loki when configured.

The bot calls :func:`setup_logging`; the site's ``LOGGING`` setting is
:func:`logging_config` with ``application="monitorsite"``. Both end in
``logging.config.dictConfig``, so the handlers are built (the log folder made,
nothing sent yet) when logging is configured, never when a module is imported.

Only the standard library is imported here; the Loki handler (``requests`` and
python-logging-loki) is imported by ``dictConfig`` only when ``LOKI_URL`` is set.
"""

from __future__ import annotations

import logging
import logging.config
import logging.handlers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:  # the lock that lets several processes share one rotating file; POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per file is assumed
    fcntl = None  # type: ignore[assignment]

DEFAULT_LOG_DIR = "data/logs"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
# Loki stores the time and has the level and logger as labels.
LOKI_FORMAT = "%(message)s"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def check_loki_settings(url: str, username: str | None, password: str | None) -> None:
    """Fail with one line naming the variable when the Loki settings cannot work."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("LOKI_URL must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("LOKI_URL must not carry credentials; set LOKI_USERNAME and LOKI_PASSWORD")
    if bool(username) != bool(password):
        raise ValueError("LOKI_USERNAME and LOKI_PASSWORD must be set together")
    if username and parts.scheme != "https" and parts.hostname not in _LOOPBACK_HOSTS:
        # Basic auth over plain HTTP sends the password readable to anyone on the path.
        raise ValueError("LOKI_URL must be https:// when LOKI_USERNAME and LOKI_PASSWORD are set")


class SizeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """``RotatingFileHandler`` that several processes may share (web processes, task cluster workers).

    The stdlib handler assumes one writer: when another process has rotated the
    file, it keeps appending to the renamed file and rotates again. This one
    follows the file by name before each record (as ``WatchedFileHandler`` does)
    and rotates under an exclusive lock, re-checking the size once it holds it.
    """

    def __init__(self, filename: str, max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT) -> None:
        # delay: the file (and its folder) appear with the first record, not when
        # logging is configured, so configuring creates nothing on disk.
        super().__init__(filename, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=True)
        self._identity: tuple[int, int] | None = None

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return super()._open()

    def _open_identity(self) -> tuple[int, int] | None:
        if self.stream is None:
            return None
        st = os.fstat(self.stream.fileno())
        return st.st_dev, st.st_ino

    def _follow_rotation(self) -> None:
        try:
            st = os.stat(self.baseFilename)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self.stream is None or current != self._identity:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
            self._identity = self._open_identity()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._follow_rotation()
        except OSError:
            self.handleError(record)
            return
        super().emit(record)

    def doRollover(self) -> None:
        if fcntl is None:
            super().doRollover()
            self._identity = self._open_identity()
            return
        with open(self.baseFilename + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Another process may have rotated while this one waited for the lock.
            self._follow_rotation()
            if os.path.getsize(self.baseFilename) >= self.maxBytes:
                super().doRollover()
                self._identity = self._open_identity()


def file_handler(
    log_dir: str | os.PathLike[str],
    application: str,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> SizeRotatingFileHandler:
    """The always-on file log ``<log_dir>/<application>.log``; its folder is made (0700) on first use."""
    return SizeRotatingFileHandler(str(Path(log_dir) / f"{application}.log"), max_bytes, backup_count)


def logging_config(
    application: str,
    level: str | int = "INFO",
    *,
    log_dir: str | os.PathLike[str] = DEFAULT_LOG_DIR,
    loki_url: str | None = None,
    loki_username: str | None = None,
    loki_password: str | None = None,
    console: bool = True,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
    loki_options: Mapping[str, Any] | None = None,
    loggers: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``dictConfig`` dictionary of the setup; building it has no side effects.

    ``loki_options`` go to :class:`monitor_client.loki.LokiPacing` (``capacity``,
    ``interval``, ``timeout``, ``exit_timeout`` ...). ``loggers`` adds per-logger levels.
    """
    level_name = logging.getLevelName(level) if isinstance(level, int) else str(level).upper()
    if not isinstance(logging.getLevelName(level_name), int):
        raise ValueError(f"unknown log level {level!r}")
    handlers: dict[str, dict[str, Any]] = {
        "file": {
            "()": "monitor_client.logsetup.file_handler",
            "log_dir": str(log_dir),
            "application": application,
            "max_bytes": max_bytes,
            "backup_count": backup_count,
            "formatter": "plain",
        },
    }
    if console:
        handlers["console"] = {"class": "logging.StreamHandler", "formatter": "plain"}
    if loki_url:
        check_loki_settings(loki_url, loki_username, loki_password)
        handlers["loki"] = {
            "()": "monitor_client.loki.LokiShippingHandler",
            "url": loki_url,
            "application": application,
            "username": loki_username,
            "password": loki_password,
            "formatter": "loki",
            **dict(loki_options or {}),
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": LOG_FORMAT},
            "loki": {"format": LOKI_FORMAT},
        },
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level_name},
        "loggers": {name: dict(options) for name, options in (loggers or {}).items()},
    }


def setup_logging(
    application: str = "trading-bot",
    level: str | int = "INFO",
    *,
    log_dir: str | os.PathLike[str] | None = None,
    loki_url: str | None = None,
    loki_username: str | None = None,
    loki_password: str | None = None,
    console: bool = True,
    env: Mapping[str, str] = os.environ,
    **options: Any,
) -> None:
    """Configure logging for the bot: a rotating file log, the console, and Loki if ``LOKI_URL`` is set.

    Arguments left out are read from ``LOG_DIR`` (default ``data/logs``),
    ``LOKI_URL``, ``LOKI_USERNAME`` and ``LOKI_PASSWORD``. Like any ``dictConfig``
    call it replaces the handlers configured before, so calling it twice leaves
    one set; add handlers of your own after it. A bad value raises ``ValueError``
    naming the variable.
    """

    def setting(value: Any, name: str) -> Any:
        return value if value is not None else (env.get(name) or "").strip() or None

    logging.config.dictConfig(
        logging_config(
            application,
            level,
            log_dir=setting(log_dir, "LOG_DIR") or DEFAULT_LOG_DIR,
            loki_url=setting(loki_url, "LOKI_URL"),
            loki_username=setting(loki_username, "LOKI_USERNAME"),
            loki_password=setting(loki_password, "LOKI_PASSWORD"),
            console=console,
            **options,
        )
    )
