"""Keeps a flood of refused requests from flooding the log.

A scanner or a misconfigured bot can send thousands of requests a minute that
are refused (401, 403, 404, 400, a bad Host header), and Django logs a warning
for each one: 15 MB of log in 70 s. ``RefusalSummary`` lets the first few of
each kind through per interval, counts the rest, and at the end of the interval
logs one line with the counts. Everything else passes untouched.

Attach it to handlers (any number: each record is decided once, by the first
handler that sees it, and the others follow that decision)::

    "filters": {"refusals": {"()": "monitorsite.logfilters.RefusalSummary", "interval": 60}},
    "handlers": {"file": {..., "filters": ["refusals"]}, "console": {..., "filters": ["refusals"]}},
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter

SUMMARY_LOGGER = "monitorsite.refusals"

# django-q2's INFO lines for every single task: with a schedule every minute they
# were most of the console. Their failures (ERROR) and the cluster's own start
# and stop lines still show.
PER_TASK_LINE = re.compile(r"^(Enqueued |Processed '|\S+ processing |\S+ created task )")


class QuietTasks(logging.Filter):
    """Drops django-q2's per-task INFO lines (``Enqueued``, ``Processed``...); LOG_TASKS=true keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "django-q" or record.levelno > logging.INFO:
            return True
        return not PER_TASK_LINE.match(record.getMessage())


class RefusalSummary(logging.Filter):
    """Logs the first ``burst`` refusals of each kind per ``interval`` seconds, then one summary line."""

    def __init__(self, interval: float = 60.0, burst: int = 3) -> None:
        super().__init__()
        self.interval = float(interval)
        self.burst = int(burst)
        self._lock = threading.Lock()
        self._passed: Counter[str] = Counter()
        self._folded: Counter[str] = Counter()
        self._last: dict[str, str] = {}
        self._timer: threading.Timer | None = None
        # Where this filter notes its decision on a record (other instances keep their own).
        self._decision = f"_refusal_summary_{id(self)}"

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, self._decision, None)
        if decided is None:
            decided = self._decide(record)
            setattr(record, self._decision, decided)
        return decided

    @staticmethod
    def kind(record: logging.LogRecord) -> str | None:
        """The kind of refusal ``record`` reports, or None when it reports something else."""
        if record.name == "django.request":
            status = getattr(record, "status_code", None)
            return str(status) if isinstance(status, int) and 400 <= status < 500 else None
        if record.name.startswith("django.security."):
            # DisallowedHost (a scanner's Host header), RequestDataTooBig, ...
            return record.name.removeprefix("django.security.")
        if record.name == "waitress.queue":
            # "Task queue depth is N": every request queued behind busy threads.
            return "busy (requests queued)"
        return None

    def _decide(self, record: logging.LogRecord) -> bool:
        kind = self.kind(record)
        if kind is None:
            return True
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.interval, self.flush)
                self._timer.daemon = True
                self._timer.start()
            if self._passed[kind] < self.burst:
                self._passed[kind] += 1
                return True
            self._folded[kind] += 1
            self._last[kind] = record.getMessage()[:200]
            return False

    def flush(self) -> None:
        """Log the counts of what was held back since the interval began, and start afresh."""
        with self._lock:
            folded, last = self._folded, self._last
            self._passed, self._folded, self._last = Counter(), Counter(), {}
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if folded:
            parts = "; ".join(f"{kind} x{count} (last: {last[kind]})" for kind, count in folded.most_common())
            logging.getLogger(SUMMARY_LOGGER).warning(
                "%d refused requests in the last %g s not logged one by one: %s",
                sum(folded.values()),
                self.interval,
                parts,
            )
