"""Progress of a transfer: a bar with bytes and rate on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from backups.providers.base import Progress
from trades.formats import format_duration, format_size

# Given an object name and its size, something to report the bytes moved to.
ProgressFactory = Callable[[str, int], Progress]

# Redraw a terminal bar at most this often; plain lines at every quarter.
_REDRAW_SECONDS = 0.2
_PLAIN_STEPS = 4
_BAR_WIDTH = 24


class TransferProgress:
    """Called with the bytes moved since the last call; prints the total and rate when complete."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.stream, self.clock = label, total, stream, clock
        self.tty = stream.isatty() if tty is None else tty
        self.done = 0
        self.started = clock()
        self._drawn_at = 0.0
        self._step = 0
        self._finished = False

    def __call__(self, moved: int) -> None:
        self.done += moved
        if self.done >= self.total:
            if not self._finished:
                self._finished = True
                self._finish()
        elif self.tty:
            now = self.clock()
            if now - self._drawn_at >= _REDRAW_SECONDS:
                self._drawn_at = now
                self._draw()
        elif self.total > 0:
            step = min(_PLAIN_STEPS, self.done * _PLAIN_STEPS // self.total)
            if step > self._step:
                self._step = step
                self.stream.write(f"{self.label}: {self._figures()}\n")
                self.stream.flush()

    def _rate(self) -> float:
        return self.done / max(self.clock() - self.started, 1e-6)

    def _figures(self) -> str:
        percent = 100 * self.done // self.total if self.total else 100
        done, total, rate = format_size(self.done), format_size(self.total), format_size(self._rate())
        return f"{percent:3d}% {done} of {total}, {rate}/s"

    def _draw(self) -> None:
        filled = _BAR_WIDTH * self.done // self.total if self.total else _BAR_WIDTH
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self._figures()}  ")
        self.stream.flush()

    def _finish(self) -> None:
        if self.tty:
            self._draw()
            self.stream.write("\n")
        else:
            seconds = self.clock() - self.started
            self.stream.write(
                f"{self.label}: done, {format_size(self.done)} in {format_duration(seconds)} "
                f"({format_size(self._rate())}/s)\n"
            )
        self.stream.flush()
