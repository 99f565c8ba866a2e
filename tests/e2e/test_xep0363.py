"""XEP-0363 signed PUT and slot downloads against the real gunicorn+gevent server."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

import jwt
import pytest
import requests
from sqlalchemy import func, select, update

from hmacfs.db import make_engine
from hmacfs.models import Blob, File, UploadTask
from hmacfs.upload_signing import SignedUpload, sign_upload
from hmacfs.xep0363.signing import SignedRequest, signed_query
from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

SECRET = "topsecret-current"
OLD_SECRET = "secret"  # the public vectors' key, kept as a previous secret
V_VECTOR = "175d68df5d653fb2568ed853013d21cf38765567b25f9725e89c420d0cc71409"
V2_VECTOR = "621642a73b7495fcc47ca73a1ab009224d14a80b006b213b7ccb00152b09c902"
MAX = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    return start_server(
        security={"secret": SECRET, "previous_secrets": [OLD_SECRET]},
        uploads={"max_upload_size": MAX, "allowed_extensions": [".jpg", ".txt", ".bin", ".png"]},
        xep0363={"cors_allowed_origins": ["https://web.example"]},
    )


def slot_url(
    server: LiveServer,
    path: str,
    size: int,
    *,
    protocol: str = "v2",
    content_type: str = "application/octet-stream",
    secret: str = SECRET,
    expires: int = 0,
    quoted: str | None = None,
) -> str:
    request = SignedRequest("PUT", path, f"/upload/{path}", size, content_type)
    query = signed_query(secret, protocol, request, expires=expires or int(time.time()) + 60)
    return f"{server.url}/upload/{quoted or quote(path, safe='/')}?{urlencode(query)}"


def put(server: LiveServer, path: str, body: bytes, **kwargs: object) -> requests.Response:
    content_type = str(kwargs.get("content_type", "application/octet-stream"))
    url = slot_url(server, path, len(body), **kwargs)  # type: ignore[arg-type]
    return requests.put(url, data=body, headers={"Content-Type": content_type}, timeout=30)


def raw_request(server: LiveServer, head: str, body: bytes = b"", *, shut: bool = False) -> bytes:
    """Send bytes as they are (no client normalisation) and return the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n\r\n" not in answer.split(b"HTTP/1.1 100 Continue\r\n\r\n")[-1]:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def status_of(answer: bytes) -> int:
    final = answer.split(b"HTTP/1.1 100 Continue\r\n\r\n")[-1]
    return int(final.split(b" ", 2)[1])


def _db_count(server: LiveServer, statement: object) -> int:
    engine = make_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())  # type: ignore[call-overload]
    finally:
        engine.dispose()


# -- protocols ------------------------------------------------------------------
def test_public_vectors_through_rotation(server: LiveServer) -> None:
    body = os.urandom(1048576)
    url = f"{server.url}/upload/foo/bar.jpg"
    headers = {"Content-Type": "image/jpeg"}
    assert requests.put(f"{url}?v={V_VECTOR}0", data=body, headers=headers, timeout=30).status_code == 403
    assert requests.put(f"{url}?v={V_VECTOR}", data=body, headers=headers, timeout=30).status_code == 201
    # Same path again: the v2 vector is accepted, then the slot is taken.
    again = requests.put(f"{url}?v2={V2_VECTOR}", data=body, headers=headers, timeout=30)
    assert again.status_code == 409
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == body
    assert got.headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    tasks = select(func.count()).select_from(UploadTask).where(UploadTask.protocol == "xep0363")
    assert _db_count(server, tasks) >= 1


@pytest.mark.parametrize("protocol", ["v", "v2", "token", "v3"])
def test_each_protocol(server: LiveServer, protocol: str) -> None:
    body = f"hello {protocol}".encode()
    response = put(server, f"{protocol}-slot/file.txt", body, protocol=protocol, content_type="text/plain")
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    assert requests.get(f"{server.url}/upload/{protocol}-slot/file.txt", timeout=10).content == body


