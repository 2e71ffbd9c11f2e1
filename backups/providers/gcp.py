"""The ``gcp`` provider: Google Cloud Storage through google-cloud-storage.

Settings: ``GCP_BUCKET_NAME`` (required), ``GCP_PROJECT_ID`` (optional: the
credentials usually name their project). Credentials are Application Default
Credentials (``GOOGLE_APPLICATION_CREDENTIALS`` pointing at a service account key,
or the VM's service account). When ``STORAGE_EMULATOR_HOST`` is set the client
talks to that emulator, anonymously.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Self

from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from backups.providers.base import (
    CloudStorage,
    ObjectNotFound,
    Progress,
    StorageError,
    StoredObject,
    env_setting,
    replaced_on_success,
)

# Retries of connection errors, 429 and 5xx, with short backoff, given up after 20 s
# (the library's default gives up only after two minutes).
_RETRY = DEFAULT_RETRY.with_delay(initial=0.5, maximum=4.0, multiplier=2.0).with_timeout(20.0)
# Resumable chunks must be multiples of 256 KiB.
_CHUNK_QUANTUM = 256 * 1024


class GCSStorage(CloudStorage):
    name = "gcp"
    service = "GCS"

    def __init__(self, bucket: str, *, project: str | None = None):
        self.bucket = bucket
        self.project = project

    @classmethod
    def from_env(cls) -> Self:
        return cls(
            env_setting("GCP_BUCKET_NAME"),  # type: ignore[arg-type]
            project=env_setting("GCP_PROJECT_ID", required=False),
        )

    def describe(self) -> str:
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        return f"GCS bucket {self.bucket}" + (f" on the emulator at {emulator}" if emulator else "")

    def translate(self, exc: Exception, name: str, missing_object: bool) -> StorageError:
        """Google's exceptions as ``StorageError`` with a message a user can act on."""
        if isinstance(exc, auth_errors.RefreshError):
            return StorageError(
                "Google rejected the credentials (token refresh failed); check the service account key "
                "in GOOGLE_APPLICATION_CREDENTIALS",
                permanent=True,
            )
        if isinstance(exc, auth_errors.DefaultCredentialsError):
            return StorageError(
                "no usable Google credentials: GOOGLE_APPLICATION_CREDENTIALS must name a valid service "
                "account key file",
                permanent=True,
            )
        if isinstance(exc, auth_errors.TransportError):
            return StorageError("cannot reach Google's token service; will retry next time")
        if isinstance(exc, api_errors.NotFound):
            if not missing_object or not self._bucket_exists():
                return StorageError(
                    f"GCS bucket {self.bucket!r} does not exist; check GCP_BUCKET_NAME", permanent=True
                )
            return ObjectNotFound(name)
        if isinstance(exc, api_errors.Unauthorized):
            return StorageError("Google rejected the credentials (HTTP 401)", permanent=True)
        if isinstance(exc, api_errors.Forbidden):
            return StorageError(
                f"Google denied access to bucket {self.bucket!r} (HTTP 403); the service account needs the "
                "Storage Object Admin role on it",
                permanent=True,
            )
        if isinstance(exc, api_errors.RetryError):
            return StorageError(
                "cannot reach Google Cloud Storage (gave up after retries); will retry next time"
            )
        if isinstance(exc, api_errors.GoogleAPICallError):
            code = exc.code or 0
            transient = code >= 500 or code in (408, 429)
            return StorageError(f"GCS request failed for {name}: HTTP {code}", permanent=not transient)
        if isinstance(exc, ConnectionError | TimeoutError) or type(exc).__module__.startswith(
            ("requests", "urllib3")
        ):
            return StorageError(
                f"cannot reach Google Cloud Storage: {type(exc).__name__}; will retry next time"
            )
        return self.unmapped(exc, name)

    @cached_property
    def _client(self) -> storage.Client:
        try:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                return storage.Client(project=self.project or "emulator", credentials=AnonymousCredentials())
            return storage.Client(project=self.project)
        except auth_errors.DefaultCredentialsError:
            raise StorageError(
                "no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service account "
                "key file, or run on a VM with a service account",
                permanent=True,
            ) from None

    @cached_property
    def _bucket(self) -> storage.Bucket:
        return self._client.bucket(self.bucket)

    def _chunk_size(self) -> int:
        return max(_CHUNK_QUANTUM, self.part_size // _CHUNK_QUANTUM * _CHUNK_QUANTUM)

    def upload(self, local_path: Path, name: str, progress: Progress | None = None) -> None:
        with self._errors(name):
            size = local_path.stat().st_size
            # With a chunk size the library uses a resumable upload in chunks of that
            # size; without one, anything under 8 MiB goes in a single request.
            blob = self._bucket.blob(name, chunk_size=self._chunk_size() if size > self.part_size else None)
            with open(local_path, "rb") as source:
                blob.upload_from_file(
                    _Counted(source, progress),
                    size=size,
                    rewind=False,
                    timeout=self.timeouts,
                    retry=_RETRY,
                )

    def download(self, name: str, local_path: Path, progress: Progress | None = None) -> None:
        blob = self._bucket.blob(name, chunk_size=self._chunk_size())
        with (
            self._errors(name, missing_object=True),
            replaced_on_success(local_path) as partial,
            open(partial, "wb") as sink,
        ):
            blob.download_to_file(_Counted(sink, progress), timeout=self.timeouts, retry=_RETRY)

    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        blobs = self._client.list_blobs(
            self.bucket, prefix=prefix or None, page_size=self.page_size, timeout=self.timeouts, retry=_RETRY
        )
        for blob in blobs:
            modified = (blob.updated or blob.time_created or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
            yield StoredObject(blob.name, int(blob.size or 0), modified)

    def _head(self, name: str) -> None:
        self._bucket.blob(name).reload(timeout=self.timeouts, retry=_RETRY)

    def _remove(self, name: str) -> None:
        self._bucket.blob(name).delete(timeout=self.timeouts, retry=_RETRY)

    def _bucket_exists(self) -> bool:
        try:
            return bool(self._bucket.exists(timeout=self.timeouts, retry=_RETRY))
        except Exception:  # only refines an error already being reported
            return True


class _Counted:
    """A file wrapper that reports each byte once, however often the library seeks back to retry."""

    def __init__(self, file: IO[bytes], progress: Progress | None):
        self._file = file
        self._progress = progress
        self._reported = file.tell()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._file, attribute)

    def _advance(self) -> None:
        position = self._file.tell()
        if self._progress and position > self._reported:
            self._progress(position - self._reported)
            self._reported = position

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._advance()
        return data

    def write(self, data: bytes) -> int:
        written = self._file.write(data)
        self._advance()
        return written
