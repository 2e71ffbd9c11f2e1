"""One contract for every storage provider, run against real servers on loopback.

local: a temporary folder. oracle: the signature-checking stand-in in
``oci_object_storage``. azure: Azurite. aws: moto's server with IAM authentication
on. gcp: gcp-storage-emulator. Each provider is driven through its real SDK.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

import storage_servers as servers
from backups.providers import PIP_PACKAGES, PROVIDERS, get_provider
from backups.providers.base import ObjectNotFound, StorageError, StorageProvider

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
ALL = list(PROVIDERS)
CLOUD = [name for name in PROVIDERS if name != "local"]
# Smallest part each service accepts for all but the last part (S3: 5 MiB).
SMALL_PART = {"aws": 5 * MIB}


# --- the servers, one per session, started only when a test needs them ------------


@pytest.fixture(scope="session")
def oci_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Service]:
    service = servers.start_oci(tmp_path_factory.mktemp("oci"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Service]:
    service = servers.start_azurite(tmp_path_factory.mktemp("azurite"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Service]:
    service = servers.start_moto(tmp_path_factory.mktemp("moto"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Service]:
    service = servers.start_gcs_emulator(tmp_path_factory.mktemp("gcs"))
    yield service
    service.stop()


# --- one provider with a fresh bucket, configured through the environment only ----


@dataclass
class Backend:
    """A provider under test: the environment that selects it, and what its SDK sent."""

    name: str
    env: dict[str, str]
    provider: StorageProvider
    # What the SDK sent, as (method, url) pairs, where the test can see it.
    sent: Callable[[], list[tuple[str, str]]] | None = None
    is_list: Callable[[str, str], bool] = lambda method, url: False
    is_part: Callable[[str, str], bool] = lambda method, url: False
    secrets: list[str] = field(default_factory=list)

    def lists(self) -> int:
        assert self.sent is not None
        return sum(1 for method, url in self.sent() if self.is_list(method, url))

    def parts(self) -> int:
        assert self.sent is not None
        return sum(1 for method, url in self.sent() if self.is_part(method, url))


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No provider settings or SDK credentials from the developer's machine."""
    for key in list(os.environ):
        if key.startswith(("OCI_", "AZURE_", "AWS_", "GCP_", "GOOGLE_", "STORAGE_EMULATOR")):
            monkeypatch.delenv(key)
    # boto3 and oci must not find a real ~/.aws or ~/.oci.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def requests_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every request the ``requests`` library sends (azure and google use it)."""
    sent: list[tuple[str, str]] = []
    original = requests.Session.send

    def send(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        sent.append((str(request.method), str(request.url)))
        return original(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    return sent


def _backend(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Backend:
    if name == "local":
        settings = request.getfixturevalue("settings")
        settings.LOCAL_STORAGE_PATH = tmp_path / "storage"
        env = {"LOCAL_STORAGE_PATH": str(tmp_path / "storage")}
        return Backend(name, env, get_provider("local"))
    if name == "oracle":
        service: servers.Service = request.getfixturevalue("oci_service")
        server = service.extra["server"]
        bucket = _unique("backups-")
        server.create_bucket(bucket)
        env = {
            "OCI_BUCKET_NAME": bucket,
            "OCI_CONFIG_FILE": str(service.extra["config"]),
            "OCI_ENDPOINT": service.url,
        }
        _apply(monkeypatch, env)
        start = len(server.requests)

        def sent() -> list[tuple[str, str]]:
            return [(method, operation) for method, operation, _ in server.requests[start:]]

        return Backend(
            name,
            env,
            get_provider("oracle"),
            sent,
            is_list=lambda method, operation: operation == "ListObjects",
            is_part=lambda method, operation: operation == "UploadPart",
        )
    if name == "azure":
        service = request.getfixturevalue("azurite")
        sent_list = request.getfixturevalue("requests_sent")
        # A container that does not exist yet: the provider creates it on first upload.
        env = {
            "AZURE_STORAGE_CONNECTION_STRING": servers.azurite_connection_string(service.url),
            "AZURE_CONTAINER_NAME": _unique("backups-"),
        }
        _apply(monkeypatch, env)
        return Backend(
            name,
            env,
            get_provider("azure"),
            lambda: list(sent_list),
            is_list=lambda method, url: method == "GET" and "comp=list" in url,
            is_part=lambda method, url: method == "PUT" and "comp=block&" in url,
            secrets=[servers.AZURITE_KEY],
        )
    if name == "aws":
        service = request.getfixturevalue("moto_s3")
        bucket = _unique("backups-")
        env = {
            "AWS_S3_BUCKET": bucket,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": service.url,
            "AWS_ACCESS_KEY_ID": service.extra["access_key"],
            "AWS_SECRET_ACCESS_KEY": service.extra["secret_key"],
        }
        _apply(monkeypatch, env)
        provider = get_provider("aws")
        provider._client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        aws_sent: list[tuple[str, str]] = []
        provider._client.meta.events.register(  # type: ignore[attr-defined]
            "before-send.s3.*", lambda request, **kwargs: aws_sent.append((request.method, request.url))
        )
        return Backend(
            name,
            env,
            provider,
            lambda: list(aws_sent),
            is_list=lambda method, url: method == "GET" and "list-type=2" in url,
            is_part=lambda method, url: method == "PUT" and "partNumber=" in url,
            secrets=[service.extra["secret_key"]],
        )
    if name == "gcp":
        service = request.getfixturevalue("gcs_emulator")
        sent_list = request.getfixturevalue("requests_sent")
        bucket = _unique("backups-")
        env = {
            "GCP_BUCKET_NAME": bucket,
            "GCP_PROJECT_ID": "trading-monitor",
            "STORAGE_EMULATOR_HOST": service.url,
        }
        _apply(monkeypatch, env)
        provider = get_provider("gcp")
        provider._client.create_bucket(bucket)  # type: ignore[attr-defined]
        return Backend(
            name,
            env,
            provider,
            lambda: list(sent_list),
            is_list=lambda method, url: method == "GET" and f"/b/{bucket}/o?" in url,
            is_part=lambda method, url: method == "PUT" and "upload_id=" in url,
        )
    raise AssertionError(name)


@pytest.fixture(params=ALL)
def backend(request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Backend:
    return _backend(request.param, request, clean_env, tmp_path)


def _file(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


# --- the contract -------------------------------------------------------------------


def test_round_trip_returns_identical_bytes(backend: Backend, tmp_path: Path) -> None:
    original = _file(tmp_path, "trades.db", 300_000)
    backend.provider.upload(original, "backups/trades_20260115_163000.db")

    restored = tmp_path / "restored.db"
    backend.provider.download("backups/trades_20260115_163000.db", restored)

    assert restored.read_bytes() == original.read_bytes()


def test_list_by_prefix_reads_every_page(backend: Backend, tmp_path: Path) -> None:
    backend.provider.page_size = 3  # type: ignore[attr-defined]
    small = _file(tmp_path, "small.db", 1000)
    daily = [f"backups/trades_202601{day:02d}_163000.db" for day in range(5, 13)]
    for name in [*reversed(daily), "trades_latest.db", "other/notes.txt"]:
        backend.provider.upload(small, name)
    lists_before = backend.lists() if backend.sent else 0

    listed = backend.provider.list("backups/")

    assert [obj.name for obj in listed] == daily  # all 8, past two pages of 3, in name order
    assert all(obj.size == 1000 for obj in listed)
    assert all(obj.modified.utcoffset() is not None for obj in listed)
    if backend.sent is not None and backend.name != "gcp":
        # The SDK asked for page after page (gcp-storage-emulator ignores page sizes).
        assert backend.lists() - lists_before >= 3
    assert [obj.name for obj in backend.provider.list()] == sorted(
        [*daily, "other/notes.txt", "trades_latest.db"]
    )
    assert backend.provider.list("nothing-here/") == []


def test_overwriting_trades_latest_keeps_the_newest_copy(backend: Backend, tmp_path: Path) -> None:
    first = _file(tmp_path, "first.db", 5000)
    second = _file(tmp_path, "second.db", 7000)
    backend.provider.upload(first, "trades_latest.db")
    backend.provider.upload(second, "trades_latest.db")

    restored = tmp_path / "restored.db"
    backend.provider.download("trades_latest.db", restored)

    assert restored.read_bytes() == second.read_bytes()
    assert [(obj.name, obj.size) for obj in backend.provider.list()] == [("trades_latest.db", 7000)]


def test_missing_object_is_object_not_found_and_leaves_no_file(backend: Backend, tmp_path: Path) -> None:
    target = tmp_path / "restored.db"

    with pytest.raises(ObjectNotFound) as raised:
        backend.provider.download("backups/trades_19990101_163000.db", target)

    assert "backups/trades_19990101_163000.db" in str(raised.value)
    assert raised.value.permanent
    assert not target.exists()


def test_exists_and_delete(backend: Backend, tmp_path: Path) -> None:
    path = _file(tmp_path, "old.db", 2000)
    backend.provider.upload(path, "backups/trades_20251201_163000.db")
    assert backend.provider.exists("backups/trades_20251201_163000.db")
    assert not backend.provider.exists("backups/trades_20251202_163000.db")

    backend.provider.delete("backups/trades_20251201_163000.db")
    backend.provider.delete("backups/trades_20251201_163000.db")  # again: not an error

    assert not backend.provider.exists("backups/trades_20251201_163000.db")
    assert backend.provider.list() == []


def test_large_file_goes_up_in_parts_and_progress_totals_its_size(backend: Backend, tmp_path: Path) -> None:
    part = SMALL_PART.get(backend.name, 1 * MIB)
    backend.provider.part_size = part  # type: ignore[attr-defined]
    # At least three parts, the last one short; google-cloud-storage sends anything up
    # to 8 MiB in a single request whatever the chunk size, so go past that.
    size = max(2 * part, 8 * MIB) + 12345
    original = _file(tmp_path, "big.db", size)
    uploaded: list[int] = []

    backend.provider.upload(original, "backups/trades_20260116_163000.db", progress=uploaded.append)

    assert sum(uploaded) == size
    if backend.sent is not None:
        assert backend.parts() >= 3, backend.sent()
    downloaded: list[int] = []
    restored = tmp_path / "restored.db"
    backend.provider.download("backups/trades_20260116_163000.db", restored, progress=downloaded.append)
    assert sum(downloaded) == size
    assert restored.read_bytes() == original.read_bytes()
