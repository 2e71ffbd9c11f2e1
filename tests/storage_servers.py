"""Storage services on loopback for the provider tests, each started as users run it.

Azurite (npm, under ``tests/emulators``), moto's S3 server and gcp-storage-emulator
run as child processes on free ports; the OCI stand-in (``oci_object_storage``) runs
in a thread. Each ``start_*`` returns once the service answers and registers how to
stop it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness import POLL_SECONDS, free_port
from tests.oci_object_storage import ObjectStorageServer

HERE = Path(__file__).resolve().parent
EMULATORS = HERE / "emulators"
VENV_BIN = Path(sys.executable).parent
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 90  # two cores shared by several engineers: be generous


def dead_port() -> int:
    """A loopback port with nothing listening on it."""
    return free_port()


@dataclass
class Service:
    """A running service: where it listens and how to stop it."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _stop: Any = None

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
        if self.process is not None and self.process.poll() is None:
            # Signal the process group: npm/node wrappers may have children.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def _spawn(
    command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    handle = open(log, "wb")
    try:
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env or os.environ.copy(),
            cwd=cwd or log.parent,
            start_new_session=True,
        )
    finally:
        handle.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode}:\n{log.read_text()[-2000:]}"
            )
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"{process.args[0]} did not listen on {port} within {START_TIMEOUT}s:\n{log.read_text()[-2000:]}"
    )


# --- Azure: Azurite ------------------------------------------------------------


def start_azurite(tmp: Path) -> Service:
    binary = EMULATORS / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        raise RuntimeError(
            f"{binary} is missing: run `npm ci --prefix tests/emulators` (scripts/test.sh does it)"
        )
    port = free_port()
    log = tmp / "azurite.log"
    process = _spawn(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            # The SDK may speak a newer API version than this Azurite knows.
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ],
        log,
        cwd=tmp,
    )
    _wait_for_port(port, process, log)
    url = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    return Service(url, process, log)


def azurite_connection_string(url: str, key: str = AZURITE_KEY) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};BlobEndpoint={url};"


# --- AWS: moto's server -----------------------------------------------------


def start_moto(tmp: Path) -> Service:
    """moto's S3 with authentication on: only the IAM user made here may use it."""
    port = free_port()
    log = tmp / "moto.log"
    env = os.environ.copy()
    # The first three requests (making the user, its key and its policy) need no
    # credentials; every later request is checked against IAM like real AWS.
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
    process = _spawn([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log, env)
    _wait_for_port(port, process, log)
    url = f"http://127.0.0.1:{port}"

    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam.create_user(UserName="backup-writer")
    key = iam.create_access_key(UserName="backup-writer")["AccessKey"]
    iam.put_user_policy(
        UserName="backup-writer",
        PolicyName="backups",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    return Service(
        url, process, log, {"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"]}
    )


# --- GCP: gcp-storage-emulator ---------------------------------------------------


def start_gcs_emulator(tmp: Path) -> Service:
    port = free_port()
    log = tmp / "gcs.log"
    process = _spawn(
        [
            str(VENV_BIN / "gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
        ],
        log,
    )
    _wait_for_port(port, process, log)
    return Service(f"http://127.0.0.1:{port}", process, log)


class _TokenRefusingHandler(BaseHTTPRequestHandler):
    """Google's OAuth token endpoint answering a key it does not know."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_token_refuser() -> Service:
    server = HTTPServer(("127.0.0.1", 0), _TokenRefusingHandler)
    thread = Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return Service(f"http://127.0.0.1:{server.server_address[1]}/token", _stop=stop)


def revoked_service_account_key(path: Path, token_uri: str) -> str:
    """A well-formed service account key file that the token endpoint will refuse; returns its private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "trading-monitor",
                "private_key_id": "0123456789abcdef",
                "private_key": pem,
                "client_email": "backups@trading-monitor.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": token_uri,
            }
        )
    )
    return pem


# --- Oracle: the loopback Object Storage ----------------------------------------


def _write_key(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key


def _fingerprint(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ":".join(f"{byte:02x}" for byte in hashlib.md5(der).digest())


def write_oci_config(path: Path, key_file: Path, fingerprint: str, profile: str = "DEFAULT") -> None:
    path.write_text(
        f"[{profile}]\n"
        "user=ocid1.user.oc1..aaaaaaaabackupwriter\n"
        f"fingerprint={fingerprint}\n"
        "tenancy=ocid1.tenancy.oc1..aaaaaaaatradingmonitor\n"
        "region=us-ashburn-1\n"
        f"key_file={key_file}\n"
    )


def start_oci(tmp: Path) -> Service:
    """The OCI stand-in, an API signing key registered with it, and a config file for the SDK."""
    key = _write_key(tmp / "oci_api_key.pem")
    fingerprint = _fingerprint(key)
    server = ObjectStorageServer()
    server.add_key(
        f"ocid1.tenancy.oc1..aaaaaaaatradingmonitor/ocid1.user.oc1..aaaaaaaabackupwriter/{fingerprint}",
        key.public_key(),
    )
    url = server.start()
    write_oci_config(tmp / "oci_config", tmp / "oci_api_key.pem", fingerprint)
    # Same user and fingerprint, another private key: what a rotated or mixed-up key looks like.
    _write_key(tmp / "oci_wrong_key.pem")
    write_oci_config(tmp / "oci_config_wrong_key", tmp / "oci_wrong_key.pem", fingerprint)
    return Service(
        url,
        extra={
            "server": server,
            "config": tmp / "oci_config",
            "wrong_config": tmp / "oci_config_wrong_key",
            "wrong_key": (tmp / "oci_wrong_key.pem").read_text(),
        },
        _stop=server.stop,
    )


def b64_random_key() -> str:
    return base64.b64encode(os.urandom(64)).decode()


# --- a service that accepts connections and never answers -------------------------


def start_silent_service() -> Service:
    """A TCP listener that accepts every connection and never sends a byte (a hung service)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            held.append(connection)

    Thread(target=accept, daemon=True).start()

    def stop() -> None:
        listener.close()
        for connection in held:
            connection.close()

    return Service(f"http://127.0.0.1:{listener.getsockname()[1]}", extra={"held": held}, _stop=stop)
