"""The chunked session API through the Flask client, on both backends."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.models import Event, File, UploadChunk, UploadTask
from tests.conftest import HMAC_SECRET, bearer, signed_upload

CHUNK = 256 * 1024


def signature(path: str) -> dict[str, str]:
    """hmac-file-server's static form (refused unless security.allow_static_signature)."""
    return {"X-Signature": hmac.new(HMAC_SECRET.encode(), path.encode(), hashlib.sha256).hexdigest()}


def start(client: FlaskClient, size: int, headers: dict[str, str] | None = None, **extra: str) -> Any:
    sent = headers if headers is not None else signed_upload("/upload/chunked", "movie.bin", size)
    response = client.post(
        "/upload/chunked",
        headers={
            **sent,
            "X-Filename": "movie.bin",
            "X-Total-Size": str(size),
            "X-Chunk-Size": str(CHUNK),
            **extra,
        },
    )
    assert response.status_code == 201, response.json
    return response.json


def put(
    client: FlaskClient,
    session_id: str,
    index: int,
    data: bytes,
    auth: dict[str, str] | None = None,
    **headers: str,
) -> Any:
    return client.put(
        "/upload/chunked",
        data=data,
        headers={
            **(auth or signature("/upload/chunked")),
            "X-Upload-Session-ID": session_id,
            "X-Chunk-Number": str(index),
            "Content-Type": "application/octet-stream",
            **headers,
        },
    )


def test_session_upload_completes_on_last_chunk(client: FlaskClient, session: Session) -> None:
    payload = os.urandom(CHUNK * 2 + 1000)
    opened = start(client, len(payload))
    assert opened["chunk_size"] == CHUNK and opened["total_chunks"] == 3
    sid = opened["session_id"]
    first = put(client, sid, 2, payload[2 * CHUNK :]).json
    assert first == {
        "success": True, "chunk": 2, "uploaded_bytes": 1000, "total_size": len(payload),
        "progress": round(1000 / len(payload), 4), "completed": False,
    }  # fmt: skip
    put(client, sid, 0, payload[:CHUNK])
    status = client.get(f"/upload/status?session_id={sid}", headers=signature("/upload/status")).json
    assert status["chunks"] == 2 and status["missing_chunks"] == [1] and status["completed"] is False
    last = put(client, sid, 1, payload[CHUNK : 2 * CHUNK]).json
    assert last["completed"] is True and last["progress"] == 1.0
    status = client.get(f"/upload-status?session_id={sid}", headers=signature("/upload-status")).json
    assert status["completed"] is True and status["missing_chunks"] == []
    file = session.scalars(select(File).where(File.name == "movie.bin")).one()
    assert file.sha256 == hashlib.sha256(payload).hexdigest() and file.size == len(payload)


def test_repeated_chunk_is_recorded_once(client: FlaskClient, session: Session) -> None:
    payload = os.urandom(CHUNK + 10)
    sid = start(client, len(payload))["session_id"]
    for _ in range(3):
        assert put(client, sid, 0, payload[:CHUNK]).json["uploaded_bytes"] == CHUNK
    task = session.scalars(select(UploadTask).where(UploadTask.task_id == sid)).one()
    assert task.chunks_uploaded == 1 and task.bytes_received == CHUNK


def test_bad_input_answers_with_codes(client: FlaskClient, session: Session) -> None:
    sid = start(client, CHUNK + 10)["session_id"]
    beyond = put(client, sid, 2, b"x" * 10)
    assert beyond.status_code == 400 and beyond.json["code"] == "CHUNK_OUT_OF_RANGE"
    wrong_size = put(client, sid, 1, b"x" * 11)
    assert wrong_size.status_code == 400 and wrong_size.json["code"] == "CHUNK_SIZE_MISMATCH"
    unknown = put(client, "nope", 0, b"x")
    assert unknown.status_code == 404 and unknown.json["code"] == "UPLOAD_NOT_FOUND"
    signed = signed_upload("/upload/chunked", "a", 5)
    del signed["X-Total-Size"]
    missing = client.post("/upload/chunked", headers=signed)
    assert missing.status_code == 400 and missing.json["details"]["field"] == "X-Total-Size"
    traversal = client.post(
        "/upload/chunked",
        headers=signed_upload("/upload/chunked", "../../etc/passwd", 5),
    )
    assert traversal.status_code == 400 and traversal.json["code"] == "INVALID_FILE_NAME"
    assert session.scalars(select(UploadChunk)).all() == []


