"""``POST /upload``: multipart upload (field ``file``), as hmac-file-server takes it.

Authorised by ``X-Signature`` (bound to an expiry, the file name and size:
``docs/signatures.md``; the file then has no owner) or a bearer JWT (the account owns it).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from hmacfs.config import Settings
from hmacfs.errors import BadRequest, LengthRequired, PayloadTooLarge
from hmacfs.models.status import Protocol
from hmacfs.names import is_media_type
from hmacfs.storage.copying import Reader
from hmacfs.upload_signing import SignedUpload
from hmacfs.uploads import engine
from hmacfs.web.bodies import request_body
from hmacfs.web.context import db_session, services
from hmacfs.web.multipart_form import FieldStream, safe_filename
from hmacfs.web.signature import upload_grant
from hmacfs.web.urls import public_url
from hmacfs.xep0363.signing import BadSignature, extension_allowed

multipart = Blueprint("multipart", __name__)

FIELD = "file"

# Room for the multipart framing around a file of the largest allowed size.
FRAMING_ALLOWANCE = 64 * 1024


def _boundary() -> bytes:
    if request.mimetype != "multipart/form-data" or not request.mimetype_params.get("boundary"):
        raise BadRequest("expected multipart/form-data with a boundary", code="NOT_MULTIPART")
    return request.mimetype_params["boundary"].encode("latin-1")


def _length(settings: Settings) -> int:
    length = request.content_length
    if length is None:
        raise LengthRequired("Content-Length is required")
    if length > settings.uploads.max_upload_size + FRAMING_ALLOWANCE:
        raise PayloadTooLarge("file too large", details={"maxSize": settings.uploads.max_upload_size})
    return length


@multipart.post("/upload")
def post_upload() -> tuple[Response, int]:
    """Decode the body as it arrives and stream its ``file`` field into the engine.

    400 when there is no ``file`` field or the body is malformed, 400 INCOMPLETE_BODY
    when it ends early, 413 past ``uploads.max_upload_size``; with a JWT the account's
    quotas are checked once the body is in (403 QUOTA_EXCEEDED). With a bound signature
    the field's name must be the signed one (403 FILE_NAME_MISMATCH, before any
    byte is stored) and its size the signed size (413 past it, 400 SIZE_MISMATCH
    short of it)."""
    svc = services()
    grant = upload_grant()
    stream = FieldStream(request_body(), _boundary(), FIELD, _length(svc.settings))
    raw_name, content_type = stream.open()
    name = _allowed_name(raw_name, svc.settings.uploads.allowed_extensions)
    if not is_media_type(content_type):
        raise BadRequest("the file's Content-Type is not a media type", code="INVALID_CONTENT_TYPE")
    limit = svc.settings.uploads.max_upload_size
    if grant.signed is not None:
        limit = min(limit, _signed_size(name, grant.signed))
    owner = grant.account
    upload = engine.WholeUpload(
        Protocol.MULTIPART, name, content_type, limit=limit, account_id=owner,
        uploader=None if owner is None else str(owner),
    )  # fmt: skip
    file = engine.receive_whole(db_session(), svc, upload, _field_reader(stream, grant.signed))
    url = public_url(url_for("downloads.download_file", file_id=str(file.id)))
    return jsonify({"filename": file.name, "size": file.size, "sha256": file.sha256, "url": url}), 201


def _allowed_name(raw: str, allowed: tuple[str, ...]) -> str:
    name = safe_filename(raw)
    if not extension_allowed(name, allowed):
        raise BadRequest("file extension not allowed", code="EXTENSION_NOT_ALLOWED")
    return name


def _signed_size(name: str, signed: SignedUpload) -> int:
    """The size ``signed`` allows, once the field's ``name`` is checked against it."""
    if name != signed.file_name:
        raise BadSignature("the file name is not the signed X-Filename", code="FILE_NAME_MISMATCH")
    return signed.size


def _field_reader(stream: FieldStream, signed: SignedUpload | None) -> Reader:
    """The field's bytes; where they end, the signed size is checked and the rest of the
    body read to its closing boundary, so a bad end fails before anything is recorded."""
    received = 0

    def read(size: int) -> bytes:
        nonlocal received
        data = stream.read(size)
        received += len(data)
        if not data:
            if signed is not None and received != signed.size:
                raise BadRequest("the file is smaller than the signed size", code="SIZE_MISMATCH")
            stream.finish()
        return data

    return read
