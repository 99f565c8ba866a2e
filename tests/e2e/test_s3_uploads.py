"""The real server (gunicorn + gevent, PostgreSQL) on the S3 store of a real SeaweedFS:
every upload protocol, downloads with ranges, dedup, expiry, a kill -9 of hmacfs and a
restart of SeaweedFS mid-upload. What is stored is checked in the bucket itself."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from tusclient.client import TusClient

from hmacfs.storage.s3_slot_copies import COPIES_DIRECTORY
from hmacfs.upload_signing import SignedUpload, sign_upload
from tests.conftest import HMAC_SECRET, bearer, new_database_url
from tests.e2e.test_resumable import API, _chunked_open, _drive_create, _send, _slow_body, signed
from tests.e2e.test_xep0363 import slot_url
from tests.live import LiveServer
from tests.pg import PgServer
from tests.seaweed import SeaweedS3

pytestmark = pytest.mark.e2e

KiB, MiB = 1024, 1024 * 1024
PART = 5 * MiB  # the smallest part size S3 allows: several parts with little data
CHUNK = 256 * KiB


def s3_server(
    store: SeaweedFSLike, pg_server: PgServer | None, workdir: Any, **sections: dict[str, Any]
) -> LiveServer:
    """A server on PostgreSQL whose blobs live under a fresh prefix of ``store``'s bucket."""
    url = new_database_url("postgresql", pg_server, workdir)
    storage = {"backend": "s3", "path": str(workdir / "unused-local-storage")}
    s3 = {**store.settings(f"e2e-{uuid.uuid4().hex[:8]}"), "part_size": "5MiB", **sections.pop("s3", {})}
    config = {
        "storage": storage,
        "storage.s3": s3,
        **sections,
    }
    return LiveServer(workdir, url, workers=2, sections=config)


SeaweedFSLike = SeaweedS3


@contextlib.contextmanager
def running_s3_server(
    store: SeaweedS3, pg_server: PgServer | None, workdir: Any, **sections: dict[str, Any]
) -> Iterator[LiveServer]:
    """``s3_server`` started with ``store``'s credentials in its environment (which it
    inherits, also when restarted inside the block); stopped on leaving the block."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in store.env.items():
            patch.setenv(name, value)
        live = s3_server(store, pg_server, workdir, **sections).start()
        try:
            yield live
        finally:
            live.stop()


def _bound(name: str, size: int) -> dict[str, str]:
    """The multipart POST's signed headers for ``name`` of ``size`` bytes."""
    return sign_upload(HMAC_SECRET, SignedUpload("POST", "/upload", int(time.time()) + 600, name, size))


