"""tus 1.0 at ``/files/``: core plus creation, creation-with-upload, creation-defer-length,
expiration, checksum, termination and concatenation (https://tus.io/protocols/resumable-upload).

A protocol adapter only: headers in, one engine call, headers out. Errors keep
the JSON problem body but use tus status codes (460 checksum mismatch, 423
while another request writes the upload: rendered in ``hmacfs.web.errors``;
412 for an unsupported version).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from email.utils import format_datetime

from flask import Blueprint, Response, request

from hmacfs.auth import optional_account
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.errors import BadRequest, Forbidden, Gone, HmacfsError, LengthRequired, Unauthorized
from hmacfs.models import UploadTask
from hmacfs.models.status import OPEN_STATUSES, Protocol, UploadStatus
from hmacfs.uploads import engine
from hmacfs.web.adaptive import CHUNK_SIZE_HEADER, current_arm, current_recommendation, plan_create
from hmacfs.web.bodies import request_body
from hmacfs.web.client_link import body_watch
from hmacfs.web.context import body_transaction, db_session, hold_through_body, services
from hmacfs.web.params import media_type
from hmacfs.web.tus_headers import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    encode_metadata,
    parse_concat,
    parse_metadata,
    parse_offset,
    parse_upload_checksum,
)
from hmacfs.web.urls import public_url

tus = Blueprint("tus", __name__)

EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation"
)
OFFSET_STREAM = "application/offset+octet-stream"
# A completed upload's file (answers to the last PATCH, to HEAD, to creation-with-upload).
FILE_ID_HEADER = "Hmacfs-File-Id"
FILE_URL_HEADER = "Hmacfs-File-Url"


class UnsupportedVersion(HmacfsError):
    status = 412
    code = "TUS_VERSION_UNSUPPORTED"


class UnsupportedMediaType(HmacfsError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


@tus.before_request
def _check_version() -> None:
    if not services().settings.uploads.resumable_uploads_enabled:
        raise Forbidden("resumable uploads are disabled", code="FEATURE_DISABLED")
    if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise UnsupportedVersion(
            f"Tus-Resumable {TUS_VERSION} required", headers={"Tus-Version": TUS_VERSION}
        )
    hold_through_body()


@tus.after_request
def _tus_headers(response: Response) -> Response:
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@tus.route("/files/", methods=["OPTIONS"])
@tus.route("/files/<upload_id>", methods=["OPTIONS"])
def options(upload_id: str | None = None) -> tuple[str, int, dict[str, str]]:
    return "", 204, {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(services().settings.uploads.max_upload_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }  # fmt: skip


def _caller(pool_id: uuid.UUID) -> uuid.UUID | None:
    """The JWT account; anonymous callers only into a pool that allows them."""
    account = optional_account()
    if account is None and not engine.pool_allows_anonymous(db_session(), pool_id):
        raise Unauthorized("authentication required for this pool", code="AUTHENTICATION_REQUIRED")
    return account


def _new_upload(
    metadata: dict[str, str | None], size: int | None, account: uuid.UUID | None
) -> engine.NewUpload:
    name = metadata.get("filename") or metadata.get("name") or "upload"
    content_type = metadata.get("filetype") or metadata.get("type") or "application/octet-stream"
    return engine.NewUpload(
        protocol=Protocol.TUS,
        file_name=engine.check_file_name(name, "Upload-Metadata filename"),
        file_size=size,
        account_id=account,
        pool_id=_metadata_pool(metadata),
        content_type=media_type(content_type, "Upload-Metadata filetype"),
        metadata={"tus": dict(metadata)},
    )


def _metadata_pool(metadata: dict[str, str | None]) -> uuid.UUID:
    raw = metadata.get("poolId")
    try:
        return DEFAULT_POOL_ID if not raw else uuid.UUID(raw)
    except ValueError:
        raise BadRequest("poolId metadata must be a UUID", code="INVALID_METADATA") from None


def _declared_length() -> int | None:
    if request.headers.get("Upload-Defer-Length") == "1":
        if "Upload-Length" in request.headers:
            raise BadRequest("Upload-Length and Upload-Defer-Length together", code="INVALID_HEADER")
        return None
    if "Upload-Length" not in request.headers:
        raise BadRequest("Upload-Length or Upload-Defer-Length: 1 required", code="MISSING_HEADER",
                         details={"field": "Upload-Length"})  # fmt: skip
    return parse_offset(request.headers.get("Upload-Length"), "Upload-Length")


@tus.post("/files/")
def create() -> tuple[str, int, dict[str, str]]:
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    account = _caller(_metadata_pool(metadata))
    concat = parse_concat(request.headers.get("Upload-Concat"))
    session = db_session()
    if concat is not None and concat.kind == "final":
        parts = engine.find_parts(session, concat.parts, account)
        new = _new_upload(metadata, None, account)
        stored = {**(new.metadata or {}), "parts": list(concat.parts)}
        task = engine.concatenate(session, services(), replace(new, metadata=stored), parts)
        return "", 201, {"Location": _location(task), **_state_headers(task)}
    base = _new_upload(metadata, _declared_length(), account)
    plan = plan_create(account, None, base.file_size)
    new = replace(
        base,
        concat=None if concat is None else "partial",
        task_id=plan.task_id,
        client_profile_key=plan.profile_key,
    )
    task = engine.create(session, services(), new)
    if request.content_length and request.mimetype == OFFSET_STREAM:
        task = _patch(task.task_id, account, 0)
    else:
        engine.finish_if_done(session, services(), task)
    sizes = {CHUNK_SIZE_HEADER: str(plan.recommendation.chunk_size)}
    return "", 201, {"Location": _location(task), **_state_headers(task), **sizes}


def _location(task: UploadTask) -> str:
    return public_url(f"/files/{task.task_id}")


def _state_headers(task: UploadTask) -> dict[str, str]:
    """Offset and expiry; once the upload is a stored file, which file (tus itself has no
    way to say: a client would otherwise have to look the file up by name)."""
    headers = {"Upload-Offset": str(task.upload_offset)}
    if task.status in OPEN_STATUSES:
        expiry = engine.expires_at(task, services().settings.uploads.max_resumable_age)
        headers["Upload-Expires"] = format_datetime(expiry, usegmt=True)
    if task.file_id is not None:
        headers[FILE_ID_HEADER] = str(task.file_id)
        headers[FILE_URL_HEADER] = public_url(f"/download/{task.file_id}")
    return headers


def _upload(upload_id: str) -> UploadTask:
    task = engine.find(db_session(), upload_id, optional_account(), Protocol.TUS)
    if task.status in {UploadStatus.EXPIRED, UploadStatus.CANCELLED, UploadStatus.FAILED}:
        raise Gone("upload is no longer available", code=f"UPLOAD_{task.status.upper()}")
    return task


@tus.route("/files/<upload_id>", methods=["HEAD"])
def head(upload_id: str) -> tuple[str, int, dict[str, str]]:
    task = _upload(upload_id)
    headers = _state_headers(task)
    if task.size_deferred:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(task.file_size)
    stored = task.upload_metadata or {}
    if stored.get("tus"):
        headers["Upload-Metadata"] = encode_metadata(stored["tus"])
    if task.concat == "final":
        base = _location(task).rsplit("/", 1)[0]
        headers["Upload-Concat"] = "final;" + " ".join(f"{base}/{part}" for part in stored.get("parts", []))
    elif task.concat is not None:
        headers["Upload-Concat"] = task.concat
    _, advice = current_recommendation(optional_account(), arm=current_arm(upload_id))
    headers[CHUNK_SIZE_HEADER] = str(advice.chunk_size)
    return "", 200, headers


@tus.patch("/files/<upload_id>")
def patch(upload_id: str) -> tuple[str, int, dict[str, str]]:
    if request.mimetype != OFFSET_STREAM:
        raise UnsupportedMediaType(f"Content-Type must be {OFFSET_STREAM}", details={"field": "Content-Type"})
    offset = parse_offset(request.headers.get("Upload-Offset"))
    task = _patch(upload_id, optional_account(), offset)
    return "", 204, _state_headers(task)


def _patch(upload_id: str, account: uuid.UUID | None, offset: int) -> UploadTask:
    """The engine finds and locks the upload in the same step (one round trip): what the
    protocol asks of the upload (open, not a final concatenation) it checks there."""
    length = request.content_length
    if length is None:
        raise LengthRequired("Content-Length is required", code="LENGTH_REQUIRED")
    declared = request.headers.get("Upload-Length")
    digest = parse_upload_checksum(request.headers.get("Upload-Checksum"))
    watch = body_watch()
    return engine.write_at_offset(
        db_session(), services(), upload_id, offset, request_body(watch), account_id=account,
        length=length, body=body_transaction(), digest=digest,
        declared_size=None if declared is None else parse_offset(declared, "Upload-Length"), watch=watch,
    )  # fmt: skip


@tus.delete("/files/<upload_id>")
def delete(upload_id: str) -> tuple[str, int]:
    engine.terminate(db_session(), services(), _upload(upload_id))
    return "", 204


@tus.post("/files/<upload_id>")
def method_override(upload_id: str) -> tuple[str, int, dict[str, str]] | tuple[str, int]:
    """``X-HTTP-Method-Override`` for clients behind proxies that only pass GET and POST."""
    method = request.headers.get("X-HTTP-Method-Override", "").upper()
    if method == "PATCH":
        return patch(upload_id)
    if method == "HEAD":
        return head(upload_id)
    if method == "DELETE":
        return delete(upload_id)
    raise BadRequest("POST to an upload needs X-HTTP-Method-Override", code="METHOD_NOT_ALLOWED")
