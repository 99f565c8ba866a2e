"""Request bodies as bounded readers.

Nothing here holds a whole body: a raw body is read from the request stream
and a multipart body is decoded incrementally, yielding only the bytes of
the wanted file field.
"""

from __future__ import annotations

import io
import math
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from flask import request
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader
from werkzeug.exceptions import ClientDisconnected

from hmacfs.errors import BadRequest
from hmacfs.models import UploadTask
from hmacfs.network.estimate import Outcome
from hmacfs.storage.copying import Reader
from hmacfs.uploads import engine
from hmacfs.web.adaptive import measure
from hmacfs.web.client_link import body_watch, client_kind
from hmacfs.web.context import body_transaction, db_session, services
from hmacfs.web.multipart_form import FieldStream
from hmacfs.web.network_header import HEADER, network_class
from hmacfs.web.tus_headers import parse_chunk_digest

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

    def __init__(
        self,
        sock: socket.socket,
        unreader: Any,
        reader: Any,
        idle: float | None = None,
        watch: engine.BodyWatch | None = None,
    ) -> None:
        self._sock, self._unreader, self._reader, self._idle = sock, unreader, reader, idle
        self._watch = watch
        self._last_byte = time.monotonic()
        self.failure: Outcome | None = None  # why the body ended early, for the measurement

    @classmethod
    def of(
        cls, environ: dict[str, Any], idle: float | None = None, watch: engine.BodyWatch | None = None
    ) -> SocketBody | None:
        """The socket body of this request when gunicorn serves it and nothing has been
        read from the body yet; None otherwise (then use the WSGI stream). A read
        waits at most ``idle`` seconds for a byte (see ``idle_limit``); with a ``watch``
        it wakes every ``watch.poll`` meanwhile, so the engine can hand the chunk over
        to the client's retry (``hmacfs.uploads.handoff``)."""
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
            return cls(sock, unreader, reader, idle, watch)
        return None

    @property
    def sock(self) -> socket.socket:
        return self._sock

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
                got = self._receive(view[:want])
            except OSError as exc:  # reset, or silent for ``idle`` seconds: a short body
                self._failed(exc)
                return 0
        self._reader.length -= got
        return got

    def wait_readable(self) -> bool:
        """Wait (as a read would: ``idle``, waking the watch) until a byte of the body can
        be read, without holding a buffer; False when the body is over, the client went
        away or stayed silent. Takes gunicorn's read-ahead first, which also sends a
        deferred ``100 Continue`` (``hmacfs.http_worker``), so a client waiting for it goes on."""
        if self._reader.length <= 0:
            return False
        buffered = self._unreader.take_buffered()
        if buffered:
            self._unreader.unread(buffered)
            return True
        try:
            return bool(self._receive(memoryview(bytearray(1)), socket.MSG_PEEK))
        except OSError as exc:
            self._failed(exc)
            return False

    def _failed(self, exc: OSError) -> None:
        self.failure = Outcome.TIMED_OUT if isinstance(exc, TimeoutError) else Outcome.SHORT

    def _receive(self, view: memoryview, flags: int = 0) -> int:
        """``recv_into`` that waits at most ``idle`` seconds since the last byte, waking
        every ``watch.poll`` to tell the watch how long it has been silent (which raises
        WriterPreempted once the client's retry has taken over)."""
        poll = self._watch.poll if self._watch is not None else None
        if self._watch is None or poll is None:
            with idle_limit(self._sock, self._idle):
                return self._sock.recv_into(view, 0, flags)
        while True:
            silent = time.monotonic() - self._last_byte
            left = math.inf if self._idle is None else self._idle - silent
            if left <= 0:
                raise TimeoutError("silent for timeouts.body_idle")
            try:
                with idle_limit(self._sock, min(poll, left)):
                    got = self._sock.recv_into(view, 0, flags)
            except TimeoutError:
                self._watch.silent(time.monotonic() - self._last_byte)
                continue
            if got:
                self._watch.heard()
                self._last_byte = time.monotonic()
            return got

    def __call__(self, size: int) -> bytes:
        buffer = memoryview(bytearray(size))
        return bytes(buffer[: self.readinto(buffer)])  # one copy: the view's slice is not one


def request_body(watch: engine.BodyWatch | None = None) -> Reader:
    """The raw request body as a reader: from the socket when possible, else the WSGI stream.
    Either ends early once the client has been silent for ``timeouts.body_idle`` (times
    the client's network class's ``timeout_multiplier``). The socket reader reports
    silences to ``watch`` (see ``SocketBody.of``). A socket body is measured, and on the
    adaptive arm read in sizes that follow its rate (``hmacfs.web.adaptive``)."""
    body = SocketBody.of(request.environ, _body_idle(), watch)
    if body is None:
        return request_stream()
    return measure(body, body.sock)


def request_stream() -> Reader:
    """The WSGI body stream as a reader, ending early after ``timeouts.body_idle`` of silence."""
    sock = request.environ.get("gunicorn.socket")
    return stream_reader(request.stream, sock if isinstance(sock, socket.socket) else None, _body_idle())


def _body_idle() -> float:
    """``timeouts.body_idle`` stretched for the client's network class (``[network_interfaces]``)
    and kind of device (``[client_optimization]``): a phone on cellular gets longer to come
    back from a radio stall."""
    settings = services().settings
    tuning = settings.network_interfaces.of(network_class(request.headers.get(HEADER)))
    kind = settings.client_optimization.timeout_multiplier(client_kind(request.headers.get("User-Agent")))
    return settings.timeouts.body_idle.total_seconds() * tuning.timeout_multiplier * kind


def chunk_body(field: str = "chunk", watch: engine.BodyWatch | None = None) -> tuple[Reader, int | None]:
    """The request's chunk as a reader and its declared length (None for multipart bodies).
    Both are measured; a raw body reports silences to ``watch``, while a multipart one is
    never taken over (its decoder cannot resume after a timed-out read)."""
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary")
        if not boundary:
            raise BadRequest("multipart body without boundary", code="INVALID_MULTIPART")
        body = request_body()
        return FieldStream(body, boundary.encode("latin-1"), field, request.content_length).read, None
    return request_body(watch), request.content_length


def write_request_chunk(task: UploadTask, index: int, *, auto_complete: bool = False) -> engine.ChunkResult:
    """The request's body as chunk ``index`` of ``task``, through the engine: checked against
    its digest header (``Content-Digest`` or ``X-Chunk-SHA256``), watched for a stalled or
    switched network, in the request's transaction mode. The Drive and chunked APIs' verb."""
    headers = request.headers
    digest = parse_chunk_digest(headers.get("Content-Digest"), headers.get("X-Chunk-SHA256"))
    watch = body_watch()
    read, declared = chunk_body(watch=watch)
    return engine.write_chunk(
        db_session(), services(), task, index, read,
        declared_length=declared, body=body_transaction(), digest=digest,
        auto_complete=auto_complete, watch=watch,
    )  # fmt: skip
