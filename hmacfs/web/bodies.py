"""Request bodies as bounded readers.

Nothing here holds a whole body: a raw body is read from the request stream
and a multipart body is decoded incrementally, yielding only the bytes of
the wanted file field.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from flask import request
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader
from werkzeug.exceptions import ClientDisconnected

from hmacfs.errors import BadRequest
from hmacfs.storage.copying import Reader
from hmacfs.web.context import services
from hmacfs.web.multipart_form import FieldStream

_READ = 64 * 1024
_BUFFER_LIMIT = 1024 * 1024  # undecoded bytes held at most (data events drain the buffer)
_MAX_PARTS = 16


@contextmanager
def idle_limit(sock: socket.socket | None, seconds: float | None) -> Iterator[None]:
    """Let a read from ``sock`` wait at most ``seconds`` for a byte (``socket.timeout``, an
    OSError, after that), then restore the socket's own timeout.

    A client that switches networks mid-upload leaves its old connection open
    without a FIN or RST ever reaching us; without a limit that request would
    wait for bytes forever, holding its upload (tus's writer lock) against the
    client's retry. The limit applies to body reads only: the keep-alive wait
    and WebSockets keep their own timeouts.
    """
    if sock is None or seconds is None:
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        yield
    finally:
        sock.settimeout(previous)


def stream_reader(stream: IO[bytes], sock: socket.socket | None = None, idle: float | None = None) -> Reader:
    """A reader that ends (b"") where the body ends, also when it ends before Content-Length
    or stays silent for ``idle`` seconds (reading from ``sock``), so the store reports a
    short body as IncompleteBody and records nothing."""

    def read(size: int) -> bytes:
        try:
            with idle_limit(sock, idle):
                return stream.read(size)
        except (ClientDisconnected, OSError):  # gone, reset, or silent for ``idle`` seconds
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

    def __init__(self, sock: socket.socket, unreader: Any, reader: Any, idle: float | None = None) -> None:
        self._sock, self._unreader, self._reader, self._idle = sock, unreader, reader, idle

    @classmethod
    def of(cls, environ: dict[str, Any], idle: float | None = None) -> SocketBody | None:
        """The socket body of this request when gunicorn serves it and nothing has been
        read from the body yet; None otherwise (then use the WSGI stream). A read
        waits at most ``idle`` seconds for a byte (see ``idle_limit``)."""
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
            return cls(sock, unreader, reader, idle)
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
                with idle_limit(self._sock, self._idle):
                    got = self._sock.recv_into(view[:want])
            except OSError:  # reset, or silent for ``idle`` seconds: a short body
                return 0
        self._reader.length -= got
        return got

    def __call__(self, size: int) -> bytes:
        buffer = bytearray(size)
        got = self.readinto(memoryview(buffer))
        return bytes(buffer[:got])


def request_body() -> Reader:
    """The raw request body as a reader: from the socket when possible, else the WSGI stream.
    Either ends early once the client has been silent for ``timeouts.body_idle``."""
    return SocketBody.of(request.environ, _body_idle()) or request_stream()


def request_stream() -> Reader:
    """The WSGI body stream as a reader, ending early after ``timeouts.body_idle`` of silence."""
    sock = request.environ.get("gunicorn.socket")
    return stream_reader(request.stream, sock if isinstance(sock, socket.socket) else None, _body_idle())


def _body_idle() -> float:
    return services().settings.timeouts.body_idle.total_seconds()


def chunk_body(field: str = "chunk") -> tuple[Reader, int | None]:
    """The request's chunk as a reader and its declared length (None for multipart bodies)."""
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise BadRequest("multipart body without boundary", code="INVALID_MULTIPART")
        body = request_stream()
        return FieldStream(body, boundary.encode("latin-1"), field, request.content_length).read, None
    return request_body(), request.content_length
