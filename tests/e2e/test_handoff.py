"""Chunks survive a network switch: a retry takes over a chunk whose writer went silent.

The real gunicorn+gevent server (two workers on PostgreSQL, so the stale request and
the retry usually sit in different processes), loopback only. A client sends part of
a chunk and then nothing, holding its socket open: what a phone that switched
networks leaves behind (no FIN or RST ever arrives). Its retry, from a new
connection, must complete within a second, where it used to wait for
``timeouts.body_idle`` (60 s). Loopback answers on every 127.0.0.0/8 address, so
"the new network" is a connection from 127.0.0.2.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import bearer, signed_upload
from tests.e2e.conftest import StartServer
from tests.e2e.test_resumable import blob_sha256, signed
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

CHUNK = 256 * 1024
CHUNKS = 3
SILENCE = 2.0  # [handoff] writer_silence, the default
NEW_NETWORK = ("127.0.0.2", 0)
TAKEOVERS: dict[str, list[float]] = {}  # "[backend] protocol" -> measured retry times, printed at the end


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    return start_server()


@dataclass
class Upload:
    """One upload of ``payload`` over ``protocol``, with what each protocol needs to send a
    chunk as raw HTTP: the request line and headers of chunk ``index``."""

    server: LiveServer
    protocol: str
    payload: bytes
    account: uuid.UUID = field(default_factory=uuid.uuid4)
    ident: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.account)

    def create(self) -> Upload:
        url, size = self.server.url, len(self.payload)
        if self.protocol == "drive":
            body = {"fileName": "a.bin", "fileSize": size, "chunkSize": CHUNK,
                    "contentType": "application/octet-stream",
                    "hash": hashlib.sha256(self.payload).hexdigest()}  # fmt: skip
            answer = requests.post(f"{url}/api/files/upload/create", json=body, headers=self.auth, timeout=10)
            self.ident = answer.json()["taskId"]
        elif self.protocol == "chunked":
            headers = {**signed_upload("/upload/chunked", "a.bin", size), "X-Chunk-Size": str(CHUNK)}
            self.ident = requests.post(f"{url}/upload/chunked", headers=headers, timeout=10).json()[
                "session_id"
            ]
        else:
            headers = {**self.auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
            location = requests.post(f"{url}/files/", headers=headers, timeout=10).headers["Location"]
            self.ident = location.rsplit("/", 1)[1]
        return self

    def head(self, index: int, extra: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
        """Method, path and headers of chunk ``index`` (raw body)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(self.chunk(index)))}
        if self.protocol == "drive":
            method, path = "POST", f"/api/files/upload/chunk/{self.ident}/{index}"
            headers.update(self.auth)
        elif self.protocol == "chunked":
            method, path = "PUT", "/upload/chunked"
            headers.update({**signed("/upload/chunked"), "X-Upload-Session-ID": self.ident,
                            "X-Chunk-Number": str(index)})  # fmt: skip
        else:
            method, path = "PATCH", f"/files/{self.ident}"
            headers.update({**self.auth, "Tus-Resumable": "1.0.0", "Upload-Offset": str(index * CHUNK),
                            "Content-Type": "application/offset+octet-stream"})  # fmt: skip
        return method, path, {**headers, **(extra or {})}

    def chunk(self, index: int) -> bytes:
        return self.payload[index * CHUNK : (index + 1) * CHUNK]

    def send(self, index: int, source: tuple[str, int] | None = None, **extra: str) -> tuple[int, bytes]:
        """Send chunk ``index`` on a new connection (from ``source``); (status, body)."""
        method, path, headers = self.head(index, extra)
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.server.port, timeout=30, source_address=source
        )
        try:
            connection.request(method, path, body=self.chunk(index), headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def stall(self, index: int, sent: int) -> socket.socket:
        """Start chunk ``index`` on a raw socket, send its first ``sent`` bytes, then nothing."""
        method, path, headers = self.head(index)
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        raw = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + self.chunk(index)[:sent])
        return raw

    def finish(self) -> str:
        """Complete the upload where the protocol needs a call; the stored file's SHA-256."""
        if self.protocol == "drive":
            url = f"{self.server.url}/api/files/upload/complete/{self.ident}"
            return str(requests.post(url, headers=self.auth, timeout=30).json()["hash"])
        return hashlib.sha256(self.payload).hexdigest()  # the last chunk completed it

    def acknowledged(self) -> int:
        url = self.server.url
        if self.protocol == "drive":
            answer = requests.get(
                f"{url}/api/files/upload/progress/{self.ident}", headers=self.auth, timeout=10
            )
            return int(answer.json()["bytesUploaded"])
        if self.protocol == "chunked":
            params, headers = {"session_id": self.ident}, signed("/upload/status")
            status = requests.get(f"{url}/upload/status", params=params, headers=headers, timeout=10)
            return int(status.json()["uploaded_bytes"])
        head = requests.head(f"{url}/files/{self.ident}", headers={**self.auth, "Tus-Resumable": "1.0.0"},
                             timeout=10)  # fmt: skip
        return int(head.headers["Upload-Offset"])


