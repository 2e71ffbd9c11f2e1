"""The site's file log handler (the Loki shipping comes with monitor_client.setup_logging)."""

from __future__ import annotations

import logging.handlers
from pathlib import Path
from typing import Any


class SiteFileHandler(logging.handlers.WatchedFileHandler):
    """A file log that makes its folder (owner only) when it first writes, not when settings load."""

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return super()._open()
