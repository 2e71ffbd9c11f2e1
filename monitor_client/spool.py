"""A durable local spool: what the bot recorded and the site has not yet stored.

Design (measured in ``bench/client.py``):

- Records are appended to segment files with one ``os.write`` each. Once that call
  returns the bytes are in the kernel's page cache, so a SIGKILL of the bot (or any
  crash of the Python process) loses nothing. A background thread ``fdatasync``s the
  segment every ``sync_interval`` seconds, so a power loss costs at most about that
  much. An append costs a few microseconds; a SQLite commit with its fsync costs
  milliseconds, and SQLite in WAL mode with ``synchronous=NORMAL`` still costs several
  times an append (its page management, not the disk, is the price).
- Each record is framed as ``magic, kind, length, crc32`` + payload. After a power loss
  the tail of a segment may hold a torn record (a short write, or zeros where the file
  grew but its data never reached the disk); reading stops at the first frame that does
  not check out, logs a warning and skips the rest of that segment, which can only be the
  unsynced last second.
- A process never appends to a segment it did not create: on start-up it opens a fresh
  one. Old segments are only read, so a torn tail is never followed by new records, and
  an acknowledged position that points past a truncated tail cannot hide new records.
- The shipper reads from the acknowledged position and acknowledges after the site has
  stored a batch. The position lives in the small file ``ack`` (replaced atomically, not
  fsynced: if a power loss rolls it back, the site receives a replay, which it ignores by
  ``external_id``). Whole segments behind it are deleted.
- Disk use is bounded by ``max_bytes`` (all segment files). Past ``warn_ratio`` of it a
  warning is logged once. At the bound new records are refused (``append`` returns
  False and logs an error, at most once a minute with a count) and everything already
  spooled is kept: the oldest records are the ones the site is missing longest, and a
  refusal is visible to the bot at the moment it happens, whereas silently dropping old
  history would be found out only later. It never raises into the bot.
- One process per spool directory: ``spool.lock`` is held with ``flock`` for the
  spool's lifetime (the kernel releases it when the process dies, even by SIGKILL).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("monitor_client.spool")

MAGIC = 0xA7
HEADER = struct.Struct("<BBII")  # magic, kind, payload length, crc32 of kind + payload
KINDS = frozenset(b"TE")  # T: a trade, E: an event
MAX_RECORD = 4 * 1024 * 1024
SEGMENT_SUFFIX = ".seg"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024
READ_CHUNK = 512 * 1024
REFUSAL_LOG_INTERVAL = 60.0


class SpoolError(RuntimeError):
    """The spool cannot be used (its directory is locked by another process, unwritable)."""


# Named tuples rather than dataclasses: the shipper makes one per record, and a tuple
# is several times cheaper to build (its thread competes with the bot's for the GIL).
class Position(NamedTuple):
    """A place in the spool: a segment number and a byte offset in it (ordered)."""

    segment: int
    offset: int


class Record(NamedTuple):
    kind: str
    payload: bytes
    end: Position  # where the next record starts: acknowledge this to consume the record


def frame(kind: bytes, payload: bytes) -> bytes:
    """One record as written to disk."""
    return HEADER.pack(MAGIC, kind[0], len(payload), zlib.crc32(payload, kind[0])) + payload


def _scan(
    data: bytes | memoryview, start: int, limit: int, max_records: int
) -> tuple[list[tuple[int, bytes, int]], int, bool]:
    """Up to ``max_records`` records in ``data[start:limit]`` as (kind, payload, end).

    Also returns where the valid records end and whether a frame that does not check
    out (or is cut off by ``limit``) stopped the scan.
    """
    records: list[tuple[int, bytes, int]] = []
    offset = start
    size = HEADER.size
    while len(records) < max_records:
        if offset + size > limit:
            return records, offset, offset != limit
        magic, kind, length, crc = HEADER.unpack_from(data, offset)
        end = offset + size + length
        if magic != MAGIC or kind not in KINDS or length > MAX_RECORD or end > limit:
            return records, offset, True
        payload = bytes(data[offset + size : end])
        if zlib.crc32(payload, kind) != crc:
            return records, offset, True
        records.append((kind, payload, end))
        offset = end
    return records, offset, False


class Spool:
    """An append-only, crash-safe queue on disk, used by several threads of one process."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int | None = None,
        sync_interval: float = 1.0,
        warn_ratio: float = 0.8,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        # Deletion works on whole segments, so they must be small beside the bound.
        self.segment_bytes = segment_bytes or max(4096, min(DEFAULT_SEGMENT_BYTES, max_bytes // 16))
        self.sync_interval = sync_interval
        self.warn_ratio = warn_ratio
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(f"Cannot create the spool directory {self.directory}: {exc}") from exc
        self._lock_fd = self._take_lock()
        try:
            self._recover()
            self._open_segment(self._last_segment + 1)
            self._warned = False
            self._normalise_ack()
            with self._lock:
                self._check_level()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._refused = 0
        self._refusal_logged_at: float | None = None
        self._dirty = False
        self._dir_dirty = True
        self._retired: list[int] = []  # fds of rolled segments still to be synced and closed
        self._stop = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="monitor-spool-sync", daemon=True)
        self._syncer.start()

    # --- set-up -------------------------------------------------------------

    def _take_lock(self) -> int:
        path = self.directory / "spool.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SpoolError(f"Cannot use the spool directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolError(
                f"The spool {self.directory} is in use by another process (pid {holder}); "
                "give each bot process its own spool_dir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{SEGMENT_SUFFIX}"

    def _recover(self) -> None:
        """Find the segments, the acknowledged position and each old segment's valid end."""
        numbers = sorted(
            int(path.stem) for path in self.directory.glob(f"*{SEGMENT_SUFFIX}") if path.stem.isdigit()
        )
        acked = self._read_ack()
        if acked is None:
            acked = Position(numbers[0], 0) if numbers else Position(0, 0)
        self._ends: dict[int, int] = {}  # valid end of each closed (read-only) segment
        self._sizes: dict[int, int] = {}  # bytes on disk of each segment, for the bound
        for number in numbers:
            path = self._segment_path(number)
            if number < acked.segment:
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            start = acked.offset if number == acked.segment else 0
            start = min(start, len(data))
            # Offsets before the acknowledged position were valid when shipped; scan the rest.
            _, end, torn = _scan(data, start, len(data), len(data))
            if torn:
                log.warning(
                    "Spool segment %s has a torn or corrupt record at byte %d (of %d); "
                    "skipping the rest of it (the unsynced tail of a power loss).",
                    path.name,
                    end,
                    len(data),
                )
            self._ends[number] = end
            self._sizes[number] = len(data)
        self._last_segment = max(numbers, default=acked.segment)
        self._acked = acked
        self._used = sum(self._sizes.values())

    def _read_ack(self) -> Position | None:
        try:
            text = (self.directory / "ack").read_text()
            segment, offset = (int(part) for part in text.split())
            return Position(segment, offset)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("Spool %s: unreadable ack file; shipping from the oldest segment.", self.directory)
            return None

    def _open_segment(self, number: int) -> None:
        """Create segment ``number`` and write to it from now on (nothing changes if creating fails)."""
        path = self._segment_path(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._fd = fd
        self._segment = number
        self._offset = 0
        self._sizes[number] = 0
        self._last_segment = number

    # --- writing (the bot's threads) -----------------------------------------

    def append(self, kind: bytes, payload: bytes) -> bool:
        """Store one record; True once it is in the OS's page cache, False if refused."""
        if len(payload) > MAX_RECORD:
            raise ValueError(f"A spool record is limited to {MAX_RECORD} bytes; got {len(payload)}.")
        data = frame(kind, payload)
        size = len(data)
        with self._lock:
            if self._closed:
                log.error("The spool %s is closed; a record was not stored.", self.directory)
                return False
            if self._used + size > self.max_bytes:
                self._refuse()
                return False
            try:
                if self._offset and self._offset + size > self.segment_bytes:
                    self._roll()
                written = os.write(self._fd, data)
            except OSError as exc:
                self._write_failed(str(exc))
                return False
            if written != size:
                self._write_failed(f"short write of {written} of {size} bytes")
                return False
            self._offset += size
            self._used += size
            self._sizes[self._segment] += size
            self._dirty = True
            if not self._warned:
                self._check_level()
        return True

    def _check_level(self) -> None:
        """Warn once when the spool passes ``warn_ratio`` of its bound (holding the lock)."""
        if not self._warned and self._used >= self.max_bytes * self.warn_ratio:
            self._warned = True
            log.warning(
                "The spool %s holds %d of its %d bytes (%.0f%%): the site has not taken "
                "trades for a while. At the limit new trades are refused.",
                self.directory,
                self._used,
                self.max_bytes,
                100 * self._used / self.max_bytes,
            )

    def _refuse(self) -> None:
        self._refused += 1
        if self._may_log_refusal():
            log.error(
                "The spool %s is full (%d bytes, limit %d): %d record(s) refused so far. "
                "Spooled records are kept; check that the site is reachable.",
                self.directory,
                self._used,
                self.max_bytes,
                self._refused,
            )

    def _write_failed(self, problem: str) -> None:
        """The disk refused a record (full, read-only): drop any partial bytes, never raise."""
        self._refused += 1
        with contextlib.suppress(OSError):
            # A partial record must not be followed by whole ones: cut the file back.
            os.ftruncate(self._fd, self._offset)
        if self._may_log_refusal():
            log.error(
                "The spool %s cannot write (%s): %d record(s) refused so far.",
                self.directory,
                problem,
                self._refused,
            )

    def _may_log_refusal(self) -> bool:
        """At most one refusal message a minute: a full disk must not flood the log too."""
        now = self._clock()
        if self._refusal_logged_at is not None and now - self._refusal_logged_at < REFUSAL_LOG_INTERVAL:
            return False
        self._refusal_logged_at = now
        return True

    def _roll(self) -> None:
        """Close the current segment for writing and start the next (holding the lock)."""
        old_fd, old_segment, old_end = self._fd, self._segment, self._offset
        self._open_segment(old_segment + 1)  # raises before changing anything if it cannot
        self._ends[old_segment] = old_end
        self._retired.append(old_fd)
        self._dir_dirty = True

    # --- reading and acknowledging (the shipper's thread) ---------------------

    @property
    def acked(self) -> Position:
        return self._acked

    def end(self) -> Position:
        """Where the next record will be appended: everything before it was accepted."""
        with self._lock:
            return Position(self._segment, self._offset)

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def refused(self) -> int:
        """How many records were refused because the spool was full."""
        return self._refused

    def pending(self) -> bool:
        return self._acked < self.end()

    def read(self, limit: int, max_bytes: int = 4 * 1024 * 1024) -> list[Record]:
        """Up to ``limit`` records (about ``max_bytes`` of payload) from the acknowledged
        position, in order, without consuming them."""
        records: list[Record] = []
        total = 0
        position = self._acked
        chunk = READ_CHUNK
        while len(records) < limit and total < max_bytes:
            with self._lock:
                current = self._segment
                end = self._offset if position.segment == current else self._ends.get(position.segment)
            if end is None or (position.offset >= end and position.segment != current):
                if position.segment >= current:
                    break
                position = Position(self._next_segment(position.segment), 0)
                continue
            available = end - position.offset
            if available <= 0:
                break
            # Read and parse only about what this batch needs: the shipper's thread holds
            # the GIL while it parses, and the bot's thread is waiting for it then.
            with open(self._segment_path(position.segment), "rb") as handle:
                handle.seek(position.offset)
                data = handle.read(min(available, chunk))
            found, valid_end, stopped = _scan(data, 0, len(data), limit - len(records))
            for kind, payload, stop in found:
                if records and total + len(payload) > max_bytes:
                    return records
                records.append(Record(chr(kind), payload, Position(position.segment, position.offset + stop)))
                total += len(payload)
            position = Position(position.segment, position.offset + valid_end)
            if found:
                chunk = READ_CHUNK
            elif stopped and len(data) == available:
                self._skip_damage(position)
            elif len(data) < available and chunk < MAX_RECORD + HEADER.size:
                chunk = MAX_RECORD + HEADER.size  # one record larger than a chunk
            else:
                break
        return records

    def _skip_damage(self, position: Position) -> None:
        """A record that checked out when written no longer does (a disk fault): skip the rest."""
        log.error(
            "Spool segment %s is damaged at byte %d; skipping the rest of it.",
            self._segment_path(position.segment).name,
            position.offset,
        )
        with self._lock:
            if position.segment == self._segment:
                self._roll()
            self._ends[position.segment] = position.offset

    def _next_segment(self, number: int) -> int:
        with self._lock:
            later = [n for n in self._ends if n > number]
            return min(later, default=self._segment)

    def ack(self, position: Position) -> None:
        """Consume everything before ``position``; delete segments wholly behind it."""
        if self._closed or position <= self._acked:
            return
        self._acked = position
        self._normalise_ack()
        tmp = self.directory / "ack.tmp"
        tmp.write_text(f"{self._acked.segment} {self._acked.offset}\n")
        os.replace(tmp, self.directory / "ack")

    def _normalise_ack(self) -> None:
        """Move the position past finished or missing segments and delete those behind it."""
        with self._lock:
            acked = self._acked
            while acked.segment != self._segment:
                end = self._ends.get(acked.segment)
                if end is not None and acked.offset < end:
                    break
                later = [n for n in self._ends if n > acked.segment]
                acked = Position(min(later, default=self._segment), 0)
            self._acked = acked
            done = [n for n in self._ends if n < acked.segment]
            for number in done:
                del self._ends[number]
                self._used -= self._sizes.pop(number, 0)
        for number in done:
            with contextlib.suppress(FileNotFoundError):
                self._segment_path(number).unlink()
        if self._warned and self._used < self.max_bytes * self.warn_ratio * 0.9:
            self._warned = False
            log.info("The spool %s is below its warning level again.", self.directory)

    # --- durability ---------------------------------------------------------

    def sync(self) -> None:
        """Make everything appended so far survive a power loss."""
        with self._lock:
            fd = None if self._closed else self._fd
            retired, self._retired = self._retired, []
            dirty, self._dirty = self._dirty, False
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        for old in retired:
            with contextlib.suppress(OSError):
                os.fdatasync(old)
            os.close(old)
        if dirty and fd is not None:
            with contextlib.suppress(OSError):
                os.fdatasync(fd)
        if dir_dirty:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            try:
                self.sync()
            except Exception:
                log.exception("Spool %s: fsync failed", self.directory)

    def close(self) -> None:
        """Sync, stop the sync thread and release the directory for another process."""
        if self._closed:
            return
        self._stop.set()
        self._syncer.join(timeout=5)
        try:
            self.sync()
        except OSError:
            log.exception("Spool %s: final fsync failed", self.directory)
        with self._lock:
            self._closed = True
            os.close(self._fd)
        os.close(self._lock_fd)
