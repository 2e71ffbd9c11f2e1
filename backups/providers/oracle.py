"""The ``oracle`` provider: Oracle Cloud Infrastructure Object Storage through the oci SDK.

Settings: ``OCI_BUCKET_NAME`` (required), ``OCI_NAMESPACE`` (looked up through the
API when unset), ``OCI_AUTH`` (``config``: the file at ``OCI_CONFIG_FILE``, default
``~/.oci/config``, profile ``OCI_CONFIG_PROFILE``, default ``DEFAULT``; or
``instance_principal`` on an OCI instance), ``OCI_ENDPOINT`` (service endpoint
override, e.g. for another realm or a private endpoint).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import oci
from oci.exceptions import (
    ClientError,
    ConfigFileNotFound,
    InvalidConfig,
    InvalidKeyFilePath,
    InvalidPrivateKey,
    MultipartUploadError,
    ProfileNotFound,
    ServiceError,
)
from oci.object_storage import ObjectStorageClient, UploadManager

from backups.providers.base import (
    CloudStorage,
    ObjectNotFound,
    Progress,
    StorageError,
    StoredObject,
    env_endpoint,
    env_setting,
    replaced_on_success,
)

_AUTH_MODES = ("config", "instance_principal")
_CHUNK = 1024 * 1024


class OracleStorage(CloudStorage):
    name = "oracle"
    service = "OCI"

    def __init__(
        self,
        bucket: str,
        *,
        namespace: str | None = None,
        auth: str = "config",
        config_file: str = "~/.oci/config",
        profile: str = "DEFAULT",
        endpoint: str | None = None,
    ):
        self.bucket = bucket
        self._namespace = namespace
        self.auth = auth
        self.config_file = config_file
        self.profile = profile
        self.endpoint = endpoint

    @classmethod
    def from_env(cls) -> Self:
        auth = (env_setting("OCI_AUTH", required=False, default="config") or "config").lower()
        if auth not in _AUTH_MODES:
            raise StorageError(
                f"OCI_AUTH must be one of {', '.join(_AUTH_MODES)}; got {auth!r}", permanent=True
            )
        endpoint = env_endpoint("OCI_ENDPOINT")
        return cls(
            env_setting("OCI_BUCKET_NAME"),  # type: ignore[arg-type]
            namespace=env_setting("OCI_NAMESPACE", required=False),
            auth=auth,
            config_file=env_setting("OCI_CONFIG_FILE", required=False, default="~/.oci/config"),  # type: ignore[arg-type]
            profile=env_setting("OCI_CONFIG_PROFILE", required=False, default="DEFAULT"),  # type: ignore[arg-type]
            endpoint=endpoint.rstrip("/") if endpoint else None,
        )

    def describe(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"OCI bucket {self.bucket}{where}"

    def translate(self, exc: Exception, name: str, missing_object: bool) -> StorageError:
        """The oci SDK's exceptions as ``StorageError`` with a message a user can act on."""
        if isinstance(exc, MultipartUploadError) and exc.error_causes:
            cause = exc.error_causes[0]
            if isinstance(cause, Exception):
                return self.translate(cause, name, missing_object)
        # Read without triggering the lookup: this may be reporting that lookup's failure.
        namespace = self.__dict__.get("namespace", self._namespace)
        if isinstance(exc, ServiceError):
            code, status = str(exc.code or ""), int(exc.status or 0)
            # HEAD answers carry no body, hence no code: ask the bucket itself.
            if code == "BucketNotFound" or (
                status == 404 and not code and missing_object and not self._bucket_exists()
            ):
                return StorageError(
                    f"OCI bucket {self.bucket!r} does not exist in namespace {namespace!r} "
                    "(or the credentials may not see it); check OCI_BUCKET_NAME",
                    permanent=True,
                )
            if code == "NamespaceNotFound":
                return StorageError(
                    f"OCI namespace {namespace!r} does not exist; check OCI_NAMESPACE", permanent=True
                )
            if status == 404 and missing_object:
                return ObjectNotFound(name)
            if status == 401:
                return StorageError(
                    f"OCI rejected the request signature ({code or 'NotAuthenticated'}); check the user, "
                    "fingerprint and key_file of the OCI config profile, and the clock",
                    permanent=True,
                )
            if status == 403 or (status == 404 and code == "NotAuthorizedOrNotFound"):
                return StorageError(
                    f"OCI denied access to bucket {self.bucket!r} ({code or status}); the user's group needs "
                    "manage objects and read buckets on it",
                    permanent=True,
                )
            transient = status >= 500 or status == 429 or status == 0
            return StorageError(
                f"OCI request failed for {name}: {code or 'error'} (HTTP {status})",
                permanent=not transient,
            )
        if isinstance(exc, oci.exceptions.RequestException | oci.exceptions.ConnectTimeout) or type(
            exc
        ).__module__.startswith(("oci._vendor.requests", "oci._vendor.urllib3", "requests", "urllib3")):
            where = self.endpoint or "OCI Object Storage"
            return StorageError(f"cannot reach {where}: {type(exc).__name__}; will retry next time")
        if isinstance(exc, ClientError):
            return StorageError(f"OCI client error for {name}: {type(exc).__name__}", permanent=True)
        return self.unmapped(exc, name)

    @cached_property
    def _client(self) -> ObjectStorageClient:
        retry = oci.retry.RetryStrategyBuilder(
            max_attempts=self.max_attempts,
            total_elapsed_time_seconds=25,
            retry_max_wait_between_calls_seconds=4,
        ).get_retry_strategy()
        options: dict[str, Any] = {
            "timeout": self.timeouts,
            "retry_strategy": retry,
        }
        if self.endpoint:
            options["service_endpoint"] = self.endpoint
        if self.auth == "instance_principal":
            try:
                signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
            except Exception as exc:  # the signer raises assorted request errors
                raise StorageError(
                    "cannot get instance principal credentials "
                    f"({type(exc).__name__}); OCI_AUTH=instance_principal works only on an OCI instance "
                    "in a dynamic group with a policy for the bucket",
                    permanent=True,
                ) from None
            return ObjectStorageClient({"region": signer.region}, signer=signer, **options)
        try:
            config = oci.config.from_file(file_location=self.config_file, profile_name=self.profile)
            return ObjectStorageClient(config, **options)
        except ConfigFileNotFound:
            raise StorageError(
                f"OCI config file {self.config_file} not found; set OCI_CONFIG_FILE", permanent=True
            ) from None
        except ProfileNotFound:
            raise StorageError(
                f"profile {self.profile} is not in {self.config_file}; set OCI_CONFIG_PROFILE", permanent=True
            ) from None
        except InvalidConfig as exc:
            # errors maps field names to "missing" / "malformed": no values, nothing secret.
            problems = ", ".join(f"{key} {problem}" for key, problem in sorted(exc.errors.items()))
            raise StorageError(
                f"OCI config profile {self.profile} in {self.config_file} is invalid: {problems}",
                permanent=True,
            ) from None
        except (InvalidKeyFilePath, InvalidPrivateKey, FileNotFoundError) as exc:
            raise StorageError(
                f"OCI config profile {self.profile} in {self.config_file} is unusable: {type(exc).__name__}; "
                "check user, fingerprint, tenancy, region and key_file",
                permanent=True,
            ) from None

    @cached_property
    def namespace(self) -> str:
        if self._namespace:
            return self._namespace
        with self._errors("the namespace lookup"):
            return str(self._client.get_namespace().data)

    def upload(self, local_path: Path, name: str, progress: Progress | None = None) -> None:
        namespace = self.namespace
        manager = UploadManager(self._client, allow_parallel_uploads=True, parallel_process_count=4)
        multipart = local_path.stat().st_size > self.part_size
        try:
            with self._errors(name):
                # UploadManager puts small files in one request and splits larger ones
                # into parts of part_size, uploaded in parallel and committed together.
                # The SDK calls progress_callback whenever the key is present, even as None.
                extra = {"progress_callback": progress} if progress else {}
                manager.upload_file(
                    namespace, self.bucket, name, str(local_path), part_size=self.part_size, **extra
                )
        except StorageError:
            if multipart:
                self._abort_uploads(name)
            raise

    def _abort_uploads(self, name: str) -> None:
        """Abort uncommitted multipart uploads of ``name``: the service keeps (and bills) their parts."""
        try:
            uploads = self._client.list_multipart_uploads(self.namespace, self.bucket).data
            for upload in uploads:
                if upload.object == name:
                    self._client.abort_multipart_upload(self.namespace, self.bucket, name, upload.upload_id)
        except Exception:  # best effort after a failure that is already reported
            pass

    def download(self, name: str, local_path: Path, progress: Progress | None = None) -> None:
        with self._errors(name, missing_object=True):
            response = self._client.get_object(self.namespace, self.bucket, name)
            with replaced_on_success(local_path) as partial, open(partial, "wb") as sink:
                for chunk in response.data.raw.stream(_CHUNK, decode_content=False):
                    sink.write(chunk)
                    if progress:
                        progress(len(chunk))

    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        start = None
        while True:
            page = self._client.list_objects(
                self.namespace,
                self.bucket,
                prefix=prefix or None,
                start=start,
                limit=self.page_size,
                # By default the service returns names only.
                fields="name,size,timeCreated,timeModified",
            ).data
            for item in page.objects:
                modified = (item.time_modified or item.time_created).astimezone(dt.UTC)
                yield StoredObject(item.name, int(item.size or 0), modified)
            start = page.next_start_with
            if not start:
                return

    def _head(self, name: str) -> None:
        self._client.head_object(self.namespace, self.bucket, name)

    def _remove(self, name: str) -> None:
        self._client.delete_object(self.namespace, self.bucket, name)

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(self.namespace, self.bucket)
        except ServiceError as exc:
            return exc.status != 404
        except Exception:  # only refines an error already being reported
            return True
        return True
