"""The ``azure`` provider: Azure Blob Storage through azure-storage-blob.

Settings: ``AZURE_STORAGE_CONNECTION_STRING``, or ``AZURE_STORAGE_ACCOUNT`` with
``AZURE_STORAGE_KEY`` or ``AZURE_STORAGE_SAS_TOKEN``; the container is
``AZURE_CONTAINER_NAME`` (``AZURE_CONTAINER`` is accepted too, default ``backups``)
and is created on the first upload when missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Self

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient, ExponentialRetry

from backups.providers.base import (
    CloudStorage,
    ObjectNotFound,
    Progress,
    StorageError,
    StoredObject,
    env_setting,
    replaced_on_success,
)

_AUTH_CODES = {
    "AuthenticationFailed",
    "AuthorizationFailure",
    "InvalidAuthenticationInfo",
    "NoAuthenticationInformation",
}


class _ContainerMissing(StorageError):
    pass


class AzureStorage(CloudStorage):
    name = "azure"
    service = "Azure"
    holder = "container"

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account: str | None = None,
        credential: str | None = None,
    ):
        if not connection_string and not account:
            raise StorageError(
                "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT is not set", permanent=True
            )
        self.container = container
        self._connection_string = connection_string
        self.account = account
        self._credential = credential

    @classmethod
    def from_env(cls) -> Self:
        container = (
            env_setting("AZURE_CONTAINER_NAME", required=False)
            or env_setting("AZURE_CONTAINER", required=False)
            or "backups"
        )
        connection_string = env_setting("AZURE_STORAGE_CONNECTION_STRING", required=False)
        if connection_string:
            return cls(container, connection_string=connection_string)
        account = env_setting("AZURE_STORAGE_ACCOUNT", required=False)
        if not account:
            raise StorageError(
                "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT is not set", permanent=True
            )
        credential = env_setting("AZURE_STORAGE_KEY", required=False) or env_setting(
            "AZURE_STORAGE_SAS_TOKEN", required=False
        )
        if not credential:
            raise StorageError(
                "AZURE_STORAGE_ACCOUNT is set but neither AZURE_STORAGE_KEY nor AZURE_STORAGE_SAS_TOKEN is",
                permanent=True,
            )
        return cls(container, account=account, credential=credential)

    def describe(self) -> str:
        return f"Azure container {self.container} in account {self._service.account_name}"

    def translate(self, exc: Exception, name: str, missing_object: bool) -> StorageError:
        """azure-core's exceptions as ``StorageError`` with a message a user can act on."""
        code = getattr(exc, "error_code", None) or ""
        code = str(getattr(code, "value", code))  # the SDK gives a StorageErrorCode enum or a string
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if code == "ContainerNotFound":
            return _ContainerMissing(
                f"Azure container {self.container!r} does not exist; check AZURE_CONTAINER_NAME",
                permanent=True,
            )
        if isinstance(exc, ResourceNotFoundError) and missing_object:
            return ObjectNotFound(name)
        if isinstance(exc, ClientAuthenticationError) or code in _AUTH_CODES:
            return StorageError(
                f"Azure rejected the credentials ({code or status}); check AZURE_STORAGE_KEY, the SAS token "
                "or the connection string",
                permanent=True,
            )
        if code == "AuthorizationPermissionMismatch" or status == 403:
            return StorageError(
                f"Azure denied access to container {self.container!r} ({code or status}); the key or SAS "
                "token needs read, write, delete, list and create permissions",
                permanent=True,
            )
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            # No response: DNS, refused connection, timeout.
            return StorageError(
                f"cannot reach Azure Blob Storage: {type(exc).__name__}; will retry next time"
            )
        if isinstance(exc, HttpResponseError):
            transient = status is None or status >= 500 or status == 429
            return StorageError(
                f"Azure request failed for {name}: {code or 'error'} (HTTP {status})",
                permanent=not transient,
            )
        if isinstance(exc, AzureError):
            return StorageError(f"Azure request failed for {name}: {type(exc).__name__}")
        return self.unmapped(exc, name)

    @cached_property
    def _service(self) -> BlobServiceClient:
        options: dict[str, Any] = {
            "connection_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            # The SDK's default backoff starts at 15 s; a dead endpoint must fail in ~30 s.
            # A timed-out read is tried once more, not twice: a service that accepts
            # connections and never answers must not hold the task for minutes.
            "retry_policy": ExponentialRetry(
                initial_backoff=1,
                increment_base=2,
                retry_total=self.max_attempts - 1,
                retry_read=1,
                random_jitter_range=1,
            ),
            # Blocks of part_size once a file is larger than one part.
            "max_single_put_size": self.part_size,
            "max_block_size": self.part_size,
            "max_chunk_get_size": self.part_size,
            "max_single_get_size": self.part_size,
        }
        try:
            if self._connection_string:
                return BlobServiceClient.from_connection_string(self._connection_string, **options)
            credential: Any = self._credential
            if credential and "sig=" not in credential:
                credential = {"account_name": self.account, "account_key": credential}
            elif credential:
                credential = credential.lstrip("?")
            return BlobServiceClient(f"https://{self.account}.blob.core.windows.net", credential, **options)
        except ValueError:
            # The SDK's message may quote the connection string, which holds the key.
            raise StorageError(
                "AZURE_STORAGE_CONNECTION_STRING is malformed; copy it again from the portal's Access keys",
                permanent=True,
            ) from None

    @cached_property
    def _container(self) -> ContainerClient:
        return self._service.get_container_client(self.container)

    def upload(self, local_path: Path, name: str, progress: Progress | None = None) -> None:
        try:
            with self._errors(name):
                self._upload(local_path, name, progress)
        except _ContainerMissing:
            with self._errors(name):
                try:
                    self._container.create_container()
                except ResourceExistsError:
                    pass  # another process created it in between
                self._upload(local_path, name, progress)

    def _upload(self, local_path: Path, name: str, progress: Progress | None) -> None:
        size = local_path.stat().st_size
        with open(local_path, "rb") as source:
            self._container.upload_blob(
                name,
                source,
                length=size,
                overwrite=True,
                max_concurrency=4,
                progress_hook=_ProgressHook(progress) if progress else None,
            )

    def download(self, name: str, local_path: Path, progress: Progress | None = None) -> None:
        try:
            self._download(name, local_path, progress)
        except _ContainerMissing:
            # Nothing was ever uploaded here: the container is made by the first upload.
            raise ObjectNotFound(name) from None

    def _download(self, name: str, local_path: Path, progress: Progress | None) -> None:
        with self._errors(name, missing_object=True):
            stream = self._container.download_blob(
                name, max_concurrency=4, progress_hook=_ProgressHook(progress) if progress else None
            )
            with replaced_on_success(local_path) as partial, open(partial, "wb") as sink:
                stream.readinto(sink)

    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        for blob in self._container.list_blobs(
            name_starts_with=prefix or None, results_per_page=self.page_size
        ):
            yield StoredObject(blob.name, int(blob.size), blob.last_modified.astimezone(dt.UTC))

    def _head(self, name: str) -> None:
        self._container.get_blob_client(name).get_blob_properties()

    def _remove(self, name: str) -> None:
        self._container.delete_blob(name)

    # A missing container holds nothing: it is created on the first upload.

    def list(self, prefix: str = "") -> list[StoredObject]:
        try:
            return super().list(prefix)
        except _ContainerMissing:
            return []

    def delete(self, name: str) -> None:
        try:
            super().delete(name)
        except _ContainerMissing:
            pass

    def exists(self, name: str) -> bool:
        try:
            return super().exists(name)
        except _ContainerMissing:
            return False


class _ProgressHook:
    """azure calls back with the running total; the interface reports increments."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.reported = 0

    def __call__(self, current: int, total: int | None) -> None:
        if current > self.reported:
            self.progress(current - self.reported)
            self.reported = current