def test_empty_file(server: LiveServer) -> None:
    assert put(server, "empty/zero.txt", b"").status_code == 201
    got = requests.get(f"{server.url}/upload/empty/zero.txt", timeout=10)
    assert got.status_code == 200 and got.content == b""
    ranged = requests.get(f"{server.url}/upload/empty/zero.txt", headers={"Range": "bytes=0-"}, timeout=10)
    assert ranged.status_code == 416 and ranged.headers["Content-Range"] == "bytes */0"


def test_v3_expired_and_wrong_secret(server: LiveServer) -> None:
    expired = put(server, "v3old/a.txt", b"x", protocol="v3", expires=int(time.time()) - 5)
    assert expired.status_code == 403 and expired.json()["code"] == "SIGNATURE_EXPIRED"
    assert put(server, "wrong/a.txt", b"x", secret="nope").status_code == 403
    missing = requests.put(f"{server.url}/upload/nosig/a.txt", data=b"x", timeout=10)
    assert missing.status_code == 403 and missing.json()["code"] == "MISSING_SIGNATURE"


def _file_share_token(secret: str, slot: str, name: str, size: int, filetype: str) -> str:
    claims = {"slot": slot, "filename": name, "filesize": size, "filetype": filetype}
    return jwt.encode({**claims, "exp": int(time.time()) + 300}, secret, algorithm="HS256")


def test_prosody_file_share_jwt(server: LiveServer) -> None:
    body = b"jwt upload"
    url = f"{server.url}/upload/jwtslot/photo.png"
    for secret, expected in (("wrong", 403), (OLD_SECRET, 201)):
        token = _file_share_token(secret, "jwtslot", "photo.png", len(body), "image/png")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/png"}
        assert requests.put(url, data=body, headers=headers, timeout=10).status_code == expected
    head = requests.head(url, timeout=10)
    assert head.headers["Content-Disposition"] == 'inline; filename="photo.png"'


# -- status codes -------------------------------------------------------------------
def test_length_required_and_too_large(server: LiveServer) -> None:
    url = slot_url(server, "big/a.bin", 5)
    chunked = requests.put(url, data=iter([b"12345"]), timeout=10)
    assert chunked.status_code == 411
    target = urlsplit(slot_url(server, "big/b.bin", MAX + 1)).path + "?" + urlsplit(url).query
    head = f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX + 1}\r\nExpect: 100-continue"
    # The 413 arrives although not one byte of the body was sent.
    assert status_of(raw_request(server, head)) == 413


def test_bad_paths_and_extensions(server: LiveServer) -> None:
    for target in ("/upload/a/../b.txt", "/upload/a/%2e%2e/b.txt", "/upload/a//b.txt", "/upload/a/b%00.txt"):
        head = f"PUT {target}?v=00 HTTP/1.1\r\nHost: x\r\nContent-Length: 1"
        assert status_of(raw_request(server, head, b"x")) == 400, target
    refused = put(server, "ext/evil.exe", b"MZ")
    assert refused.status_code == 400 and refused.json()["code"] == "EXTENSION_NOT_ALLOWED"


def test_taken_path_of_a_large_upload_is_refused_before_the_body(server: LiveServer) -> None:
    size = 1024 * 1024 + 10
    assert put(server, "early/a.bin", os.urandom(size)).status_code == 201
    url = urlsplit(slot_url(server, "early/a.bin", size))
    head = f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\nExpect: 100-continue"
    assert status_of(raw_request(server, head)) == 409


def test_uploads_are_counted_in_metrics(server: LiveServer) -> None:
    assert put(server, "metrics/a.txt", b"counted").status_code == 201
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'hmacfs_uploads_total{protocol="xep0363"}' in text
    assert "hmacfs_download_bytes_total" in text


def test_short_body_stores_nothing(server: LiveServer) -> None:
    url = urlsplit(slot_url(server, "short/a.bin", 1000))
    head = f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000"
    assert status_of(raw_request(server, head, b"only ten b", shut=True)) == 400
    assert requests.get(f"{server.url}/upload/short/a.bin", timeout=10).status_code == 404
    assert _db_count(server, select(func.count()).select_from(File).where(File.path == "short/a.bin")) == 0
    assert list((server.workdir / "storage" / "parts").glob("*.part")) == []


