"""Request bodies as bounded readers, and the X-Signature check of the chunked API.

Nothing here holds a whole body: a raw body is read from the request stream
and a multipart body is decoded incrementally, yielding only the bytes of
the wanted file field.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from flask import request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder

from hmacfs.auth import bearer_token, current_account
from hmacfs.errors import BadRequest, Unauthorized
from hmacfs.web.context import services

Reader = Callable[[int], bytes]
_READ = 64 * 1024
_BUFFER_LIMIT = 1024 * 1024  # undecoded bytes held at most (data events drain the buffer)
_MAX_PARTS = 16


def stream_reader(stream: IO[bytes]) -> Reader:
    """A reader that ends (b"") where the body ends, also when it ends before Content-Length,
    so the store reports a short body as IncompleteBody and records nothing."""

    def read(size: int) -> bytes:
        try:
            return stream.read(size)
        except ClientDisconnected:
            return b""

    return read


def multipart_reader(stream: IO[bytes], boundary: str, field: str) -> Reader:
    """Read the bytes of file field ``field`` from a multipart body, decoding as it goes."""
    chunks = _field_data(stream, boundary.encode("latin-1"), field)
    pending = bytearray()

    def read(size: int) -> bytes:
        while len(pending) < size:
            block = next(chunks, b"")
            if not block:
                break
            pending.extend(block)
        data = bytes(pending[:size])
        del pending[:size]
        return data

    return read


def _field_data(stream: IO[bytes], boundary: bytes, field: str) -> Iterator[bytes]:
    decoder = MultipartDecoder(boundary, max_parts=_MAX_PARTS)
    wanted = found = False
    while True:
        try:
            event = decoder.next_event()
        except ValueError:
            raise BadRequest("malformed multipart body", code="INVALID_MULTIPART") from None
        if event is NEED_DATA:
            if len(decoder.buffer) > _BUFFER_LIMIT:  # headers or a field that never end
                raise BadRequest("malformed multipart body", code="INVALID_MULTIPART")
            decoder.receive_data(_read_some(stream) or None)
        elif isinstance(event, (Field, File)):
            wanted = event.name == field
            found = found or wanted
        elif isinstance(event, Data):
            if wanted and event.data:
                yield event.data
            if wanted and not event.more_data:
                return
        elif isinstance(event, Epilogue):
            if not found:
                raise BadRequest(
                    f"multipart body has no {field!r} field", code="MISSING_FIELD", details={"field": field}
                )
            return


def _read_some(stream: IO[bytes]) -> bytes:
    try:
        return stream.read(_READ)
    except ClientDisconnected:
        return b""


def chunk_body(field: str = "chunk") -> tuple[Reader, int | None]:
    """The request's chunk as a reader and its declared length (None for multipart bodies)."""
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise BadRequest("multipart body without boundary", code="INVALID_MULTIPART")
        return multipart_reader(request.stream, boundary, field), None
    return stream_reader(request.stream), request.content_length


def signature_valid(path: str, signature: str) -> bool:
    """X-Signature: hex HMAC-SHA256 of the request path under the current or a previous secret."""
    security = services().settings.security
    for secret in (security.secret, *security.previous_secrets):
        if not secret:
            continue
        expected = hmac.new(secret.encode(), path.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signature.strip().lower()):
            return True
    return False


def signed_or_account() -> uuid.UUID | None:
    """The JWT account, or None for a request carrying a valid X-Signature; 401 otherwise."""
    if bearer_token() is not None:
        return current_account()
    signature = request.headers.get("X-Signature")
    if signature and signature_valid(request.path, signature):
        return None
    raise Unauthorized("a valid X-Signature or bearer token is required", code="INVALID_SIGNATURE")
