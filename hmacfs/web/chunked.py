"""The chunked session API of the network-resilience seed (hmac-file-server).

``POST /upload/chunked`` opens a session, ``PUT /upload/chunked`` stores one
chunk (the last missing one completes the upload), ``GET /upload/status``
reports it. ``progress`` here is the seed's fraction 0..1. Opening a session
takes a bound ``X-Signature`` (docs/signatures.md) or a JWT. As in the seed,
chunks and status then need only the session id, an unguessable 192-bit
capability, for sessions opened by signature; a JWT-owned session still needs
its account's token (another account gets 404).
"""

from __future__ import annotations

import mimetypes
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, request

from hmacfs.auth import optional_account
from hmacfs.errors import BadRequest, NotFound
from hmacfs.models import UploadTask
from hmacfs.models.status import Protocol, UploadStatus
from hmacfs.uploads import engine
from hmacfs.web.adaptive import plan_create
from hmacfs.web.bodies import write_request_chunk
from hmacfs.web.context import chunk_request, db_session, services
from hmacfs.web.params import header_text
from hmacfs.web.signature import signed_or_account

chunked = Blueprint("chunked", __name__)


@chunked.before_request
def _enabled() -> None:
    if not services().settings.uploads.chunked_uploads_enabled:
        raise NotFound("chunked uploads are disabled", code="FEATURE_DISABLED")


def _int_header(name: str, *, required: bool = True) -> int | None:
    raw = request.headers.get(name)
    if raw is None or not raw.strip():
        if required:
            raise BadRequest(f"{name} header is required", code="MISSING_HEADER", details={"field": name})
        return None
    if not raw.strip().isdigit():
        raise BadRequest(
            f"{name} must be a non-negative integer", code="INVALID_HEADER", details={"field": name}
        )
    return int(raw.strip())


def _session_id() -> str:
    value = request.headers.get("X-Upload-Session-ID") or request.args.get("session_id")
    if not value:
        raise BadRequest(
            "session id is required", code="MISSING_HEADER", details={"field": "X-Upload-Session-ID"}
        )
    return value


@chunked.post("/upload/chunked")
@chunked.post("/chunked-upload")
def start_session() -> tuple[Response, int]:
    account = signed_or_account()
    name = engine.check_file_name(header_text("X-Filename"), "X-Filename")  # UTF-8 on the wire
    size = _int_header("X-Total-Size")
    assert size is not None
    new = engine.NewUpload(
        protocol=Protocol.CHUNKED,
        file_name=name,
        file_size=size,
        account_id=account,
        content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        chunk_size=_int_header("X-Chunk-Size", required=False),
    )
    if size <= 0:
        raise BadRequest(
            "X-Total-Size must be positive", code="INVALID_FILE_SIZE", details={"field": "X-Total-Size"}
        )
    plan = plan_create(account, new.chunk_size, size)
    new = replace(new, task_id=plan.task_id, chunk_size=plan.chunk_size, client_profile_key=plan.profile_key)
    task = engine.create(db_session(), services(), new)
    body = {
        "session_id": task.task_id,
        "chunk_size": task.chunk_size,
        "total_chunks": task.chunks_count,
        "recommended_chunk_size": plan.recommendation.chunk_size,
    }
    return jsonify(body), 201


@chunked.put("/upload/chunked")
@chunked.put("/chunked-upload")
@chunk_request
def put_chunk() -> Response:
    account = optional_account()
    task = engine.find(db_session(), _session_id(), account, Protocol.CHUNKED)
    index = _int_header("X-Chunk-Number")
    assert index is not None
    result = write_request_chunk(task, index, auto_complete=True)
    task = result.task
    return jsonify(
        {
            "success": True,
            "chunk": index,
            "uploaded_bytes": task.bytes_received,
            "total_size": task.file_size,
            "progress": _fraction(task),
            "completed": task.status == UploadStatus.COMPLETED,
        }
    )


@chunked.get("/upload/status")
@chunked.get("/upload-status")
def session_status() -> Response:
    account = optional_account()
    return jsonify(_status_body(engine.status(db_session(), _session_id(), account, Protocol.CHUNKED)))


def _fraction(task: UploadTask) -> float:
    return round(task.bytes_received / task.file_size, 4) if task.file_size else 0.0


def _status_body(state: engine.UploadState) -> dict[str, Any]:
    task = state.task
    return {
        "session_id": task.task_id,
        "filename": task.file_name,
        "total_size": task.file_size,
        "uploaded_bytes": task.bytes_received,
        "progress": _fraction(task),
        "completed": task.status == UploadStatus.COMPLETED,
        "chunks": len(state.uploaded_chunks),
        "missing_chunks": state.missing_chunks,
    }