def test_pipelined_puts_on_one_connection(server: LiveServer) -> None:
    """Bodies are read from the socket directly: the bytes of the next request, sent
    in the same packets, must stay for it (keep-alive and pipelining intact)."""
    bodies = {"pipe/one.bin": os.urandom(1024 * 1024 + 4099), "pipe/two.bin": b"second body"}
    wire = b""
    for path, body in bodies.items():
        url = urlsplit(slot_url(server, path, len(body)))
        head = f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        wire += head.encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(wire)
        answers = b""
        while answers.count(b"HTTP/1.1 201") < 2:
            chunk = sock.recv(65536)
            assert chunk, answers
            answers += chunk
    for path, body in bodies.items():
        assert requests.get(f"{server.url}/upload/{path}", timeout=10).content == body


def test_concurrent_puts_to_one_path(server: LiveServer) -> None:
    body = os.urandom(256 * 1024)
    statuses: list[int] = []

    def upload(content: bytes) -> None:
        url = urlsplit(slot_url(server, "race/same.bin", len(content)))
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.putrequest("PUT", f"{url.path}?{url.query}")
        connection.putheader("Content-Length", str(len(content)))
        connection.endheaders()
        for offset in range(0, len(content), 32768):
            connection.send(content[offset : offset + 32768])
            time.sleep(0.01)
        statuses.append(connection.getresponse().status)

    threads = [
        threading.Thread(target=upload, args=(body,)),
        threading.Thread(target=upload, args=(body[::-1],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201, 409]
    assert list((server.workdir / "storage" / "parts").glob("*.part")) == []


# -- names -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("enc/été à+b.txt", "enc/%C3%A9t%C3%A9%20%C3%A0+b.txt"),
        ("enc2/été.txt", "enc2/%c3%a9t%c3%a9.txt"),
        ("enc3/a+b c.txt", "enc3/a%2Bb%20c.txt"),
    ],
)
def test_percent_encoding(server: LiveServer, path: str, quoted: str) -> None:
    body = path.encode()
    url = slot_url(server, path, len(body), quoted=quoted)
    assert requests.put(url, data=body, timeout=10).status_code == 201
    got = requests.get(f"{server.url}/upload/{quote(path, safe='/')}", timeout=10)
    assert got.status_code == 200 and got.content == body
    name = path.rsplit("/", 1)[1]
    expected = f"filename*=UTF-8''{quote(name, safe='')}" if not name.isascii() else f'filename="{name}"'
    assert expected in got.headers["Content-Disposition"]


# -- dedup, expiry, CLI -------------------------------------------------------------
def test_same_content_is_stored_once_and_expires(server: LiveServer) -> None:
    body = os.urandom(4096)
    assert put(server, "dup1/a.bin", body).status_code == 201
    assert put(server, "dup2/a.bin", body).status_code == 201
    digest = hashlib.sha256(body).hexdigest()
    assert _db_count(server, select(func.count()).select_from(Blob).where(Blob.sha256 == digest)) == 1
    blob_files = list((server.workdir / "storage" / "blobs").rglob(f"{digest}*"))
    assert len(blob_files) == 1
    engine = make_engine(server.database_url)
    with engine.begin() as connection:
        past = datetime.now(UTC) - timedelta(hours=1)
        connection.execute(update(File).where(File.sha256 == digest).values(expired_at=past))
    engine.dispose()
    assert requests.get(f"{server.url}/upload/dup1/a.bin", timeout=10).status_code == 404
    result = server.cli("cleanup")
    assert "files.expired: 2" in result.stdout and "blobs.orphaned: 1" in result.stdout
    assert not blob_files[0].exists()


def test_sign_url_cli(server: LiveServer) -> None:
    for protocol in ("v", "v3"):
        args = ("sign-url", "--path", f"cli-{protocol}/note.txt", "--size", "5", "--type", "text/plain")
        printed = server.cli(*args, "--protocol", protocol, "--base-url", server.url).stdout.strip()
        response = requests.put(printed, data=b"hello", headers={"Content-Type": "text/plain"}, timeout=10)
        assert response.status_code == 201, printed