def test_signature_or_token_required(client: FlaskClient, account: uuid.UUID) -> None:
    headers = {"X-Filename": "a.bin", "X-Total-Size": "10"}
    # A wrong signature is refused (403), a missing one asks for credentials (401).
    bad = client.post(
        "/upload/chunked",
        headers={**signed_upload("/upload/chunked", "a.bin", 10), "X-Signature": "00" * 32},
    )
    assert bad.status_code == 403 and bad.json["code"] == "BAD_SIGNATURE"
    missing = client.post("/upload/chunked", headers=headers)
    assert missing.status_code == 401 and "WWW-Authenticate" in missing.headers
    # The signature covers the path used: the alias needs its own.
    wrong_path = client.post("/chunked-upload", headers=signed_upload("/upload/chunked", "a.bin", 10))
    assert wrong_path.status_code == 403
    assert (
        client.post("/chunked-upload", headers=signed_upload("/chunked-upload", "a.bin", 10)).status_code
        == 201
    )
    owned = start(client, 10, bearer(account))["session_id"]
    # Another account (or a signature holder) cannot see an account's session.
    other = client.get(f"/upload/status?session_id={owned}", headers=bearer(uuid.uuid4()))
    assert other.status_code == 404
    mine = client.get(f"/upload/status?session_id={owned}", headers=bearer(account))
    assert mine.status_code == 200


def test_digest_mismatch_discards_the_chunk(
    client: FlaskClient, session: Session, account: uuid.UUID
) -> None:
    payload = os.urandom(CHUNK)
    sid = start(client, len(payload), bearer(account))["session_id"]
    bad = put(client, sid, 0, payload, bearer(account), **{"X-Chunk-SHA256": "0" * 64})
    assert bad.status_code == 400 and bad.json["code"] == "CHECKSUM_MISMATCH"
    assert session.scalars(select(UploadChunk)).all() == []
    good = put(
        client, sid, 0, payload, bearer(account), **{"X-Chunk-SHA256": hashlib.sha256(payload).hexdigest()}
    )
    assert good.json["completed"] is True
    types = [event.type for event in session.scalars(select(Event).where(Event.account_id == account))]
    assert types == ["upload.progress", "upload.completed"]


def test_short_body_records_nothing(app: Any, session: Session) -> None:
    client = app.test_client()
    sid = start(client, CHUNK)["session_id"]
    environ = {"CONTENT_LENGTH": str(CHUNK)}
    short = client.put(
        "/upload/chunked",
        input_stream=__import__("io").BytesIO(b"x" * 100),
        environ_overrides=environ,
        headers={**signature("/upload/chunked"), "X-Upload-Session-ID": sid, "X-Chunk-Number": "0"},
    )
    assert short.status_code == 400 and short.json["code"] == "INCOMPLETE_BODY"
    assert session.scalars(select(UploadChunk)).all() == []


def test_seed_clients_need_only_the_session_id_after_start(client: FlaskClient, account: uuid.UUID) -> None:
    """The seed's curl flow: X-Signature to open, then chunks and status by session id alone."""
    session_id = start(client, 10)["session_id"]
    plain = {
        "X-Upload-Session-ID": session_id,
        "X-Chunk-Number": "0",
        "Content-Type": "application/octet-stream",
    }
    stored = client.put("/upload/chunked", data=b"0123456789", headers=plain)
    assert stored.status_code == 200 and stored.json["completed"] is True
    status = client.get(f"/upload/status?session_id={session_id}")
    assert status.status_code == 200 and status.json["uploaded_bytes"] == 10
    # A JWT-owned session is not reachable without its account's token.
    owned = start(client, 10, bearer(account))["session_id"]
    anonymous = client.put(
        "/upload/chunked", data=b"0123456789", headers={**plain, "X-Upload-Session-ID": owned}
    )
    assert anonymous.status_code == 404
    assert client.get(f"/upload/status?session_id={owned}").status_code == 404
    assert client.get("/upload/status?session_id=not-a-session").status_code == 404
