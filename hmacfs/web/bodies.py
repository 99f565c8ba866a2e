"""Request bodies as bounded readers.

Nothing here holds a whole body: a raw body is read from the request stream
and a multipart body is decoded incrementally, yielding only the bytes of
the wanted file field.
"""

from __future__ import annotations

import io
import socket
from typing import IO, Any

from flask import request
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader
from werkzeug.exceptions import ClientDisconnected

from hmacfs.errors import BadRequest
from hmacfs.multipart import FieldStream
from hmacfs.storage.copying import Reader

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


class SocketBody:
    """The rest of a request body of known length, read straight from the client's socket.

    gunicorn's body reader returns each read as new ``bytes`` assembled in a
    BytesIO (four copies of every byte); this fills the store's buffers with
    ``recv_into`` instead. It first takes what gunicorn already buffered, and
    keeps gunicorn's own count of the body in step, so keep-alive and the
    next request are unaffected. Ends (0, b"") at the end of the body, or early
    when the client goes away, which the store reports as IncompleteBody.
    """

    def __init__(self, sock: socket.socket, unreader: Any, reader: Any) -> None:
        self._sock, self._unreader, self._reader = sock, unreader, reader

    @classmethod
    def of(cls, environ: dict[str, Any]) -> SocketBody | None:
        """The socket body of this request when gunicorn serves it and nothing has been
        read from the body yet; None otherwise (then use the WSGI stream)."""
        sock, body = environ.get("gunicorn.socket"), environ.get("wsgi.input")
        reader = getattr(body, "reader", None)
        unreader = getattr(reader, "unreader", None)
        if (
            isinstance(sock, socket.socket)
            and isinstance(reader, LengthReader)
            and isinstance(unreader, SocketUnreader)
            and unreader.sock is sock
            and isinstance(getattr(body, "buf", None), io.BytesIO)
            and not body.buf.getbuffer().nbytes  # type: ignore[union-attr]
        ):
            return cls(sock, unreader, reader)
        return None

    def readinto(self, view: memoryview) -> int:
        want: int = min(len(view), self._reader.length)
        if want <= 0:
            return 0
        buffered = self._unreader.take_buffered()
        if buffered:
            got = min(want, len(buffered))
            view[:got] = buffered[:got]
            if got < len(buffered):
                self._unreader.unread(buffered[got:])  # the next pipelined request
        else:
            try:
                got = self._sock.recv_into(view[:want])
            except OSError:  # reset or timed out: a short body
                return 0
        self._reader.length -= got
        return got

    def __call__(self, size: int) -> bytes:
        buffer = bytearray(size)
        got = self.readinto(memoryview(buffer))
        return bytes(buffer[:got])


def request_body() -> Reader:
    """The raw request body as a reader: from the socket when possible, else the WSGI stream."""
    return SocketBody.of(request.environ) or stream_reader(request.stream)


def chunk_body(field: str = "chunk") -> tuple[Reader, int | None]:
    """The request's chunk as a reader and its declared length (None for multipart bodies)."""
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise BadRequest("multipart body without boundary", code="INVALID_MULTIPART")
        body = stream_reader(request.stream)
        return FieldStream(body, boundary.encode("latin-1"), field, request.content_length).read, None
    return request_body(), request.content_length