def _ok(status: int) -> bool:
    return status in (200, 204)


def _stale_answer(raw: socket.socket, limit: float) -> bytes:
    """What the stalled request's connection gets back within ``limit`` seconds."""
    raw.settimeout(limit)
    try:
        return raw.recv(4096)
    except (TimeoutError, ConnectionResetError):
        return b""


def _retry_after_stall(upload: Upload, wait: float, source: tuple[str, int] | None, **extra: str) -> float:
    """Chunk 0 lands; chunk 1 stalls half-sent; after ``wait`` s its retry comes on a new
    connection. Returns the retry's time; checks the stale request was answered 409."""
    assert _ok(upload.send(0)[0])
    stale = upload.stall(1, CHUNK // 2)
    try:
        time.sleep(wait)
        started = time.monotonic()
        status, body = upload.send(1, source, **extra)
        took = time.monotonic() - started
        assert _ok(status), body
        answer = _stale_answer(stale, 3.0)
        assert answer.startswith(b"HTTP/1.1 409"), answer  # cancelled: WRITER_PREEMPTED
        assert b"WRITER_PREEMPTED" in answer or upload.protocol == "tus"
    finally:
        stale.close()
    for index in range(2, CHUNKS):
        assert _ok(upload.send(index, source, **extra)[0])
    backend = upload.server.database_url.split(":")[0].split("+")[0]
    TAKEOVERS.setdefault(f"[{backend}] {upload.protocol}", []).append(took)
    return took


def _check_file(upload: Upload) -> None:
    digest = hashlib.sha256(upload.payload).hexdigest()
    assert upload.acknowledged() == len(upload.payload)
    assert upload.finish() == digest
    assert blob_sha256(upload.server, digest) == digest


@pytest.mark.parametrize("protocol", ["drive", "chunked", "tus"])
def test_a_retry_takes_over_a_chunk_whose_writer_went_silent(server: LiveServer, protocol: str) -> None:
    upload = Upload(server, protocol, os.urandom(CHUNK * CHUNKS - 1000)).create()
    took = _retry_after_stall(upload, SILENCE + 0.3, None)
    assert took < 1.0, f"{protocol}: the retry took {took:.2f} s"
    _check_file(upload)


@pytest.mark.parametrize("protocol", ["drive", "chunked", "tus"])
def test_a_retry_from_another_network_takes_over_at_once(server: LiveServer, protocol: str) -> None:
    """From another address and network class, the switch is the evidence: one poll of
    silence is enough. The switch is published as ``upload.network_changed``."""
    upload = Upload(server, protocol, os.urandom(CHUNK * CHUNKS)).create()
    took = _retry_after_stall(upload, 0.6, NEW_NETWORK, **{"Hmacfs-Network": "type=lte; downlink=8"})
    assert took < 1.0, f"{protocol}: the retry took {took:.2f} s"
    _check_file(upload)
    if protocol != "chunked":  # X-Signature sessions have no account to tell
        changes = _events(server, upload.account, "upload.network_changed")
        assert changes == [{
            "taskId": upload.ident, "protocol": protocol,
            "previous": {"address": "127.0.0.1", "networkClass": "unknown"},
            "current": {"address": "127.0.0.2", "networkClass": "lte"},
        }]  # fmt: skip
        # ... and the bodies from the new network went into the client's lte profile
        assert _wait_for_profile(server, f"{upload.account}:%:lte"), "no lte profile measured"
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert f'hmacfs_upload_network_changes_total{{from_network="unknown",protocol="{protocol}"' in metrics
    assert f'hmacfs_upload_takeovers_total{{protocol="{protocol}"}}' in metrics


@pytest.mark.parametrize("protocol", ["drive", "tus"])
def test_a_live_slow_writer_is_not_preempted_by_a_duplicate(server: LiveServer, protocol: str) -> None:
    """A writer that keeps sending (slowly) is live: a duplicate of its chunk never takes
    over (tus answers it 423 within three writer polls; a Drive duplicate waits and finds
    the chunk in)."""
    upload = Upload(server, protocol, os.urandom(CHUNK * 2)).create()
    raw = upload.stall(0, 1024)
    rest = upload.chunk(0)[1024:]
    pieces = [rest[i : i + 4096] for i in range(0, len(rest), 4096)]  # 63 pieces, 80 ms apart: ~5 s

    def trickle() -> None:
        for piece in pieces:
            time.sleep(0.08)
            raw.sendall(piece)

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        time.sleep(0.5)
        status, body = upload.send(0)
        assert status == (423 if protocol == "tus" else 409), body  # Drive: 409 CHUNK_EXISTS
        sender.join(30)
        status_line = _stale_answer(raw, 10).split(b"\r\n", 1)[0]
        assert status_line.startswith((b"HTTP/1.1 200", b"HTTP/1.1 204")), status_line
    finally:
        sender.join(30)
        raw.close()
    assert _ok(upload.send(1)[0])
    _check_file(upload)


def _wait_for_profile(server: LiveServer, pattern: str, limit: float = 10) -> bool:
    """Whether a profile whose key matches ``pattern`` (SQL LIKE) has a measured body
    within ``limit`` s (bodies are folded in after their request ends)."""
    engine = sa.create_engine(server.database_url, poolclass=sa.pool.NullPool)
    query = sa.text("SELECT count(*) FROM client_profiles WHERE key LIKE :p AND samples > 0")
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(query, {"p": pattern}).scalar_one():
                    return True
            time.sleep(0.1)
        return False
    finally:
        engine.dispose()


def _events(server: LiveServer, account: uuid.UUID, kind: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(server.database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT data FROM events WHERE account_id = :a AND type = :t ORDER BY id")
            query = query.bindparams(sa.bindparam("a", type_=sa.Uuid()))
            rows = connection.execute(query, {"a": account, "t": kind}).scalars()
            return [row if isinstance(row, dict) else json.loads(row) for row in rows]
    finally:
        engine.dispose()


def test_report_takeover_times(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the retry times measured above (for docs/adaptive.md and the issue)."""
    with capsys.disabled():
        for name, times in sorted(TAKEOVERS.items()):
            print(f"\n{name} takeover: " + ", ".join(f"{t * 1000:.0f} ms" for t in times))
    assert all(t < 1.0 for times in TAKEOVERS.values() for t in times)


def test_body_idle_stretches_for_slow_network_classes_and_phones(start_server: StartServer) -> None:
    """``timeouts.body_idle`` times the class's ``timeout_multiplier`` ([network_interfaces])
    times the kind's ([client_optimization]): a phone on cellular (2.0 x 1.5) gets 3 s of
    silence where an unknown client gets 1 s. Takeovers are off: the limit alone acts."""
    server = start_server(timeouts={"body_idle": "1s"}, handoff={"seamless_switching": False})

    def silent_for(**extra: str) -> float:
        upload = Upload(server, "tus", os.urandom(CHUNK)).create()
        method, path, headers = upload.head(0, extra)
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + upload.chunk(0)[:1000])
            started = time.monotonic()
            answer = _stale_answer(raw, 10)
            took = time.monotonic() - started
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer  # cut: nothing recorded
        assert upload.acknowledged() == 0
        return took

    assert 0.8 < silent_for() < 2.5
    phone = {"Hmacfs-Network": "type=cellular", "User-Agent": "okhttp/4.12"}
    assert 2.8 < silent_for(**phone) < 5.5