def test_cors_preflight(server: LiveServer) -> None:
    url = f"{server.url}/upload/any/file.jpg"
    allowed = requests.options(url, headers={"Origin": "https://web.example"}, timeout=10)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://web.example"
    assert "PUT" in allowed.headers["Access-Control-Allow-Methods"]
    denied = requests.options(url, headers={"Origin": "https://evil.example"}, timeout=10)
    assert denied.status_code == 403 and "Access-Control-Allow-Origin" not in denied.headers


# -- downloads ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored(server: LiveServer) -> tuple[str, bytes]:
    body = os.urandom(1536 * 1024)  # two 1 MiB read blocks: hashed and written in a thread
    response = put(server, "dl/data.bin", body)
    assert response.status_code == 201 and response.json()["sha256"] == hashlib.sha256(body).hexdigest()
    return f"{server.url}/upload/dl/data.bin", body


def test_full_get_and_head(stored: tuple[str, bytes]) -> None:
    url, body = stored
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == body
    assert got.headers["Accept-Ranges"] == "bytes"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert got.headers["Content-Disposition"] == 'attachment; filename="data.bin"'
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(body))


def test_ranges(stored: tuple[str, bytes]) -> None:
    url, body = stored
    size = len(body)
    one = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert one.status_code == 206 and one.content == body[100:200]
    assert one.headers["Content-Range"] == f"bytes 100-199/{size}"
    suffix = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert suffix.content == body[-10:]
    tail = requests.get(url, headers={"Range": f"bytes={size - 5}-"}, timeout=10)
    assert tail.content == body[-5:]
    bad = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert bad.status_code == 416 and bad.headers["Content-Range"] == f"bytes */{size}"
    multi = requests.get(url, headers={"Range": "bytes=0-9,1000-1009"}, timeout=10)
    assert multi.status_code == 206
    boundary = multi.headers["Content-Type"].split("boundary=")[1]
    parts = multi.content.split(f"--{boundary}".encode())
    assert body[0:10] in parts[1] and f"bytes 1000-1009/{size}".encode() in parts[2]
    assert parts[2].endswith(body[1000:1010] + b"\r\n")


def test_conditional_requests(stored: tuple[str, bytes]) -> None:
    url, body = stored
    first = requests.get(url, timeout=10)
    tag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert requests.get(url, headers={"If-None-Match": tag}, timeout=10).status_code == 304
    assert requests.get(url, headers={"If-Modified-Since": modified}, timeout=10).status_code == 304
    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'}, timeout=10)
    assert stale.status_code == 200 and len(stale.content) == len(body)
    fresh = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": tag}, timeout=10)
    assert fresh.status_code == 206 and fresh.content == body[:10]


def test_download_by_id(server: LiveServer, stored: tuple[str, bytes]) -> None:
    _url, body = stored
    engine = make_engine(server.database_url)
    with engine.connect() as connection:
        file_id = connection.execute(select(File.id).where(File.path == "dl/data.bin")).scalar_one()
    engine.dispose()
    got = requests.get(f"{server.url}/download/{file_id}", headers={"Range": "bytes=5-9"}, timeout=10)
    assert got.status_code == 206 and got.content == body[5:10]
    assert requests.get(f"{server.url}/download/not-a-uuid", timeout=10).status_code == 404


def test_missing_slot_file_is_404(server: LiveServer) -> None:
    assert requests.get(f"{server.url}/upload/none/such.txt", timeout=10).status_code == 404


# -- multipart POST /upload --------------------------------------------------------------
def _x_signature(path: str = "/upload", secret: str = SECRET) -> str:
    """hmac-file-server's static form: refused unless security.allow_static_signature."""
    return hmac.new(secret.encode(), path.encode(), hashlib.sha256).hexdigest()


