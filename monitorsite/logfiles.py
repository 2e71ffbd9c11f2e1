"""The site's file log handler (the Loki shipping comes with monitor_client.setup_logging)."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path
from typing import Any

MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5


class SiteFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotating file log (``MAX_BYTES`` x ``BACKUP_COUNT`` at most) shared by the site's processes.

    Makes its folder (owner only) when it first writes, not when settings load.
    The web server and the task cluster write the same file: when one of them
    rotated it, the others notice the new file (as ``WatchedFileHandler`` does)
    instead of writing on into the renamed one.
    """

    def __init__(
        self, filename: str, maxBytes: int = MAX_BYTES, backupCount: int = BACKUP_COUNT, **kwargs: Any
    ):
        self._identity: tuple[int, int] | None = None
        super().__init__(filename, maxBytes=maxBytes, backupCount=backupCount, **kwargs)

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        stream = super()._open()
        stat = os.fstat(stream.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is not None:
            try:
                stat = os.stat(self.baseFilename)
                moved = (stat.st_dev, stat.st_ino) != self._identity
            except FileNotFoundError:
                moved = True
            if moved:
                self.stream.close()
                self.stream = None  # type: ignore[assignment]  # reopened by the emit below
        super().emit(record)
