"""``POST /upload``: multipart upload (field ``file``), as hmac-file-server takes it.

Authorised by ``X-Signature`` (bound to an expiry, the file name and size:
``docs/signatures.md``; the file then has no owner) or a bearer JWT (the account owns it).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from hmacfs.config import Settings
from hmacfs.errors import BadRequest, LengthRequired, PayloadTooLarge
from hmacfs.multipart import store_multipart_upload
from hmacfs.web.bodies import request_stream
from hmacfs.web.context import db_session, services
from hmacfs.web.signature import upload_grant

multipart = Blueprint("multipart", __name__)

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
    svc = services()
    grant = upload_grant()
    file = store_multipart_upload(
        db_session(),
        svc,
        account_id=grant.account,
        signed=grant.signed,
        boundary=_boundary(),
        read=request_stream(),
        length=_length(svc.settings),
    )
    url = url_for("downloads.download_file", file_id=str(file.id), _external=True)
    return jsonify({"filename": file.name, "size": file.size, "sha256": file.sha256, "url": url}), 201
