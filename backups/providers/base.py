"""The interface every storage provider implements, and its one error type."""

from __future__ import annotations

import datetime as dt
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

# Called with the number of bytes moved since the last call.
Progress = Callable[[int], None]


class StorageError(Exception):
    """A storage operation failed; the message is one line a user can act on.

    ``permanent`` marks failures that retrying will not fix (bad credentials,
    missing bucket, bad settings), as opposed to an unreachable service.
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __str__(self) -> str:
        return self.message


class ObjectNotFound(StorageError):
    """The named object is not in storage."""

    def __init__(self, name: str):
        super().__init__(f"{name} is not in storage", permanent=True)
        self.name = name


@dataclass(frozen=True)
class StoredObject:
    """One object in storage, as listings return it."""

    name: str
    size: int
    modified: dt.datetime  # aware, UTC


def env_setting(name: str, *, required: bool = True, default: str | None = None) -> str | None:
    """A provider's own setting from the environment (``.env`` is loaded by settings).

    Each provider checks its settings when first used, so a missing one is a
    ``StorageError`` naming the variable, not a start-up failure for everyone.
    """
    value = (os.environ.get(name) or "").strip() or default
    if required and not value:
        raise StorageError(f"{name} is not set", permanent=True)
    return value


def env_endpoint(name: str) -> str | None:
    """An optional service endpoint override from the environment: an http(s) URL, or None when unset."""
    endpoint = env_setting(name, required=False)
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise StorageError(f"{name} must be an http:// or https:// URL", permanent=True)
    return endpoint


@contextmanager
def replaced_on_success(local_path: Path) -> Iterator[Path]:
    """A temporary file beside ``local_path`` that takes its place only if the block succeeds.

    A failed or interrupted download then never leaves a truncated file, nor
    destroys a file that was already at ``local_path``.
    """
    partial = local_path.with_name(f".{local_path.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, local_path)
    finally:
        partial.unlink(missing_ok=True)


class StorageProvider(ABC):
    """Object storage holding backups, addressed by names such as ``backups/trades_20260115_163000.db``.

    Every method raises ``StorageError`` (never an SDK's own exception) on failure.
    """

    #: The ``CLOUD_STORAGE_PROVIDER`` name.
    name: str = ""

    @classmethod
    @abstractmethod
    def from_env(cls) -> Self:
        """Build the provider from its environment variables, checking them."""

    @abstractmethod
    def upload(self, local_path: Path, name: str, progress: Progress | None = None) -> None:
        """Store the file at ``local_path`` as ``name``, replacing any object of that name."""

    @abstractmethod
    def download(self, name: str, local_path: Path, progress: Progress | None = None) -> None:
        """Write object ``name`` to ``local_path``; ``ObjectNotFound`` when it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object whose name starts with ``prefix`` (all pages), in name order."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove object ``name``; removing a missing object is not an error."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether object ``name`` is stored."""

    def describe(self) -> str:
        """Where objects go, for messages (never with credentials)."""
        return self.name


class CloudStorage(StorageProvider):
    """A provider on a cloud service's SDK: large files go in parts, listings come in pages, and
    every call is made inside ``self._errors(name)``, where the provider's ``translate`` turns the
    SDK's exceptions into its ``StorageError``.

    A subclass calls the service in ``_listing``, ``_head`` and ``_remove``; what a missing object
    means for ``exists`` and ``delete``, and the order of a listing, are the same for all.
    """

    #: The service's short name, for messages ("S3 request failed for ...").
    service = ""
    #: What holds the objects, in the service's word, for messages ("the bucket listing").
    holder = "bucket"

    # Every cloud provider uses these, so a dead endpoint fails in well under a minute
    # instead of hanging a backup task until django-q2 kills it: a refused or unroutable
    # connection after three attempts of at most five seconds, a service that accepts
    # and never answers after two or three reads of fifteen seconds (measured: 30 s for
    # OCI, Azure and GCS, 45 s for S3). The read timeout bounds each wait for the next
    # bytes, not a whole transfer, so large uploads on a slow link are not cut off.
    connect_timeout = 5.0
    read_timeout = 15.0
    max_attempts = 3
    # Files larger than this go up in parts of this size (multipart, blocks, chunks), and a
    # listing asks for this many names a page (the services' own maximum is 1000). Attributes
    # rather than constants so the tests can force several parts and pages.
    part_size = 8 * 1024 * 1024
    page_size = 1000

    @property
    def timeouts(self) -> tuple[float, float]:
        """The two timeouts as one (connect, read) pair, the form the requests-based SDKs take (OCI, GCS)."""
        return (self.connect_timeout, self.read_timeout)

    @contextmanager
    def _errors(self, name: str, *, missing_object: bool = False) -> Iterator[None]:
        """A block in which an SDK's exception becomes the provider's one-line ``StorageError``.

        ``name`` is the object (or the listing) being worked on, and ``missing_object`` says that
        a 404 means ``ObjectNotFound``. A ``StorageError`` raised inside, and anything not an
        ``Exception``, pass through.
        """
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            raise self.translate(exc, name, missing_object) from None

    @abstractmethod
    def translate(self, exc: Exception, name: str, missing_object: bool) -> StorageError:
        """The ``StorageError`` for the SDK's exception ``exc``, raised while working on ``name``;
        what the SDK's own exceptions do not cover is ``self.unmapped(exc, name)``."""

    def unmapped(self, exc: Exception, name: str) -> StorageError:
        """What ``translate`` answers once the SDK's own exceptions are mapped: a local file's error,
        or a failure worth retrying, named by its type (an SDK's message may quote a secret)."""
        if isinstance(exc, OSError):
            return StorageError(f"cannot use local file for {name}: {exc.strerror or exc}")
        return StorageError(f"{self.service} request failed for {name}: {type(exc).__name__}")

    @abstractmethod
    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        """Every stored object whose name starts with ``prefix``, page after page, in any order."""

    @abstractmethod
    def _head(self, name: str) -> None:
        """Ask the service about object ``name``; a missing one fails as the SDK fails."""

    @abstractmethod
    def _remove(self, name: str) -> None:
        """Ask the service to delete object ``name``."""

    def list(self, prefix: str = "") -> list[StoredObject]:
        with self._errors(prefix or f"the {self.holder} listing"):
            found = list(self._listing(prefix))
        return sorted(found, key=lambda obj: obj.name)

    def exists(self, name: str) -> bool:
        try:
            with self._errors(name, missing_object=True):
                self._head(name)
        except ObjectNotFound:
            return False
        return True

    def delete(self, name: str) -> None:
        try:
            with self._errors(name, missing_object=True):
                self._remove(name)
        except ObjectNotFound:
            pass
