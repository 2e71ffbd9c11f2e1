"""A loopback stand-in for OCI Object Storage, for driving the real oci SDK in tests.

No emulator of Oracle's service exists, so this implements, in memory, the REST
paths the SDK uses for objects (put, get, head, delete, list with ``start`` /
``limit`` / ``prefix`` / ``fields`` and ``nextStartWith`` paging) and multipart
uploads (create, upload part, commit, abort, list uploads, list parts), answering
with the service's documented status codes, headers and error bodies.

Like the service, it authenticates every request: the ``Authorization`` header must
carry a draft-cavage HTTP signature (rsa-sha256, version 1) over at least ``date``,
``(request-target)`` and ``host`` (plus ``content-length``, ``content-type`` and
``x-content-sha256`` for requests with a JSON body), made with the private key whose
public half is registered for the ``keyId``, with a ``date`` within five minutes.
Anything else gets ``401 NotAuthenticated``.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.harness import POLL_SECONDS

MAX_LIST_LIMIT = 1000
CLOCK_SKEW = dt.timedelta(minutes=5)
_GENERIC_HEADERS = ("date", "(request-target)", "host")
_BODY_HEADERS = ("content-length", "content-type", "x-content-sha256")
_SIGNATURE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class StoredObject:
    data: bytes
    modified: dt.datetime
    etag: str
    md5: str  # base64, or the multipart form "<base64>-<parts>"
    multipart: bool = False


@dataclass
class MultipartUpload:
    upload_id: str
    object: str
    created: dt.datetime
    parts: dict[int, tuple[bytes, str, str]] = field(default_factory=dict)  # num -> (data, etag, md5)


@dataclass
class Bucket:
    objects: dict[str, StoredObject] = field(default_factory=dict)
    uploads: dict[str, MultipartUpload] = field(default_factory=dict)


class ServiceFault(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ObjectStorageServer:
    """The service: namespaces of buckets of objects, plus what each request looked like."""

    def __init__(self, namespace: str = "testnamespace"):
        self.namespace = namespace
        self.buckets: dict[str, Bucket] = {}
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []  # (method, operation, query)
        self.rejected: list[str] = []  # why each 401 was given
        # operation -> how many more times it answers 503 ServiceUnavailable (fault injection)
        self.faults: dict[str, int] = {}
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- set-up, as an administrator would in the console
    def add_key(self, key_id: str, public_key: rsa.RSAPublicKey) -> None:
        self.keys[key_id] = public_key

    def create_bucket(self, name: str) -> None:
        with self.lock:
            self.buckets.setdefault(name, Bucket())

    def count(self, method: str, operation: str) -> int:
        with self.lock:
            return sum(1 for m, op, _ in self.requests if m == method and op == operation)

    # --- lifecycle
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (_Handler,), {"service": self})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(POLL_SECONDS,), name="oci-object-storage", daemon=True
        )
        self._thread.start()
        return f"http://{host}:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            assert self._thread is not None
            self._thread.join(timeout=10)

    # --- authentication
    def authenticate(
        self, method: str, target: str, headers: dict[str, str], body: bytes, body_signed: bool
    ) -> None:
        authorization = headers.get("authorization", "")
        if not authorization.startswith("Signature "):
            self._reject("no Signature authorization header")
        params = dict(_SIGNATURE_PARAM.findall(authorization))
        if params.get("version") != "1" or params.get("algorithm") != "rsa-sha256":
            self._reject(
                f"unsupported signature version/algorithm {params.get('version')}/{params.get('algorithm')}"
            )
        public_key = self.keys.get(params.get("keyId", ""))
        if public_key is None:
            self._reject("unknown keyId")
        signed = params.get("headers", "date").lower().split()
        required = _GENERIC_HEADERS + (_BODY_HEADERS if body_signed else ())
        missing = [name for name in required if name not in signed]
        if missing:
            self._reject(f"required headers not signed: {missing}")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
            elif name in headers:
                lines.append(f"{name}: {headers[name]}")
            else:
                self._reject(f"signed header {name} not in the request")
        try:
            public_key.verify(  # type: ignore[union-attr]
                base64.b64decode(params.get("signature", "")),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            self._reject("signature does not verify")
        sent = email.utils.parsedate_to_datetime(headers["date"])
        if abs(dt.datetime.now(dt.UTC) - sent) > CLOCK_SKEW:
            self._reject("date is more than five minutes off")
        if "x-content-sha256" in signed:
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if headers["x-content-sha256"] != digest:
                self._reject("x-content-sha256 does not match the body")
            if int(headers["content-length"]) != len(body):
                self._reject("content-length does not match the body")

    def _reject(self, why: str) -> None:
        self.rejected.append(why)
        raise ServiceFault(
            401,
            "NotAuthenticated",
            "The required information to complete authentication was not provided or was incorrect.",
        )

    def bucket(self, namespace: str, name: str) -> Bucket:
        if namespace != self.namespace:
            raise ServiceFault(
                404, "NamespaceNotFound", f"You do not have authorization to access namespace {namespace}"
            )
        try:
            return self.buckets[name]
        except KeyError:
            raise ServiceFault(
                404,
                "BucketNotFound",
                f"Either the bucket named '{name}' does not exist in the namespace '{namespace}' "
                "or you are not authorized to access it",
            ) from None


class _Handler(BaseHTTPRequestHandler):
    service: ObjectStorageServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        segments = [unquote(part) for part in url.path.split("/")[1:]]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments = segments[:-1]
        headers = {name.lower(): value for name, value in self.headers.items()}
        operation = _operation(method, segments, query)
        with self.service.lock:
            self.service.requests.append((method, operation, query))
        try:
            # PutObject and UploadPart carry the object's bytes, which the SDK does
            # not hash into the signature; every other PUT/POST must sign its body.
            body_signed = method in ("PUT", "POST") and operation not in ("PutObject", "UploadPart")
            self.service.authenticate(method, self.path, headers, body, body_signed)
            with self.service.lock:
                if self.service.faults.get(operation, 0) > 0:
                    self.service.faults[operation] -= 1
                    raise ServiceFault(503, "ServiceUnavailable", "The service is temporarily unavailable")
                status, answer_headers, payload = self._dispatch(
                    method, operation, segments, query, headers, body
                )
        except ServiceFault as fault:
            status = fault.status
            answer_headers = {"Content-Type": "application/json"}
            payload = json.dumps({"code": fault.code, "message": fault.message}).encode()
        self.send_response(status)
        answer_headers.setdefault("opc-request-id", uuid.uuid4().hex)
        # HEAD tells the length of what GET would send, and sends nothing.
        length = answer_headers.pop("Content-Length", str(len(payload)))
        for name, value in answer_headers.items():
            self.send_header(name, value)
        if method == "HEAD" or status in (204, 304):
            self.send_header("Content-Length", length if method == "HEAD" else "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(
        self,
        method: str,
        operation: str,
        segments: list[str],
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        service = self.service
        if operation == "GetNamespace":
            return _json(service.namespace)
        if operation == "Unknown":
            raise ServiceFault(404, "NotFound", f"{method} {self.path} is not an Object Storage operation")
        namespace, bucket_name = segments[1], segments[3]
        bucket = service.bucket(namespace, bucket_name)
        name = segments[5] if len(segments) > 5 else ""
        if operation in ("HeadBucket", "GetBucket"):
            return (
                200,
                {"ETag": f"bucket-{bucket_name}"},
                json.dumps({"name": bucket_name, "namespace": namespace}).encode(),
            )
        if operation == "ListObjects":
            return _json(_list_objects(bucket, query))
        if operation == "PutObject":
            _check_md5(headers, body)
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            stored = StoredObject(body, _now(), uuid.uuid4().hex, md5)
            bucket.objects[name] = stored
            return (
                200,
                {"ETag": stored.etag, "opc-content-md5": md5, "last-modified": _http_date(stored.modified)},
                b"",
            )
        if operation in ("GetObject", "HeadObject", "DeleteObject"):
            stored = bucket.objects.get(name)
            if stored is None:
                raise ServiceFault(
                    404, "ObjectNotFound", f"The object '{name}' was not found in the bucket '{bucket_name}'"
                )
            if operation == "DeleteObject":
                del bucket.objects[name]
                return 204, {}, b""
            answer = {
                "ETag": stored.etag,
                "Content-Type": "application/octet-stream",
                "last-modified": _http_date(stored.modified),
                "Content-Length": str(len(stored.data)),
                "opc-multipart-md5" if stored.multipart else "Content-MD5": stored.md5,
            }
            return 200, answer, stored.data
        if operation == "CreateMultipartUpload":
            details = json.loads(body or b"{}")
            if not details.get("object"):
                raise ServiceFault(400, "InvalidParameter", "object is required")
            upload = MultipartUpload(uuid.uuid4().hex, details["object"], _now())
            bucket.uploads[upload.upload_id] = upload
            return _json(_upload_json(upload, namespace, bucket_name))
        if operation == "ListMultipartUploads":
            return _json([_upload_json(u, namespace, bucket_name) for u in bucket.uploads.values()])
        upload = bucket.uploads.get(query.get("uploadId", [""])[0])
        if upload is None or upload.object != name:
            raise ServiceFault(
                404, "NoSuchUpload", "The upload ID does not exist or has been committed or aborted"
            )
        if operation == "UploadPart":
            number = int(query["uploadPartNum"][0])
            if not 1 <= number <= 10000:
                raise ServiceFault(400, "InvalidUploadPart", "uploadPartNum must be between 1 and 10000")
            _check_md5(headers, body)
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            etag = uuid.uuid4().hex
            upload.parts[number] = (body, etag, md5)
            return 200, {"ETag": etag, "opc-content-md5": md5}, b""
        if operation == "ListMultipartUploadParts":
            parts = [
                {"partNumber": number, "etag": etag, "md5": md5, "size": len(data)}
                for number, (data, etag, md5) in sorted(upload.parts.items())
            ]
            return _json(parts)
        if operation == "AbortMultipartUpload":
            del bucket.uploads[upload.upload_id]
            return 204, {}, b""
        if operation == "CommitMultipartUpload":
            details = json.loads(body)
            chosen = sorted(details.get("partsToCommit", []), key=lambda part: part["partNum"])
            if not chosen:
                raise ServiceFault(400, "InvalidParameter", "partsToCommit must not be empty")
            data, digests = [], []
            for part in chosen:
                stored_part = upload.parts.get(part["partNum"])
                if stored_part is None or stored_part[1] != part["etag"]:
                    raise ServiceFault(
                        400, "InvalidUploadPart", f"part {part['partNum']} was not uploaded with that etag"
                    )
                data.append(stored_part[0])
                digests.append(hashlib.md5(stored_part[0]).digest())
            md5 = f"{base64.b64encode(hashlib.md5(b''.join(digests)).digest()).decode()}-{len(chosen)}"
            stored = StoredObject(b"".join(data), _now(), uuid.uuid4().hex, md5, multipart=True)
            bucket.objects[upload.object] = stored
            del bucket.uploads[upload.upload_id]
            return (
                200,
                {"ETag": stored.etag, "opc-multipart-md5": md5, "last-modified": _http_date(stored.modified)},
                b"",
            )
        raise ServiceFault(405, "MethodNotAllowed", f"{method} is not allowed here")


def _operation(method: str, segments: list[str], query: dict[str, list[str]]) -> str:
    """The API operation a request names, from its method and path (``/n/{ns}/b/{bucket}/...``)."""
    if segments == ["n"] or segments == ["n", ""]:
        return "GetNamespace" if method == "GET" else "Unknown"
    if len(segments) < 4 or segments[0] != "n" or segments[2] != "b":
        return "Unknown"
    if len(segments) == 4:
        return {"HEAD": "HeadBucket", "GET": "GetBucket"}.get(method, "Unknown")
    kind = segments[4]
    if kind == "o" and len(segments) == 5:
        return "ListObjects" if method == "GET" else "Unknown"
    if kind == "o" and len(segments) == 6:
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            method, "Unknown"
        )
    if kind == "u" and len(segments) == 5:
        return {"POST": "CreateMultipartUpload", "GET": "ListMultipartUploads"}.get(method, "Unknown")
    if kind == "u" and len(segments) == 6:
        if method == "PUT" and "uploadPartNum" in query:
            return "UploadPart"
        return {
            "POST": "CommitMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListMultipartUploadParts",
        }.get(method, "Unknown")
    return "Unknown"


def _list_objects(bucket: Bucket, query: dict[str, list[str]]) -> dict[str, Any]:
    prefix = query.get("prefix", [""])[0]
    start = query.get("start", [""])[0]
    limit = int(query.get("limit", [str(MAX_LIST_LIMIT)])[0])
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ServiceFault(400, "InvalidParameter", f"limit must be between 1 and {MAX_LIST_LIMIT}")
    fields = {f.strip().lower() for f in query.get("fields", ["name"])[0].split(",")}
    names = sorted(name for name in bucket.objects if name.startswith(prefix) and name >= start)
    page, rest = names[:limit], names[limit:]
    objects = []
    for name in page:
        stored = bucket.objects[name]
        summary: dict[str, Any] = {"name": name}
        if "size" in fields:
            summary["size"] = len(stored.data)
        if "md5" in fields:
            summary["md5"] = stored.md5
        if "etag" in fields:
            summary["etag"] = stored.etag
        if "timecreated" in fields:
            summary["timeCreated"] = _iso(stored.modified)
        if "timemodified" in fields:
            summary["timeModified"] = _iso(stored.modified)
        objects.append(summary)
    answer: dict[str, Any] = {"objects": objects, "prefixes": []}
    if rest:
        answer["nextStartWith"] = rest[0]
    return answer


def _check_md5(headers: dict[str, str], body: bytes) -> None:
    sent = headers.get("content-md5")
    if sent and sent != base64.b64encode(hashlib.md5(body).digest()).decode():
        raise ServiceFault(
            400, "UnmatchedContentMD5", "The computed MD5 hash does not match the Content-MD5 header"
        )


def _upload_json(upload: MultipartUpload, namespace: str, bucket: str) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "bucket": bucket,
        "object": upload.object,
        "uploadId": upload.upload_id,
        "timeCreated": _iso(upload.created),
        "storageTier": "Standard",
    }


def _json(value: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(value).encode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)
