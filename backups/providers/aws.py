"""The ``aws`` provider: Amazon S3 (or an S3-compatible store) through boto3.

Settings: ``AWS_S3_BUCKET`` (required), ``AWS_REGION``, ``AWS_ENDPOINT_URL``.
Credentials come the usual boto3 ways (environment, shared credentials file,
instance role), so none is ever held in the site's settings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import boto3
from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from backups.providers.base import (
    CloudStorage,
    ObjectNotFound,
    Progress,
    StorageError,
    StoredObject,
    env_endpoint,
    env_setting,
)

_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
}
_DENIED = {"AccessDenied", "AllAccessDisabled", "AccountProblem"}
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Storage(CloudStorage):
    name = "aws"
    service = "S3"

    def __init__(self, bucket: str, *, region: str | None = None, endpoint_url: str | None = None):
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url

    @classmethod
    def from_env(cls) -> Self:
        endpoint = env_endpoint("AWS_ENDPOINT_URL")
        return cls(
            env_setting("AWS_S3_BUCKET"),  # type: ignore[arg-type]
            region=env_setting("AWS_REGION", required=False),
            endpoint_url=endpoint,
        )

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3 bucket {self.bucket}{where}"

    def translate(self, exc: Exception, name: str, missing_object: bool) -> StorageError:
        """boto3's exceptions as ``StorageError`` with a message a user can act on."""
        # The transfer manager wraps the client's error; the cause says what happened.
        while isinstance(exc, S3UploadFailedError | S3TransferFailedError) and exc.__context__:
            exc = exc.__context__  # type: ignore[assignment]
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "a profile, or an instance role",
                permanent=True,
            )
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket" or (
                code in _NOT_FOUND and missing_object and not self._bucket_exists()
            ):
                return StorageError(
                    f"S3 bucket {self.bucket!r} does not exist; check AWS_S3_BUCKET", permanent=True
                )
            if code in _NOT_FOUND and missing_object:
                return ObjectNotFound(name)
            if code in _BAD_CREDENTIALS:
                return StorageError(
                    f"AWS rejected the credentials ({code}); check the access key and secret", permanent=True
                )
            if code in _DENIED or status == 403:
                return StorageError(
                    f"AWS denied access to bucket {self.bucket!r} ({code}); the credentials need "
                    "s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on it",
                    permanent=True,
                )
            if code in {
                "PermanentRedirect",
                "AuthorizationHeaderMalformed",
                "IllegalLocationConstraintException",
            }:
                return StorageError(
                    f"S3 bucket {self.bucket!r} is in another region ({code}); set AWS_REGION", permanent=True
                )
            transient = status is None or status >= 500 or status == 429
            return StorageError(
                f"S3 request failed for {name}: {code} (HTTP {status})", permanent=not transient
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            where = self.endpoint_url or "S3"
            return StorageError(f"cannot reach {where}: {type(exc).__name__}; will retry next time")
        if isinstance(exc, BotoCoreError):
            return StorageError(f"S3 request failed for {name}: {type(exc).__name__}")
        return self.unmapped(exc, name)

    @cached_property
    def _client(self) -> Any:
        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # "standard" retries throttling and connection errors with capped backoff.
            # (botocore's "max_attempts" counts retries only; this counts the first try too.)
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
        )
        session = boto3.session.Session(region_name=self.region)
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _transfer_config(self) -> TransferConfig:
        return TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=4,
        )

    def upload(self, local_path: Path, name: str, progress: Progress | None = None) -> None:
        with self._errors(name):
            self._client.upload_file(
                str(local_path), self.bucket, name, Callback=progress, Config=self._transfer_config()
            )

    def download(self, name: str, local_path: Path, progress: Progress | None = None) -> None:
        with self._errors(name, missing_object=True):
            self._client.download_file(
                self.bucket, name, str(local_path), Callback=progress, Config=self._transfer_config()
            )

    def _listing(self, prefix: str) -> Iterator[StoredObject]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                modified = item["LastModified"].astimezone(dt.UTC)
                yield StoredObject(item["Key"], int(item["Size"]), modified)

    def _head(self, name: str) -> None:
        self._client.head_object(Bucket=self.bucket, Key=name)

    def _remove(self, name: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=name)

    def _bucket_exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return _code(exc) not in {"404", "NoSuchBucket", "NotFound"}
        except BotoCoreError:
            return True
        return True


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
