"""Request bodies as bounded readers.

Nothing here holds a whole body: a raw body is read from the request stream
and a multipart body is decoded incrementally, yielding only the bytes of
the wanted file field.
"""

from __future__ import annotations

from typing import IO

from flask import request
from werkzeug.exceptions import ClientDisconnected

from hmacfs.errors import BadRequest
from hmacfs.multipart import FieldStream
from hmacfs.storage.local import Reader

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


def chunk_body(field: str = "chunk") -> tuple[Reader, int | None]:
    """The request's chunk as a reader and its declared length (None for multipart bodies)."""
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise BadRequest("multipart body without boundary", code="INVALID_MULTIPART")
        body = stream_reader(request.stream)
        return FieldStream(body, boundary.encode("latin-1"), field, request.content_length).read, None
    return stream_reader(request.stream), request.content_length
