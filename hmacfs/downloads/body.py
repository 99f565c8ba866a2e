"""Response bodies for downloads: the bytes of one or more ranges of a blob.

Under gunicorn's gevent worker, ``wsgi.file_wrapper`` (Flask's ``send_file``)
ends in gevent's ``socket.sendfile``, an 8 KiB read/send loop (measured
0.93 GB/s against nginx's 2.6 GB/s). This body instead calls the real
``os.sendfile`` on the client socket, waiting cooperatively for writability
when the kernel buffer is full, so the copy stays in the kernel and other
greenlets keep running. Where that is unavailable (TLS, no gevent, the test
client) it falls back to a read loop in large blocks.

A blob of an object store that can hand a range's body over as the socket it
arrives on (``open_socket_range``, the S3 store on a plain-HTTP endpoint) is
spliced from that socket to the client's (``hmacfs.storage.splicing``): the
bytes do not pass through the process.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hmacfs.storage import OpenBlob
from hmacfs.storage.splicing import SocketBody, splice_available, splice_body

# Each sendfile call sends at most this much, as nginx's sendfile_max_chunk (2m) does. One
# call asked for the whole rest of a 1 GiB body keeps the kernel's "more to come" flag on
# every block it queues. Bounded calls measured 1.02-1.20x the 1 GiB calls in three paired
# runs of 1 GiB GETs on loopback (docs/benchmarks.md, xep, branch getbig); a modest effect
# against this VM's noise, at no cost (512 calls per GiB).
_SENDFILE_MAX = 2 << 20
# Smaller segments are read: splicing one costs a pipe and the store connection (it is
# closed after), more than copying a few blocks.
SPLICE_AT_LEAST = 1 << 20

SocketOpener = Callable[[int, int], "SocketBody | None"]


@dataclass(frozen=True)
class Segment:
    """``prefix`` bytes (multipart headers, may be empty) then ``length`` bytes of the file from ``start``."""

    prefix: bytes
    start: int
    length: int


class FileBody:
    """A WSGI response iterable sending ``segments`` of ``blob`` then ``suffix``; it closes
    ``blob`` when closed.

    ``use_sendfile`` sends a file-backed blob with the kernel's sendfile where the
    socket allows; otherwise the blob's ranges are read in blocks of ``block_size``.
    ``on_sent(n)`` is called with the number of file bytes sent (metrics).
    """

    def __init__(
        self,
        blob: OpenBlob,
        segments: list[Segment],
        suffix: bytes,
        environ: Mapping[str, Any],
        *,
        use_sendfile: bool,
        block_size: int,
        timeout: float,
        on_sent: Callable[[int], None],
    ) -> None:
        self._blob = blob
        self._segments = segments
        self._suffix = suffix
        # An open blob with a descriptor (the local store's) can be sent with sendfile. Looked
        # up by name: a runtime Protocol isinstance cost about 2 % of a cached 4 KiB GET.
        fileno: Callable[[], int] | None = getattr(blob, "fileno", None)
        fd = fileno() if use_sendfile and fileno is not None else None
        # An object store's blob may hand its body over as the socket it arrives on.
        opener: SocketOpener | None = getattr(blob, "open_socket_range", None)
        opener = opener if use_sendfile and fd is None and splice_available() else None
        wanted = fd is not None or opener is not None
        self._fd, self._socket = fd, _sendfile_socket(environ) if wanted else None
        self._open_socket = opener if self._socket is not None else None
        self._block_size = block_size
        self._timeout = timeout
        self._on_sent = on_sent

    def __iter__(self) -> Iterator[bytes]:
        # The first item makes gunicorn send the status line and headers
        # before any byte goes straight to the socket.
        yield b""
        for segment in self._segments:
            if segment.prefix:
                yield segment.prefix
            if self._socket is not None and self._fd is not None:
                _cooperative_sendfile(self._socket, self._fd, segment, self._timeout)
            elif self._open_socket is not None and segment.length >= SPLICE_AT_LEAST:
                yield from self._splice(self._open_socket, self._socket, segment)
            else:
                yield from self._read_blocks(segment)
            self._on_sent(segment.length)
        if self._suffix:
            yield self._suffix

    def _read_blocks(self, segment: Segment) -> Iterator[bytes]:
        remaining = segment.length
        for block in self._blob.read_range(segment.start, segment.length):
            remaining -= len(block)
            yield block
        if remaining > 0:
            raise OSError("file shorter than recorded")

    def _splice(self, opener: SocketOpener, out: socket.socket | None, segment: Segment) -> Iterator[bytes]:
        """The segment spliced from the store's socket to ``out``; read when the store
        cannot hand it over."""
        body = opener(segment.start, segment.length)
        if body is None or out is None:
            yield from self._read_blocks(segment)
            return
        try:
            if body.buffered:
                yield body.buffered
            splice_body(body, out.fileno(), self._timeout)
        finally:
            body.close()

    def close(self) -> None:
        self._blob.close()


def _sendfile_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """gunicorn's client socket when a cooperative kernel sendfile is possible."""
    sock = environ.get("gunicorn.socket")
    if sock is None or isinstance(sock, ssl.SSLSocket) or environ.get("wsgi.url_scheme") == "https":
        return None
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        return None
    if not monkey.is_module_patched("socket") or not hasattr(os, "sendfile"):
        return None
    found: socket.socket = sock
    return found


def _cooperative_sendfile(sock: socket.socket, file_fd: int, segment: Segment, timeout: float) -> None:
    """``os.sendfile`` until ``segment`` is sent; on EAGAIN yield to gevent until writable.

    Raises ConnectionError when the peer goes away, TimeoutError past ``timeout``.
    """
    from gevent.socket import wait_write

    out_fd = sock.fileno()
    offset, remaining = segment.start, segment.length
    while remaining > 0:
        try:
            sent = os.sendfile(out_fd, file_fd, offset, min(remaining, _SENDFILE_MAX))
        except BlockingIOError:
            wait_write(out_fd, timeout=timeout)  # raises TimeoutError
            continue
        if sent == 0:
            raise ConnectionError("file ended or peer closed during sendfile")
        offset += sent
        remaining -= sent
