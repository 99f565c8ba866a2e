"""The gunicorn worker hmacfs runs: gunicorn's gevent worker, with two changes at
the connection level.

``Expect: 100-continue``. gunicorn answers ``100 Continue`` in ``wsgi.create``,
before the application has seen the request, so a PUT refused from its head
(413, 409, 403, 400) made the client send its body for nothing. Here the 100
is sent when the application first reads the body, and not at all when it
answers without reading: the refusal is then the first status line, and the
connection closes after it (the client may or may not have started the body,
so the stream cannot be trusted for a next request).

Slow and idle clients. A connection must deliver a complete request head
within ``timeouts.request_head`` of its start (of its accept, or of the first
byte of a next request on a kept-alive connection); a kept-alive connection
that sends no next request within ``timeouts.idletimeout`` is closed. So a
client trickling its headers, or holding a connection without a request,
loses its slot instead of keeping it for ever. Body reads are not bounded
here: they keep ``timeouts.body_idle`` (``hmacfs.web.bodies``).

Both hook only into gunicorn's documented extension points (a ``worker_class``,
its ``handle_request`` and ``timeout_ctx``) and the request's body reader.
"""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.socket import wait_read
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.ggevent import GeventWorker

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SPARE_FILES = 256  # descriptors beyond the connections: database pool, parts, blobs, logs


class HmacfsGeventWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with a lazy ``100 Continue`` and bounded request heads."""

    head_timeout: float = 10.0
    idle_timeout: float = 60.0

    def init_process(self) -> None:
        raise_open_files_limit(self.worker_connections + _SPARE_FILES)
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        timeouts = self.wsgi.extensions["hmacfs"].settings.timeouts
        self.head_timeout = timeouts.request_head.total_seconds()
        self.idle_timeout = timeouts.idletimeout.total_seconds()

    def timeout_ctx(self) -> gevent.Timeout:
        """Bounds reading one request head (gunicorn's keep-alive loop wraps it in this);
        on expiry the head counts as absent and gunicorn closes the connection.

        Each connection gets between 3/4 of ``request_head`` and all of it, so a
        crowd of slow clients opened together is not dropped (and back) in one burst
        that would stall the worker's loop for everyone else."""
        return gevent.Timeout(self.head_timeout * random.uniform(0.75, 1.0), False)  # noqa: S311 (not a secret)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        defer_continue(req, sock)
        super().handle_request(listener_name, req, sock, addr)
        await_next_request(req, sock, self.idle_timeout, lambda: bool(self.alive))


_SHUTDOWN_CHECK = 1.0  # seconds between looks at "is the worker stopping?" while idle


def await_next_request(req: Any, sock: Any, idle: float, alive: Callable[[], bool]) -> None:
    """Return once the connection has bytes of a next request; raise StopIteration (which
    gunicorn takes as "close the connection") when it stays silent for ``idle`` seconds,
    or once ``alive()`` turns false: an idle connection does not hold a graceful
    shutdown open (the client reconnects, to another worker)."""
    if req.unreader.buf.getbuffer().nbytes:
        return  # pipelined: the next head is already here
    deadline = time.monotonic() + idle
    while alive():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            wait_read(sock.fileno(), timeout=min(left, _SHUTDOWN_CHECK), timeout_exc=TimeoutError("idle"))
            return
        except TimeoutError:
            continue
    raise StopIteration("idle keep-alive connection")


def defer_continue(req: Any, sock: Any) -> None:
    """Turn gunicorn's immediate ``100 Continue`` for ``req`` into one sent on the first
    read of its body.

    Until then the request is marked to close its connection: an answer given
    without reading leaves the body's bytes in doubt. Sending the 100 restores
    the request's own keep-alive.
    """
    if not req._expected_100_continue:
        return
    req._expected_100_continue = False  # gunicorn's wsgi.create would send it now
    reader = req.body.reader
    if isinstance(reader, LengthReader) and reader.length == 0:
        return  # no body, nothing to wait for
    announce = _Continue(req, sock)
    if isinstance(reader, LengthReader) and isinstance(reader.unreader, SocketUnreader):
        # hmacfs.web.bodies reads a body of known length through this unreader,
        # from gunicorn's buffer and then straight from the socket.
        reader.unreader = _AnnouncingUnreader(reader.unreader, announce)
    else:
        req.body.reader = _AnnouncingReader(reader, announce)
    req.must_close = True


class _Continue:
    """Sends ``100 Continue`` once, then lets the request keep its connection again."""

    def __init__(self, req: Any, sock: Any) -> None:
        self._req, self._sock = req, sock
        self._close_after = req.must_close
        self.sent = False

    def __call__(self) -> None:
        if self.sent:
            return
        self.sent = True
        self._sock.sendall(CONTINUE)
        self._req.must_close = self._close_after


class _AnnouncingUnreader(SocketUnreader):  # type: ignore[misc]
    """The connection's unreader as a body of known length sees it: every way of taking
    bytes announces first. A SocketUnreader on the same socket, so code that reads the
    socket directly (``SocketBody``) still recognises it; its buffer is the shared one."""

    def __init__(self, inner: Any, announce: Callable[[], None]) -> None:
        # No super().__init__(): the buffer and the socket stay the inner unreader's.
        self.inner, self.sock, self.mxchunk = inner, inner.sock, inner.mxchunk
        self._announce = announce

    @property
    def buf(self) -> Any:
        return self.inner.buf

    def chunk(self, size_hint: int | None = None) -> bytes:
        self._announce()
        return self.inner.chunk(size_hint)  # type: ignore[no-any-return]

    def read(self, size: int | None = None, read_ahead: int | None = None) -> bytes:
        self._announce()
        return self.inner.read(size, read_ahead=read_ahead)  # type: ignore[no-any-return]

    def take_buffered(self) -> bytes:
        self._announce()
        return self.inner.take_buffered()  # type: ignore[no-any-return]

    def unread(self, data: bytes) -> None:
        self.inner.unread(data)


class _AnnouncingReader:
    """A chunked (or read-to-EOF) body reader that announces before its first read."""

    def __init__(self, inner: Any, announce: Callable[[], None]) -> None:
        self._inner, self._announce = inner, announce

    def read(self, size: int) -> bytes:
        self._announce()
        return self._inner.read(size)  # type: ignore[no-any-return]


def raise_open_files_limit(wanted: int) -> None:
    """Lift this process's soft limit on open files towards ``wanted`` (never past the
    hard limit): every connection holds a descriptor, and the common default of 1024
    would refuse connections long before ``worker_connections``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