@pytest.fixture(scope="module")
def server(
    seaweed: SeaweedS3, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with running_s3_server(seaweed, pg_server, tmp_path_factory.mktemp("s3-server")) as live:
        yield live


def prefix_of(server: LiveServer) -> str:
    prefix: str = server.sections["storage.s3"]["prefix"]
    return prefix.strip("/") + "/"


def blob_key(server: LiveServer, sha256: str) -> str:
    """The bucket key of the shared blob of ``sha256``, as its row records it (an upload's
    own multipart upload's key, or ``blobs/aa/bb/<sha256>``)."""
    engine = sa.create_engine(server.database_url)
    with engine.begin() as connection:
        query = "SELECT storage_key FROM blobs WHERE sha256 = :s AND shared"
        key: str = connection.execute(sa.text(query), {"s": sha256}).scalar_one()
    engine.dispose()
    return prefix_of(server) + key


def stored(store: SeaweedS3, server: LiveServer, sha256: str) -> bytes:
    """The bytes of the shared blob of ``sha256`` as the bucket holds them."""
    key = blob_key(server, sha256)
    body: bytes = store.client().get_object(Bucket=store.bucket, Key=key)["Body"].read()
    return body


def keys(store: SeaweedS3, server: LiveServer, under: str) -> list[str]:
    pages = (
        store.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=store.bucket, Prefix=prefix_of(server) + under)
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def drive_upload(server: LiveServer, auth: dict[str, str], payload: bytes, chunk: int) -> dict[str, Any]:
    """Create a Drive upload of ``payload`` in ``chunk``-sized chunks, send them from 4
    threads in reverse order, complete it; the completion's answer."""
    body = {"fileName": "clip.mp4", "fileSize": len(payload), "contentType": "video/mp4", "chunkSize": chunk,
            "hash": hashlib.sha256(payload).hexdigest()}  # fmt: skip
    created = requests.post(f"{server.url}{API}/create", json=body, headers=auth, timeout=10)
    assert created.status_code in (200, 201), created.text
    task = created.json()["taskId"]
    indexes = list(reversed(range((len(payload) + chunk - 1) // chunk)))
    statuses: list[int] = []

    def worker(mine: list[int]) -> None:
        for index in mine:
            data = payload[index * chunk : (index + 1) * chunk]
            statuses.append(_send(server, auth, task, index, data).status_code)

    threads = [threading.Thread(target=worker, args=(indexes[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert statuses == [200] * len(indexes)
    done = requests.post(f"{server.url}{API}/complete/{task}", headers=auth, timeout=60)
    assert done.status_code == 200, done.text
    answer: dict[str, Any] = done.json()
    return answer


@pytest.mark.parametrize("chunk", [CHUNK, PART], ids=["staged-small-chunks", "part-sized-chunks"])
def test_drive_parallel_out_of_order_chunks(server: LiveServer, seaweed: SeaweedS3, chunk: int) -> None:
    # Past 16 MiB: the workers advance the running hash in the background as chunks
    # commit (hmacfs.uploads.running_hash), reading the pieces back from the store.
    payload = os.urandom(4 * PART + 3 * CHUNK + 7)
    file = drive_upload(server, bearer(uuid.uuid4()), payload, chunk)
    sha256 = hashlib.sha256(payload).hexdigest()
    assert file["hash"] == sha256
    assert stored(seaweed, server, sha256) == payload
    key = blob_key(server, sha256)
    etag = seaweed.client().head_object(Bucket=seaweed.bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith("-5")  # one S3 multipart upload of five equal parts
    assert "Traceback" not in server.log()  # the background hash advances failed nowhere


def test_drive_slots_are_hashed_as_they_arrive_from_the_node_s_copies(
    server: LiveServer, seaweed: SeaweedS3
) -> None:
    """Slots streamed into the open multipart upload cannot be read back from the store, so
    the node hashes its own copies of them (hmacfs.storage.s3_slot_copies) as chunks commit;
    completion finds the hash mostly done, and the copies are gone once it is."""
    auth = bearer(uuid.uuid4())
    payload = os.urandom(5 * PART + 7)
    body = {"fileName": "clip.mp4", "fileSize": len(payload), "contentType": "video/mp4", "chunkSize": PART,
            "hash": hashlib.sha256(payload).hexdigest()}  # fmt: skip
    task = requests.post(f"{server.url}{API}/create", json=body, headers=auth, timeout=10).json()["taskId"]
    for index in range(6):
        assert _send(server, auth, task, index, payload[index * PART : (index + 1) * PART]).status_code == 200
    engine = sa.create_engine(server.database_url, poolclass=sa.pool.NullPool)
    query = sa.text("SELECT hashed_bytes FROM upload_tasks WHERE task_id = :task")
    deadline = time.monotonic() + 20
    with engine.connect() as connection:
        hashed = connection.execute(query, {"task": task}).scalar_one()
        while hashed < 4 * PART and time.monotonic() < deadline:  # 16 MiB wait for a batch
            time.sleep(0.05)
            hashed = connection.execute(query, {"task": task}).scalar_one()
    engine.dispose()
    assert hashed >= 4 * PART
    file = requests.post(f"{server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest()
    assert stored(seaweed, server, file["hash"]) == payload
    copies = Path(server.sections["storage"]["path"]) / COPIES_DIRECTORY
    assert copies.is_dir() and not [path for path in copies.rglob("*") if path.is_file()]


def test_chunked_api(server: LiveServer, seaweed: SeaweedS3) -> None:
    payload = os.urandom(CHUNK * 3 + 17)
    opened = _chunked_open(server, payload)
    sid = opened["session_id"]
    for index in reversed(range(opened["total_chunks"])):
        headers = {**signed("/upload/chunked"), "X-Upload-Session-ID": sid, "X-Chunk-Number": str(index)}
        body = payload[index * CHUNK : (index + 1) * CHUNK]
        answer = requests.put(f"{server.url}/upload/chunked", data=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    assert answer.json()["completed"] is True
    assert stored(seaweed, server, hashlib.sha256(payload).hexdigest()) == payload


def test_xep0363_put_and_ranged_downloads(server: LiveServer, seaweed: SeaweedS3) -> None:
    body = os.urandom(PART + 12345)  # two slots: assembled from pieces
    url = slot_url(server, "s3put/movie.bin", len(body), secret=HMAC_SECRET)
    put = requests.put(url, data=body, headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert put.status_code == 201, put.text
    assert stored(seaweed, server, hashlib.sha256(body).hexdigest()) == body
    get = f"{server.url}/upload/s3put/movie.bin"
    assert requests.get(get, timeout=30).content == body
    one = requests.get(get, headers={"Range": f"bytes={PART - 5}-{PART + 4}"}, timeout=10)
    assert one.status_code == 206 and one.content == body[PART - 5 : PART + 5]
    assert one.headers["Content-Range"] == f"bytes {PART - 5}-{PART + 4}/{len(body)}"
    many = requests.get(get, headers={"Range": "bytes=0-9,-10"}, timeout=10)
    assert many.status_code == 206 and many.headers["Content-Type"].startswith("multipart/byteranges")
    assert body[:10] in many.content and body[-10:] in many.content


def test_multipart_post(server: LiveServer, seaweed: SeaweedS3) -> None:
    body = os.urandom(300 * KiB)
    files = {"file": ("report.txt", body, "text/plain")}
    response = requests.post(
        f"{server.url}/upload", files=files, headers=_bound("report.txt", len(body)), timeout=30
    )
    assert response.status_code == 201, response.text
    assert requests.get(response.json()["url"], timeout=10).content == body
    assert stored(seaweed, server, hashlib.sha256(body).hexdigest()) == body


def test_tus_upload_resume_and_concatenation(server: LiveServer, seaweed: SeaweedS3) -> None:
    auth = bearer(uuid.uuid4())
    client = TusClient(f"{server.url}/files/", headers=auth)
    payload = os.urandom(CHUNK * 4 + 5)
    first = client.uploader(file_stream=io.BytesIO(payload), chunk_size=CHUNK, metadata={"filename": "r.bin"})
    first.upload_chunk()  # interrupted: only the URL is kept
    resumed = client.uploader(file_stream=io.BytesIO(payload), chunk_size=CHUNK, url=first.url)
    assert resumed.offset == CHUNK
    resumed.upload()
    assert stored(seaweed, server, hashlib.sha256(payload).hexdigest()) == payload

    tus = {**auth, "Tus-Resumable": "1.0.0"}
    parts, pieces = [], [os.urandom(PART + 1), os.urandom(3 * KiB)]
    for piece in pieces:
        sizing = {"Upload-Length": str(len(piece)), "Upload-Concat": "partial"}
        made = requests.post(f"{server.url}/files/", headers={**tus, **sizing}, timeout=10)
        assert made.status_code == 201, made.text
        patched = requests.patch(
            made.headers["Location"], data=piece, timeout=60,
            headers={**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        assert patched.status_code == 204, patched.text
        parts.append(made.headers["Location"])
    final = requests.post(
        f"{server.url}/files/", headers={**tus, "Upload-Concat": "final;" + " ".join(parts)}
    )
    assert final.status_code == 201, final.text
    whole = b"".join(pieces)
    assert stored(seaweed, server, hashlib.sha256(whole).hexdigest()) == whole


def test_dedup_keeps_one_object_and_expiry_removes_it(server: LiveServer, seaweed: SeaweedS3) -> None:
    payload = os.urandom(PART + 99)
    sha256 = hashlib.sha256(payload).hexdigest()
    before = set(keys(seaweed, server, "parts/"))  # other tests' (tus partial uploads stay)
    blobs_before = set(keys(seaweed, server, "blobs/"))
    first = drive_upload(server, bearer(uuid.uuid4()), payload, CHUNK)
    second = drive_upload(server, bearer(uuid.uuid4()), payload, PART)
    assert first["hash"] == second["hash"] == sha256
    key = blob_key(server, sha256)
    assert set(keys(seaweed, server, "blobs/")) - blobs_before == {key}  # one object
    assert set(keys(seaweed, server, "parts/")) == before  # their pieces went after the commits
    uploads = seaweed.client().list_multipart_uploads(Bucket=seaweed.bucket, Prefix=prefix_of(server))
    assert not uploads.get("Uploads")  # the second's, a dedup hit, was aborted

    engine = sa.create_engine(server.database_url)
    with engine.begin() as connection:
        expire = "UPDATE files SET expired_at = now() - interval '1 hour' WHERE sha256 = :s"
        connection.execute(sa.text(expire), {"s": sha256})
    engine.dispose()
    server.cli("cleanup")
    assert key not in keys(seaweed, server, "blobs/")


def test_an_abandoned_upload_expires_with_its_pieces(server: LiveServer, seaweed: SeaweedS3) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(3 * CHUNK)
    task = _drive_create(server, auth, payload)["taskId"]
    assert _send(server, auth, task, 0, payload[:CHUNK]).status_code == 200
    assert keys(seaweed, server, f"parts/{task}/")
    engine = sa.create_engine(server.database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE upload_tasks SET last_activity = now() - interval '30 days' WHERE task_id = :t"),
            {"t": task},
        )
    engine.dispose()
    server.cli("cleanup")
    assert not keys(seaweed, server, f"parts/{task}/")


def test_redirect_downloads_go_to_a_presigned_url(
    seaweed: SeaweedS3, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("s3-redirect")
    with running_s3_server(seaweed, pg_server, workdir, s3={"download": "redirect"}) as live:
        body = os.urandom(40 * KiB)
        url = slot_url(live, "redir/a.bin", len(body), secret=HMAC_SECRET)
        put = requests.put(url, data=body, timeout=30)
        assert put.status_code == 201, put.text
        answer = requests.get(f"{live.url}/upload/redir/a.bin", allow_redirects=False, timeout=10)
        assert answer.status_code == 302
        assert (
            answer.headers["Location"].startswith(seaweed.endpoint)
            and "X-Amz-Signature" in answer.headers["Location"]
        )
        ranged = requests.get(answer.headers["Location"], headers={"Range": "bytes=100-199"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == body[100:200]


def test_kill_nine_mid_upload_then_resume(server: LiveServer, seaweed: SeaweedS3) -> None:
    """Acknowledged chunks are in the bucket: kill -9 of every hmacfs process loses none."""
    auth = bearer(uuid.uuid4())
    payload = os.urandom(CHUNK * 6)
    task = _drive_create(server, auth, payload)["taskId"]
    for index in range(3):
        assert (
            _send(server, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code == 200
        )
    started = threading.Event()

    def in_flight() -> None:
        headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(CHUNK)}
        with contextlib.suppress(requests.RequestException):  # the server dies under it, as intended
            body = _slow_body(payload[3 * CHUNK : 4 * CHUNK], started)
            requests.post(f"{server.url}{API}/chunk/{task}/3", data=body, headers=headers, timeout=30)

    sender = threading.Thread(target=in_flight)
    sender.start()
    assert started.wait(10)
    server.kill()
    sender.join(30)
    server.start()
    resume = requests.get(f"{server.url}{API}/resume/{task}", headers=auth, timeout=10).json()
    assert resume["uploadedChunks"] == [0, 1, 2] and resume["missingChunks"] == [3, 4, 5]
    for index in resume["missingChunks"]:
        assert (
            _send(server, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code == 200
        )
    file = requests.post(f"{server.url}{API}/complete/{task}", headers=auth, timeout=30).json()
    assert file["hash"] == hashlib.sha256(payload).hexdigest()
    assert stored(seaweed, server, file["hash"]) == payload


def test_seaweedfs_restart_mid_upload_is_a_clean_503_then_resumes(
    own_seaweed: SeaweedS3, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("s3-restart")
    with running_s3_server(own_seaweed, pg_server, workdir, s3={"connect_timeout": "1s"}) as live:
        auth = bearer(uuid.uuid4())
        payload = os.urandom(CHUNK * 4)
        task = _drive_create(live, auth, payload)["taskId"]
        assert _send(live, auth, task, 0, payload[:CHUNK]).status_code == 200
        own_seaweed.stop()
        down = _send(live, auth, task, 1, payload[CHUNK : 2 * CHUNK])
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "STORAGE_UNAVAILABLE" and down.headers["Retry-After"]
        status = requests.get(f"{live.url}{API}/resume/{task}", headers=auth, timeout=10)
        assert status.status_code == 200 and status.json()["uploadedChunks"] == [0]
        own_seaweed.start()
        for index in range(1, 4):
            sent = _send(live, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK])
            assert sent.status_code == 200, sent.text
        file = requests.post(f"{live.url}{API}/complete/{task}", headers=auth, timeout=30)
        assert file.status_code == 200, file.text
        assert stored(own_seaweed, live, file.json()["hash"]) == payload
        time.sleep(0)  # the server's log below says why if anything failed
        assert "Traceback" not in live.log()