def _bound(name: str, size: int, *, ttl: int = 600, path: str = "/upload") -> dict[str, str]:
    return sign_upload(SECRET, SignedUpload("POST", path, int(time.time()) + ttl, name, size))


def test_multipart_with_signature(server: LiveServer) -> None:
    body = os.urandom(300 * 1024)
    files = {"file": ("report.txt", body, "text/plain")}
    response = requests.post(
        f"{server.url}/upload",
        files=files,
        data={"note": "ignored"},
        headers=_bound("report.txt", len(body)),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["filename"] == "report.txt" and answer["size"] == len(body)
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert requests.get(answer["url"], timeout=10).content == body
    bad = requests.post(f"{server.url}/upload", files=files, headers={"X-Signature": "00"}, timeout=10)
    assert bad.status_code == 403
    assert requests.post(f"{server.url}/upload", files=files, timeout=10).status_code == 401


def test_multipart_signature_cannot_be_replayed_for_another_file(server: LiveServer) -> None:
    """A leaked bound signature is good for its own name and size until it expires, nothing else."""
    body = b"x" * 1000
    headers = _bound("notes.txt", len(body))
    other = {"file": ("notes.txt", body + b"!", "text/plain")}
    for sent, files in (
        ({**headers, "X-Total-Size": str(len(body) + 1)}, other),
        ({**headers, "X-Filename": "evil.txt"}, {"file": ("evil.txt", body, "text/plain")}),
        (headers, other),
        (_bound("notes.txt", len(body), ttl=-5), {"file": ("notes.txt", body, "text/plain")}),
        ({"X-Signature": _x_signature()}, {"file": ("notes.txt", body, "text/plain")}),
    ):
        refused = requests.post(f"{server.url}/upload", files=files, headers=sent, timeout=10)
        assert refused.status_code in (403, 413), refused.text
    assert list((server.workdir / "storage" / "parts").glob("*.part")) == []
    ok = requests.post(
        f"{server.url}/upload", files={"file": ("notes.txt", body)}, headers=headers, timeout=10
    )
    assert ok.status_code == 201 and ok.json()["size"] == len(body)


def test_multipart_with_jwt_owns_the_file(server: LiveServer) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    files = {"file": ("../../etc/secret.bin", b"mine", "application/octet-stream")}
    response = requests.post(f"{server.url}/upload", files=files, headers=bearer(owner), timeout=10)
    assert response.status_code == 201 and response.json()["filename"] == "secret.bin"
    url = response.json()["url"]
    assert requests.get(url, headers=bearer(owner), timeout=10).content == b"mine"
    assert requests.get(url, headers=bearer(other), timeout=10).status_code == 404
    assert requests.get(url, timeout=10).status_code == 404


def test_multipart_refusals_store_nothing(server: LiveServer) -> None:
    wrong_field = requests.post(
        f"{server.url}/upload", files={"other": ("a.txt", b"x")}, headers=_bound("a.txt", 1), timeout=10
    )
    assert wrong_field.status_code == 400 and wrong_field.json()["code"] == "MISSING_FIELD"
    evil = requests.post(
        f"{server.url}/upload", files={"file": ("a.exe", b"x")}, headers=_bound("a.exe", 1), timeout=10
    )
    assert evil.status_code == 400
    big = requests.post(
        f"{server.url}/upload",
        files={"file": ("a.bin", os.urandom(MAX + 1))},
        headers=_bound("a.bin", MAX + 1),
        timeout=30,
    )
    assert big.status_code == 413
    boundary = "b0undary"
    signed = "".join(f"{key}: {value}\r\n" for key, value in _bound("s.bin", 99999).items())
    head = (
        f"POST /upload HTTP/1.1\r\nHost: x\r\n{signed}"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 100000"
    )
    start = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="s.bin"\r\n\r\n'.encode()
    assert status_of(raw_request(server, head, start + b"x" * 1000, shut=True)) == 400
    unterminated = start + b"x" * 10
    head = head.replace("100000", str(len(unterminated)))
    assert status_of(raw_request(server, head, unterminated)) == 400
    assert list((server.workdir / "storage" / "parts").glob("*.part")) == []
