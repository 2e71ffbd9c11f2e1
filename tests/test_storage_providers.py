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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from backups.providers import PROVIDERS, get_provider
from backups.providers.base import ObjectNotFound, StorageError, StorageProvider
from tests import storage_servers as servers
from tests.harness import ROOT, site_env

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


def test_missing_object_is_object_not_found_and_touches_no_local_file(
    backend: Backend, tmp_path: Path
) -> None:
    target = tmp_path / "restored.db"
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"the live database")

    with pytest.raises(ObjectNotFound) as raised:
        backend.provider.download("backups/trades_19990101_163000.db", target)

    assert "backups/trades_19990101_163000.db" in str(raised.value)
    assert raised.value.permanent
    assert not target.exists()
    with pytest.raises(ObjectNotFound):
        backend.provider.download("backups/trades_19990101_163000.db", elsewhere)
    assert elsewhere.read_bytes() == b"the live database"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["elsewhere.db"]  # no partial files


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
    # Without a progress callback too (the OCI SDK once called a None callback).
    backend.provider.upload(original, "backups/trades_20260116_163000.db")
    assert backend.provider.exists("backups/trades_20260116_163000.db")


# --- faults: bad credentials, a service that is down, missing settings -------------


def _broken(
    name: str, fault: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> list[str]:
    """Environment for provider ``name`` with ``fault`` ("credentials" or "down"); returns secrets in play."""
    down = f"http://127.0.0.1:{servers.dead_port()}"
    if name == "oracle":
        service: servers.Service = request.getfixturevalue("oci_service")
        service.extra["server"].create_bucket("backups-broken")
        config = service.extra["wrong_config"] if fault == "credentials" else service.extra["config"]
        _apply(
            monkeypatch,
            {
                "OCI_BUCKET_NAME": "backups-broken",
                "OCI_CONFIG_FILE": str(config),
                "OCI_ENDPOINT": service.url if fault == "credentials" else down,
            },
        )
        return [service.extra["wrong_key"]]
    if name == "azure":
        wrong_key = servers.b64_random_key()
        if fault == "credentials":
            url = request.getfixturevalue("azurite").url
            connection = servers.azurite_connection_string(url, wrong_key)
        else:
            connection = servers.azurite_connection_string(f"{down}/{servers.AZURITE_ACCOUNT}")
        _apply(
            monkeypatch, {"AZURE_STORAGE_CONNECTION_STRING": connection, "AZURE_CONTAINER_NAME": "backups"}
        )
        return [wrong_key, servers.AZURITE_KEY]
    if name == "aws":
        wrong_secret = servers.b64_random_key()[:40]
        if fault == "credentials":
            service = request.getfixturevalue("moto_s3")
            endpoint, key, secret = service.url, service.extra["access_key"], wrong_secret
        else:
            endpoint, key, secret = down, "AKIAEXAMPLEEXAMPLE00", wrong_secret
        _apply(
            monkeypatch,
            {
                "AWS_S3_BUCKET": "backups-broken",
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": key,
                "AWS_SECRET_ACCESS_KEY": secret,
            },
        )
        return [secret]
    if name == "gcp":
        _apply(monkeypatch, {"GCP_BUCKET_NAME": "backups-broken", "GCP_PROJECT_ID": "trading-monitor"})
        if fault == "credentials":
            # A real-shaped service account key that Google's token endpoint refuses.
            refuser = servers.start_token_refuser()
            request.addfinalizer(refuser.stop)
            key_file = tmp_path / "service-account.json"
            private_key = servers.revoked_service_account_key(key_file, refuser.url)
            monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
            return [private_key.splitlines()[1]]
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", down)
        return []
    raise AssertionError(name)


@pytest.mark.parametrize("name", CLOUD)
def test_bad_credentials_are_a_permanent_error_that_names_no_secret(
    name: str,
    request: pytest.FixtureRequest,
    clean_env: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets = _broken(name, "credentials", request, clean_env, tmp_path)
    provider = get_provider(name)
    caplog.set_level(logging.DEBUG)

    for attempt in (
        lambda: provider.upload(_file(tmp_path, "trades.db", 1000), "trades_latest.db"),
        lambda: provider.list(),
    ):
        with pytest.raises(StorageError) as raised:
            attempt()
        message = str(raised.value)
        assert raised.value.permanent, message
        assert "credentials" in message or "signature" in message, message
        assert "\n" not in message
        for secret in secrets:
            assert secret not in message
            assert secret not in caplog.text
    if name == "oracle":
        assert request.getfixturevalue("oci_service").extra["server"].rejected  # the server said no


@pytest.mark.parametrize("name", CLOUD)
def test_a_provider_that_is_down_fails_in_bounded_time_and_may_be_retried(
    name: str, request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _broken(name, "down", request, clean_env, tmp_path)
    provider = get_provider(name)
    started = time.monotonic()

    with pytest.raises(StorageError) as raised:
        provider.upload(_file(tmp_path, "trades.db", 1000), "trades_latest.db")

    # About 30 s by design (backups/providers/base.py); the bound is loose for a busy machine.
    assert time.monotonic() - started < 60
    assert not raised.value.permanent, str(raised.value)
    assert "cannot reach" in str(raised.value)


def test_a_provider_that_never_answers_gives_up_in_bounded_time(
    request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    silent = servers.start_silent_service()
    request.addfinalizer(silent.stop)
    for name in CLOUD:
        # Each provider's own variables, all pointing at the silent service; they do not overlap.
        _broken(name, "down", request, clean_env, tmp_path)
    for variable in ("OCI_ENDPOINT", "AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST"):
        clean_env.setenv(variable, silent.url)
    clean_env.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", servers.azurite_connection_string(f"{silent.url}/devstoreaccount1")
    )
    providers = {name: get_provider(name) for name in CLOUD}
    snapshot = _file(tmp_path, "trades.db", 1000)

    def attempt(provider: StorageProvider) -> tuple[float, StorageError | None]:
        started = time.monotonic()
        try:
            provider.upload(snapshot, "trades_latest.db")
        except StorageError as exc:
            return time.monotonic() - started, exc
        return time.monotonic() - started, None

    # In parallel: each takes its read timeouts (15 s) two or three times.
    with ThreadPoolExecutor(len(providers)) as pool:
        outcomes = dict(zip(providers, pool.map(attempt, providers.values()), strict=True))

    for name, (elapsed, error) in outcomes.items():
        assert error is not None, name
        assert not error.permanent, (name, str(error))
        assert "cannot reach" in str(error), (name, str(error))
        assert elapsed < 90, (name, elapsed)  # measured 30-50 s; loose for a busy machine
    assert len(silent.extra["held"]) >= len(CLOUD)  # every SDK really connected and waited


def test_an_unwritable_local_folder_is_a_storage_error(settings: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    settings.LOCAL_STORAGE_PATH = blocker / "backups"

    with pytest.raises(StorageError) as raised:
        get_provider("local").upload(_file(tmp_path, "trades.db", 100), "trades_latest.db")

    assert "cannot write" in str(raised.value)


def test_a_local_storage_path_that_is_not_a_folder_is_an_error_naming_the_variable(
    settings: Any, tmp_path: Path
) -> None:
    afile = tmp_path / "backups.tar"
    afile.write_text("a file where the folder should be")
    dangling = tmp_path / "mnt-backups"
    dangling.symlink_to(tmp_path / "unmounted")
    expected = {
        afile: f"LOCAL_STORAGE_PATH is {afile}, which is a file, not a folder: "
        "point LOCAL_STORAGE_PATH at the folder that holds the backups",
        afile / "store": f"cannot list LOCAL_STORAGE_PATH {afile / 'store'}: Not a directory",
        dangling: f"LOCAL_STORAGE_PATH is {dangling}, a link to {tmp_path / 'unmounted'}, which does not "
        "exist (a disk not mounted?)",
    }
    for path, message in expected.items():
        settings.LOCAL_STORAGE_PATH = path
        # An empty listing would pass for storage without backups.
        with pytest.raises(StorageError) as raised:
            get_provider("local").list()
        assert str(raised.value) == message
        assert raised.value.permanent


def test_a_local_storage_folder_not_made_yet_lists_empty_and_says_so(settings: Any, tmp_path: Path) -> None:
    # A new site before its first upload, which makes the folder, as azure makes its container.
    settings.LOCAL_STORAGE_PATH = tmp_path / "data" / "backups"
    provider = get_provider("local")
    assert provider.list() == []
    assert (
        provider.describe()
        == f"local folder {tmp_path / 'data' / 'backups'} (does not exist yet; LOCAL_STORAGE_PATH)"
    )

    provider.upload(_file(tmp_path, "trades.db", 100), "trades_latest.db")

    assert [obj.name for obj in provider.list()] == ["trades_latest.db"]
    assert provider.describe() == f"local folder {tmp_path / 'data' / 'backups'}"


@pytest.mark.parametrize(
    ("name", "env", "variable"),
    [
        ("oracle", {"OCI_CONFIG_FILE": "/nonexistent"}, "OCI_BUCKET_NAME"),
        ("oracle", {"OCI_BUCKET_NAME": "b", "OCI_AUTH": "password"}, "OCI_AUTH"),
        (
            "azure",
            {"AZURE_CONTAINER_NAME": "backups"},
            "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT",
        ),
        (
            "azure",
            {"AZURE_STORAGE_ACCOUNT": "tradingbackups"},
            "AZURE_STORAGE_KEY nor AZURE_STORAGE_SAS_TOKEN",
        ),
        ("aws", {"AWS_REGION": "us-east-1"}, "AWS_S3_BUCKET"),
        ("gcp", {"GCP_PROJECT_ID": "trading-monitor"}, "GCP_BUCKET_NAME"),
    ],
)
def test_a_missing_or_bad_setting_is_named_when_the_provider_is_first_used(
    name: str, env: dict[str, str], variable: str, clean_env: pytest.MonkeyPatch
) -> None:
    _apply(clean_env, env)

    with pytest.raises(StorageError) as raised:
        get_provider(name)

    assert variable in str(raised.value)
    assert raised.value.permanent


def test_an_oci_config_file_that_is_missing_is_named(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _apply(clean_env, {"OCI_BUCKET_NAME": "b", "OCI_CONFIG_FILE": str(tmp_path / "absent")})

    with pytest.raises(StorageError) as raised:
        get_provider("oracle").list()

    assert "OCI_CONFIG_FILE" in str(raised.value)
    assert raised.value.permanent


# --- choosing a provider: by environment only, with only its SDK installed ----------


_UPLOAD_WITH_CONFIGURED_PROVIDER = """
import sys
from pathlib import Path
import django
django.setup()
from backups.providers import get_provider
provider = get_provider()
provider.upload(Path(sys.argv[1]), "trades_latest.db")
print(type(provider).__name__)
"""


def test_switching_provider_needs_only_the_environment(backend: Backend, tmp_path: Path) -> None:
    snapshot = _file(tmp_path, "snapshot.db", 4321)
    env = site_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="monitorsite.settings",
        CLOUD_STORAGE_PROVIDER=backend.name,
        **backend.env,
    )

    result = subprocess.run(
        [sys.executable, "-c", _UPLOAD_WITH_CONFIGURED_PROVIDER, str(snapshot)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == PROVIDERS[backend.name].class_name
    restored = tmp_path / "restored.db"
    backend.provider.download("trades_latest.db", restored)
    assert restored.read_bytes() == snapshot.read_bytes()


_WITHOUT_CLOUD_SDKS = """
import importlib.abc, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    # As if only Django and the site's own requirements were installed.
    roots = ("oci", "azure", "boto3", "botocore", "s3transfer", "google.cloud", "google.api_core",
             "google.auth")

    def find_spec(self, name, path, target=None):
        if name.startswith(self.roots):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
import django
django.setup()
from django.core.management import call_command
call_command("check")
from backups.providers import StorageError, get_provider
print("local:", get_provider().describe())
for name in ("oracle", "azure", "aws", "gcp"):
    try:
        get_provider(name)
    except StorageError as exc:
        print(f"{name}: {exc}")
"""


def test_the_site_starts_without_cloud_sdks_and_a_missing_sdk_names_its_package(tmp_path: Path) -> None:
    env = site_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="monitorsite.settings",
        CLOUD_STORAGE_PROVIDER="local",
        LOCAL_STORAGE_PATH=str(tmp_path / "store"),
    )

    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CLOUD_SDKS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines() if ": " in line)
    assert lines["local"] == f"local folder {tmp_path / 'store'} (does not exist yet; LOCAL_STORAGE_PATH)"
    packages = {name: entry.pip_package for name, entry in PROVIDERS.items() if entry.pip_package}
    assert set(packages) == set(CLOUD)
    for name, package in packages.items():
        assert f"pip install {package}" in lines[name]


# --- what only one provider does ------------------------------------------------------


def _oracle(
    clean_env: pytest.MonkeyPatch, service: servers.Service, **extra: str
) -> tuple[StorageProvider, str]:
    bucket = _unique("backups-")
    service.extra["server"].create_bucket(bucket)
    env = {
        "OCI_BUCKET_NAME": bucket,
        "OCI_CONFIG_FILE": str(service.extra["config"]),
        "OCI_ENDPOINT": service.url,
    }
    _apply(clean_env, {**env, **extra})
    return get_provider("oracle"), bucket


def test_the_oci_stand_in_refuses_unsigned_and_tampered_requests(oci_service: servers.Service) -> None:
    server = oci_service.extra["server"]
    server.create_bucket("guarded")
    rejected_before = len(server.rejected)

    unsigned = requests.get(f"{oci_service.url}/n/{server.namespace}/b/guarded/o", timeout=10)

    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "NotAuthenticated"

    import oci

    config = oci.config.from_file(str(oci_service.extra["config"]))
    signer = oci.signer.Signer.from_config(config)
    signed = requests.Request("GET", f"{oci_service.url}/n/{server.namespace}/b/guarded/o").prepare()
    signer(signed)
    session = requests.Session()
    assert session.send(signed, timeout=10).status_code == 200
    # The same signature on another path: (request-target) is part of what is signed.
    signed.url = f"{oci_service.url}/n/{server.namespace}/b/guarded/o?prefix=x"
    assert session.send(signed, timeout=10).status_code == 401
    assert len(server.rejected) == rejected_before + 2


def test_oci_namespace_is_looked_up_when_not_set(
    clean_env: pytest.MonkeyPatch, oci_service: servers.Service
) -> None:
    server = oci_service.extra["server"]
    provider, _ = _oracle(clean_env, oci_service)
    lookups = server.count("GET", "GetNamespace")

    provider.list()
    provider.list()

    assert provider.namespace == server.namespace  # type: ignore[attr-defined]
    assert server.count("GET", "GetNamespace") == lookups + 1  # once per provider


def test_oci_wrong_namespace_names_the_variable(
    clean_env: pytest.MonkeyPatch, oci_service: servers.Service
) -> None:
    provider, _ = _oracle(clean_env, oci_service, OCI_NAMESPACE="someoneelse")

    with pytest.raises(StorageError) as raised:
        provider.list()

    assert "OCI_NAMESPACE" in str(raised.value)
    assert raised.value.permanent


# local makes its folder, and azure its container, on the first upload.
@pytest.mark.parametrize(
    ("name", "variable"),
    [("oracle", "OCI_BUCKET_NAME"), ("aws", "AWS_S3_BUCKET"), ("gcp", "GCP_BUCKET_NAME")],
)
def test_a_missing_bucket_names_the_variable(
    name: str, variable: str, request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _backend(name, request, clean_env, tmp_path)
    clean_env.setenv(variable, "no-such-bucket-here")
    provider = get_provider(name)

    for attempt in (
        lambda: provider.upload(_file(tmp_path, "trades.db", 100), "trades_latest.db"),
        lambda: provider.download("trades_latest.db", tmp_path / "restored.db"),
        lambda: provider.list(),
    ):
        with pytest.raises(StorageError) as raised:
            attempt()
        assert variable in str(raised.value)
        assert "no-such-bucket-here" in str(raised.value)
        assert raised.value.permanent
        assert not isinstance(raised.value, ObjectNotFound)


def test_a_failed_oci_multipart_upload_is_aborted_and_stores_nothing(
    clean_env: pytest.MonkeyPatch, oci_service: servers.Service, tmp_path: Path
) -> None:
    server = oci_service.extra["server"]
    provider, bucket = _oracle(clean_env, oci_service)
    provider.part_size = 1 * MIB  # type: ignore[attr-defined]
    server.faults["CommitMultipartUpload"] = 10  # more than the provider's retries
    commits = server.count("POST", "CommitMultipartUpload")

    with pytest.raises(StorageError) as raised:
        provider.upload(_file(tmp_path, "big.db", 3 * MIB), "trades_latest.db")

    server.faults.clear()
    assert not raised.value.permanent  # a 503 is worth another try next cycle
    assert server.count("POST", "CommitMultipartUpload") - commits == 3  # bounded retries
    assert server.buckets[bucket].uploads == {}  # aborted: no parts left behind
    assert not provider.exists("trades_latest.db")


def test_azure_creates_its_container_on_first_upload_and_accepts_azure_container(
    clean_env: pytest.MonkeyPatch, azurite: servers.Service, tmp_path: Path
) -> None:
    container = _unique("fresh-")
    _apply(
        clean_env,
        {
            "AZURE_STORAGE_CONNECTION_STRING": servers.azurite_connection_string(azurite.url),
            "AZURE_CONTAINER": container,
        },
    )
    provider = get_provider("azure")
    assert provider.list() == []  # no container yet: nothing stored, not an error
    assert not provider.exists("trades_latest.db")
    provider.delete("trades_latest.db")

    provider.upload(_file(tmp_path, "trades.db", 100), "trades_latest.db")

    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(servers.azurite_connection_string(azurite.url))
    assert [blob.name for blob in service.get_container_client(container).list_blobs()] == [
        "trades_latest.db"
    ]


@pytest.mark.parametrize("credential", ["key", "sas"])
def test_azure_account_with_key_or_sas_token_targets_the_account(
    credential: str, clean_env: pytest.MonkeyPatch
) -> None:
    secret = (
        servers.b64_random_key() if credential == "key" else "sv=2024-08-04&ss=b&srt=co&sp=rwdlc&sig=abc%3D"
    )
    variable = "AZURE_STORAGE_KEY" if credential == "key" else "AZURE_STORAGE_SAS_TOKEN"
    _apply(clean_env, {"AZURE_STORAGE_ACCOUNT": "tradingbackups", variable: secret})

    provider = get_provider("azure")

    assert provider.describe() == "Azure container backups in account tradingbackups"
    assert secret not in provider.describe()
    container = provider._container  # type: ignore[attr-defined]
    assert container.url.startswith("https://tradingbackups.blob.core.windows.net/backups")
    if credential == "key":
        assert container.credential.account_key == secret
    else:
        assert "sig=abc" in container.url
