"""XEP-0363 slot URLs: ``PUT``/``GET``/``HEAD``/``OPTIONS {base_path}<slot>/<filename>``.

Registered under ``[xep0363] base_path``. Answers follow Prosody's
external-upload contract: 201, 400, 403, 409, 411, 413. A slot path has at
least two segments, so single-segment routes of other blueprints under the
same prefix (``/upload/chunked``, ``/upload/status``) are never slots; they
are static rules, which Flask matches before this converter rule anyway.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from hmacfs.auth import bearer_token
from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.errors import LengthRequired, NotFound, PayloadTooLarge
from hmacfs.models.status import Protocol
from hmacfs.uploads import engine
from hmacfs.web.bodies import request_body
from hmacfs.web.context import db_session, services
from hmacfs.web.cors import allowed_origin
from hmacfs.web.download_response import Download, download_response, load_download
from hmacfs.web.errors import problem
from hmacfs.web.params import media_type
from hmacfs.xep0363.service import find_slot_file
from hmacfs.xep0363.signing import (
    DEFAULT_CONTENT_TYPE,
    BadPath,
    FileShareGrant,
    SignedRequest,
    extension_allowed,
    split_request_path,
    verify_file_share_token,
    verify_query,
)

xep0363 = Blueprint("xep0363", __name__)

CORS_METHODS = "GET, HEAD, PUT, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_EXPOSED = "ETag, Content-Length, Content-Range, Content-Disposition, Last-Modified"


def _secrets(settings: Settings) -> tuple[str, ...]:
    return (settings.security.secret, *settings.security.previous_secrets)


def _signed_request(settings: Settings, size: int, content_type: str) -> SignedRequest:
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    full, path = split_request_path(
        raw, settings.xep0363.base_path, max_length=settings.xep0363.max_path_length
    )
    return SignedRequest(request.method, path, full, size, content_type)


def _authorise(settings: Settings, signed: SignedRequest) -> FileShareGrant:
    """Query signature (v, v2, token, v3) or a Prosody file-share JWT; 403 otherwise.
    What the token grants (uploader, expiry); nothing for a query signature."""
    token = bearer_token()
    if token is not None and not any(name in request.args for name in ("v", "v2", "v3", "token")):
        return verify_file_share_token(_secrets(settings), token, signed)
    verify_query(
        _secrets(settings),
        signed,
        request.args,
        now=time.time(),
        signed_path=settings.xep0363.signed_path,
    )
    return NO_GRANT


NO_GRANT = FileShareGrant(uploader=None, expires=None)


def _declared_size(settings: Settings) -> int:
    size = request.content_length
    if size is None:
        raise LengthRequired("Content-Length is required")
    if size > settings.uploads.max_upload_size:
        raise PayloadTooLarge(
            "file too large", details={"size": size, "maxSize": settings.uploads.max_upload_size}
        )
    return size


@xep0363.put("/<path:_slot>", provide_automatic_options=False)
def put_slot(_slot: str) -> tuple[Response, int]:
    settings = services().settings
    content_type = request.headers.get("Content-Type", "")
    if content_type:
        media_type(content_type, "Content-Type")  # it is stored, then sent back on download
    signed = _signed_request(settings, request.content_length or 0, content_type)
    size = _declared_size(settings)
    grant = _authorise(settings, signed)
    name = signed.path.rsplit("/", 1)[-1]
    if not extension_allowed(name, settings.uploads.allowed_extensions):
        raise BadPath("file extension not allowed", code="EXTENSION_NOT_ALLOWED")
    # A client that waits for 100 Continue has sent no body yet: check the slot first.
    waits = request.headers.get("Expect", "").lower() == "100-continue"
    upload = engine.WholeUpload(
        Protocol.XEP0363,
        name,
        content_type or DEFAULT_CONTENT_TYPE,
        size=size,
        path=signed.path,
        check_first=waits,
        uploader=grant.uploader,
        expires=grant.expires,
    )
    file = engine.receive_whole(db_session(), services(), upload, request_body())
    return jsonify({"path": file.path, "size": file.size, "sha256": file.sha256}), 201


@xep0363.route("/<path:_slot>", methods=["GET", "HEAD"], provide_automatic_options=False)
def get_slot(_slot: str) -> Response:
    svc = services()
    signed = _signed_request(svc.settings, 0, "")
    download = _slot_download(svc, signed.path)
    if svc.settings.xep0363.require_signature_for_get:
        _authorise(
            svc.settings,
            SignedRequest("GET", signed.path, signed.full_path, download.size, download.content_type),
        )
    return download_response(download, request, svc.settings, svc.metrics)


def _slot_download(svc: Services, path: str) -> Download:
    """The file at slot ``path``: from this worker's cache, else from the database (then
    cached, unless a change notice came during the lookup). NotFound when there is none."""
    now = svc.clock.now()
    cache = svc.slot_cache
    cached: Download | None = cache.get(path, now)
    if cached is not None:
        return cached
    generation = cache.generation
    found = find_slot_file(db_session(), path, now)
    if found is None:
        raise NotFound("no such file")
    file, blob = found
    download = load_download(svc.store, file, blob)
    cache.put(path, download, file.expired_at, generation)
    return download


@xep0363.route("/<path:_slot>", methods=["OPTIONS"], provide_automatic_options=False)
def preflight(_slot: str) -> Response:
    origin = request.headers.get("Origin")
    if origin is not None and _allowed_origin(services().settings, origin) is None:
        return problem(403, "CORS_ORIGIN_DENIED", "origin not allowed")
    response = Response(status=204, headers={"Allow": CORS_METHODS})
    if origin is not None:
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


def _allowed_origin(settings: Settings, origin: str) -> str | None:
    return allowed_origin(
        (*settings.server.cors_allowed_origins, *settings.xep0363.cors_allowed_origins), origin
    )


@xep0363.after_request
def _cors(response: Response) -> Response:
    origin = request.environ.get("HTTP_ORIGIN")  # on every slot answer: no header view
    allowed = _allowed_origin(services().settings, origin) if origin else None
    if allowed is not None:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        response.headers.add("Vary", "Origin")
    return response
