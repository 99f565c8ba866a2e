"""All three resumable protocols against the real gunicorn+gevent server, on both backends."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import io
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from tusclient.client import TusClient

from hmacfs.storage.range_lock import PartLock
from tests.conftest import HMAC_SECRET, bearer, signed_upload
from tests.e2e.conftest import StartServer
from tests.live import LiveServer

CHUNK = 256 * 1024
API = "/api/files/upload"


def blob_sha256(server: LiveServer, sha256: str) -> str:
    """Hash the stored blob itself, not what the server says about it."""
    path = server.workdir / "storage" / "blobs" / sha256[:2] / sha256[2:4] / sha256
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def signed(path: str) -> dict[str, str]:
    return {"X-Signature": hmac.new(HMAC_SECRET.encode(), path.encode(), hashlib.sha256).hexdigest()}


def _chunked_open(server: LiveServer, payload: bytes) -> dict[str, Any]:
    """A chunked-API session for ``payload`` in CHUNK-sized chunks (X-Signature auth)."""
    answer: dict[str, Any] = requests.post(
        f"{server.url}/upload/chunked",
        headers={**signed_upload("/upload/chunked", "a.bin", len(payload)), "X-Chunk-Size": str(CHUNK)},
        timeout=10,
    ).json()  # fmt: skip
    return answer


def _chunked_put(server: LiveServer, sid: str, payload: bytes, index: int) -> requests.Response:
    headers = {**signed("/upload/chunked"), "X-Upload-Session-ID": sid, "X-Chunk-Number": str(index)}
    body = payload[index * CHUNK : (index + 1) * CHUNK]
    return requests.put(f"{server.url}/upload/chunked", data=body, headers=headers, timeout=10)


def test_chunked_session_api(live_server: LiveServer) -> None:
    payload = os.urandom(CHUNK * 3 + 17)
    opened = _chunked_open(live_server, payload)
    sid = opened["session_id"]
    for index in reversed(range(opened["total_chunks"])):
        answer = _chunked_put(live_server, sid, payload, index).json()
    assert answer["completed"] is True and answer["uploaded_bytes"] == len(payload)
    status = requests.get(f"{live_server.url}/upload/status", params={"session_id": sid},
                          headers=signed("/upload/status"), timeout=10).json()  # fmt: skip
    assert status["completed"] is True and status["chunks"] == 4
    assert (
        blob_sha256(live_server, hashlib.sha256(payload).hexdigest()) == hashlib.sha256(payload).hexdigest()
    )


def test_a_last_chunk_whose_completion_failed_completes_when_sent_again(live_server: LiveServer) -> None:
    """On PostgreSQL a chunk's row commits before the upload completes: a failed completion
    (here 409 UPLOAD_BUSY, the part being locked by someone else) leaves the chunk
    recorded, and re-sending that chunk completes the upload."""
    payload = os.urandom(CHUNK + 99)
    sid = _chunked_open(live_server, payload)["session_id"]

    def put(index: int) -> requests.Response:
        return _chunked_put(live_server, sid, payload, index)

    assert put(0).json()["completed"] is False
    other = PartLock(live_server.workdir / "storage" / "parts" / f"{sid}.part")
    assert other.try_lock(0, 1)  # as a re-sent chunk 0 being copied in would
    try:
        busy = put(1)
        assert busy.status_code == 409 and busy.json()["code"] == "UPLOAD_BUSY"
    finally:
        other.close()
    again = put(1)
    assert again.status_code == 200, again.text
    assert again.json()["completed"] is True and again.json()["uploaded_bytes"] == len(payload)
    sha256 = hashlib.sha256(payload).hexdigest()
    assert blob_sha256(live_server, sha256) == sha256


def _drive_create(server: LiveServer, auth: dict[str, str], payload: bytes) -> dict[str, Any]:
    body = {"fileName": "clip.mp4", "fileSize": len(payload), "contentType": "video/mp4", "chunkSize": CHUNK,
            "hash": hashlib.sha256(payload).hexdigest()}  # fmt: skip
    answer: dict[str, Any] = requests.post(
        f"{server.url}{API}/create", json=body, headers=auth, timeout=10
    ).json()
    return answer


def _send(server: LiveServer, auth: dict[str, str], task: str, index: int, data: bytes) -> requests.Response:
    files = {"chunk": ("blob", io.BytesIO(data), "application/octet-stream")}
    return requests.post(f"{server.url}{API}/chunk/{task}/{index}", files=files, headers=auth, timeout=30)


def test_drive_parallel_chunks(live_server: LiveServer) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(CHUNK * 8 + 3)
    task = _drive_create(live_server, auth, payload)["taskId"]
    indexes = list(range(9))
    statuses: list[int] = []

    def worker(mine: list[int]) -> None:
        for index in mine:
            statuses.append(
                _send(
                    live_server, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]
                ).status_code
            )

    threads = [threading.Thread(target=worker, args=(indexes[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == [200] * 9
    progress = requests.get(f"{live_server.url}{API}/progress/{task}", headers=auth, timeout=10).json()
    assert progress["chunksUploaded"] == 9 and progress["bytesUploaded"] == len(payload)
    file = requests.post(f"{live_server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest() == blob_sha256(live_server, file["hash"])


def test_workers_hash_committed_chunks_before_completion(live_server: LiveServer) -> None:
    """On PostgreSQL the workers advance the upload's running SHA-256 in batches as chunks
    commit, so completion finds most of it done; on SQLite completion hashes the whole part."""
    auth = bearer(uuid.uuid4())
    chunk = 1024 * 1024
    payload = os.urandom(chunk * 20 + 5)
    body = {"fileName": "big.bin", "fileSize": len(payload), "contentType": "application/octet-stream",
            "chunkSize": chunk, "hash": hashlib.sha256(payload).hexdigest()}  # fmt: skip
    task = requests.post(f"{live_server.url}{API}/create", json=body, headers=auth, timeout=10).json()[
        "taskId"
    ]
    for index in range(21):
        assert (
            _send(live_server, auth, task, index, payload[index * chunk : (index + 1) * chunk]).status_code
            == 200
        )
    postgresql = live_server.database_url.startswith("postgresql")
    batch = 16 * chunk  # hmacfs.uploads.running_hash._BATCH
    engine = sa.create_engine(live_server.database_url, poolclass=sa.pool.NullPool)
    query = sa.text("SELECT hashed_bytes FROM upload_tasks WHERE task_id = :task")
    deadline = time.monotonic() + 20
    with engine.connect() as connection:
        hashed = connection.execute(query, {"task": task}).scalar_one()
        while postgresql and hashed < batch and time.monotonic() < deadline:
            time.sleep(0.05)
            hashed = connection.execute(query, {"task": task}).scalar_one()
    engine.dispose()
    assert batch <= hashed <= len(payload) if postgresql else hashed == 0
    file = requests.post(f"{live_server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest() == blob_sha256(live_server, file["hash"])


def test_same_chunk_from_two_clients(live_server: LiveServer) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(CHUNK * 2)
    task = _drive_create(live_server, auth, payload)["taskId"]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def send_first() -> None:
        barrier.wait(10)
        statuses.append(_send(live_server, auth, task, 0, payload[:CHUNK]).status_code)

    threads = [threading.Thread(target=send_first) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == [200, 409]
    assert _send(live_server, auth, task, 1, payload[CHUNK:]).status_code == 200
    resume = requests.get(f"{live_server.url}{API}/resume/{task}", headers=auth, timeout=10).json()
    assert resume["uploadedChunks"] == [0, 1] and resume["chunksUploaded"] == 2
    assert resume["bytesUploaded"] == len(payload)
    file = requests.post(f"{live_server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest()


def test_tuspy_upload_and_resume(live_server: LiveServer) -> None:
    auth = bearer(uuid.uuid4())
    client = TusClient(f"{live_server.url}/files/", headers=auth)
    whole = os.urandom(CHUNK * 2 + 99)
    client.uploader(file_stream=io.BytesIO(whole), chunk_size=CHUNK, metadata={"filename": "w.bin"},
                    upload_checksum=True).upload()  # fmt: skip
    assert blob_sha256(live_server, hashlib.sha256(whole).hexdigest()) == hashlib.sha256(whole).hexdigest()

    payload = os.urandom(CHUNK * 4 + 5)
    first = client.uploader(file_stream=io.BytesIO(payload), chunk_size=CHUNK, metadata={"filename": "r.bin"})
    first.upload_chunk()
    first.upload_chunk()  # interrupted here: the client goes away with only the URL kept
    stored_url = first.url
    assert stored_url is not None and stored_url.startswith(f"{live_server.url}/files/")
    resumed = client.uploader(file_stream=io.BytesIO(payload), chunk_size=CHUNK, url=stored_url)
    assert resumed.offset == 2 * CHUNK
    resumed.upload()
    head = requests.head(stored_url, headers={**auth, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.headers["Upload-Offset"] == str(len(payload))
    assert (
        blob_sha256(live_server, hashlib.sha256(payload).hexdigest()) == hashlib.sha256(payload).hexdigest()
    )


def _slow_body(data: bytes, started: threading.Event, pause: float = 0.05) -> Iterator[bytes]:
    for start in range(0, len(data), 16 * 1024):
        yield data[start : start + 16 * 1024]
        started.set()
        time.sleep(pause)


def test_racing_first_writes_of_one_chunk_never_mix(live_server: LiveServer) -> None:
    """Two clients send chunk 0 for the first time, with different bytes: a slow one starts
    first, a fast one arrives while it streams. The first write holds the chunk's range
    lock until its row commits, so the fast one waits (its body received aside), then
    replaces the chunk whole: the file is exactly the second client's bytes, and the
    running hash, dropped for the replaced bytes, agrees with them."""
    auth = bearer(uuid.uuid4())
    first, second = os.urandom(CHUNK), os.urandom(CHUNK)
    rest = os.urandom(CHUNK)
    task = _drive_create(live_server, auth, second + rest)["taskId"]
    started = threading.Event()
    statuses: list[int] = []

    def slow() -> None:
        headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(CHUNK)}
        path = f"{API}/chunk/{task}/0"
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=60)
        conn.request("POST", path, body=_slow_body(first, started, 0.005), headers=headers)
        statuses.append(conn.getresponse().status)
        conn.close()

    sender = threading.Thread(target=slow)
    sender.start()
    assert started.wait(10)
    assert _send(live_server, auth, task, 1, rest).status_code == 200
    assert _send(live_server, auth, task, 0, second).status_code == 200  # waited for the slow one
    sender.join(60)
    assert statuses == [200]
    file = requests.post(f"{live_server.url}{API}/complete/{task}", headers=auth, timeout=30)
    assert file.status_code == 200, file.text
    assert (
        file.json()["hash"]
        == hashlib.sha256(second + rest).hexdigest()
        == blob_sha256(live_server, file.json()["hash"])
    )


def test_kill_nine_mid_upload_then_resume(live_server: LiveServer) -> None:
    """Acknowledged chunks survive kill -9 of every process; the rest resumes on the restarted server."""
    auth = bearer(uuid.uuid4())
    payload = os.urandom(CHUNK * 6)
    task = _drive_create(live_server, auth, payload)["taskId"]
    for index in range(3):
        assert (
            _send(live_server, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code
            == 200
        )
    started = threading.Event()
    url = f"{live_server.url}{API}/chunk/{task}/3"

    def in_flight() -> None:
        body = _slow_body(payload[3 * CHUNK : 4 * CHUNK], started)
        headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(CHUNK)}
        with contextlib.suppress(requests.RequestException):  # the server dies under it, as intended
            requests.post(url, data=body, headers=headers, timeout=30)

    sender = threading.Thread(target=in_flight)
    sender.start()
    assert started.wait(10)
    live_server.kill()
    sender.join(30)
    live_server.start()
    resume = requests.get(f"{live_server.url}{API}/resume/{task}", headers=auth, timeout=10).json()
    assert resume["uploadedChunks"] == [0, 1, 2] and resume["missingChunks"] == [3, 4, 5]
    for index in resume["missingChunks"]:
        assert (
            _send(live_server, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code
            == 200
        )
    file = requests.post(f"{live_server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest() == blob_sha256(live_server, file["hash"])


def test_client_dropping_mid_chunk_records_nothing(live_server: LiveServer) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(CHUNK * 2)
    task = _drive_create(live_server, auth, payload)["taskId"]
    head = (
        f"POST {API}/chunk/{task}/0 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {CHUNK}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as raw:
        raw.sendall(head.encode() + payload[: CHUNK // 2])  # then the network goes away
    for index in range(2):
        assert (
            _send(live_server, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code
            == 200
        )
    file = requests.post(f"{live_server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest()
    # The half-sent chunk was never counted: exactly the two full chunks were.
    progress = requests.get(f"{live_server.url}{API}/progress/{task}", headers=auth, timeout=10).json()
    assert progress["chunksUploaded"] == 2 and progress["bytesUploaded"] == len(payload)


def test_tus_second_writer_is_refused_while_the_first_streams(live_server: LiveServer) -> None:
    """Two PATCHes at one offset, from two connections (two workers on PostgreSQL): the one
    that arrives while the other streams gets 423 at once; the first lands; the offset moved."""
    auth = bearer(uuid.uuid4())
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    payload = os.urandom(CHUNK)
    created = requests.post(
        f"{live_server.url}/files/", headers={**tus, "Upload-Length": str(2 * CHUNK)}, timeout=10
    )
    path = created.headers["Location"].split(str(live_server.port), 1)[1]
    patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as first:
        # the first writer is mid-body, and keeps streaming (a silent one would be taken
        # over by the second: tests/e2e/test_handoff.py)
        first.sendall(_tus_patch_head(path, auth, 0, CHUNK) + payload[: CHUNK // 2])
        rest = payload[CHUNK // 2 :]
        streaming = threading.Thread(target=_trickle, args=(first, rest, len(rest) // 40, 0.05))
        streaming.start()
        time.sleep(0.5)  # the server reads the head and takes the lock before the body
        second = requests.patch(f"{live_server.url}{path}", data=payload, headers=patch, timeout=10)
        streaming.join(30)
        assert second.status_code == 423 and second.headers["Tus-Resumable"] == "1.0.0"
        assert first.recv(64).startswith(b"HTTP/1.1 204")
    late = requests.patch(f"{live_server.url}{path}", data=payload, headers=patch, timeout=10)
    assert late.status_code == 409  # the offset is CHUNK now
    offset = requests.head(f"{live_server.url}{path}", headers=tus, timeout=10).headers["Upload-Offset"]
    assert offset == str(CHUNK)


def _trickle(sock: socket.socket, data: bytes, piece: int, pause: float) -> None:
    """Send ``data`` in pieces of ``piece`` bytes, ``pause`` seconds apart."""
    for start in range(0, len(data), piece):
        time.sleep(pause)
        sock.sendall(data[start : start + piece])


def _tus_patch_head(path: str, auth: dict[str, str], offset: int, length: int) -> bytes:
    return (
        f"PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_tus_resumes_after_a_network_switch_left_a_patch_hanging(start_server: StartServer) -> None:
    """A phone changes networks mid-PATCH: the old connection goes silent without a FIN
    or RST reaching the server. After ``timeouts.body_idle`` of silence the server drops
    that PATCH (nothing recorded) and frees the upload, so the client's resume lands.
    This is the fallback with takeovers off; with them on (the default) the resume takes
    the upload over sooner: tests/e2e/test_handoff.py."""
    server = start_server(timeouts={"body_idle": "2s"}, handoff={"seamless_switching": False})
    auth = bearer(uuid.uuid4())
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    payload = os.urandom(2 * CHUNK)
    created = requests.post(
        f"{server.url}/files/", headers={**tus, "Upload-Length": str(len(payload))}, timeout=10
    )
    path = created.headers["Location"].split(str(server.port), 1)[1]
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as old_network:
        old_network.sendall(_tus_patch_head(path, auth, 0, CHUNK) + payload[: CHUNK // 2])
        time.sleep(0.5)
        started, resumed = time.monotonic(), None
        while time.monotonic() - started < 15:  # tus clients retry with backoff
            offset = requests.head(f"{server.url}{path}", headers=tus, timeout=10).headers["Upload-Offset"]
            assert offset == "0"  # the half PATCH is never counted
            resumed = requests.patch(f"{server.url}{path}", data=payload[:CHUNK],
                                     headers={**patch, "Upload-Offset": "0"}, timeout=10)  # fmt: skip
            if resumed.status_code != 423:
                break
            time.sleep(0.5)
        assert resumed is not None and resumed.status_code == 204, resumed
        assert 1.5 < time.monotonic() - started < 10  # freed by the idle limit, not before
    last = requests.patch(f"{server.url}{path}", data=payload[CHUNK:],
                          headers={**patch, "Upload-Offset": str(CHUNK)}, timeout=10)  # fmt: skip
    assert last.status_code == 204
    digest = hashlib.sha256(payload).hexdigest()
    assert blob_sha256(server, digest) == digest
