"""Response bodies for downloads: the bytes of one or more ranges of a blob.

Under gunicorn's gevent worker, ``wsgi.file_wrapper`` (Flask's ``send_file``)
ends in gevent's ``socket.sendfile``, an 8 KiB read/send loop (measured
0.93 GB/s against nginx's 2.6 GB/s). This body instead calls the real
``os.sendfile`` on the client socket, waiting cooperatively for writability
when the kernel buffer is full, so the copy stays in the kernel and other
greenlets keep running. Where that is unavailable (TLS, no gevent, the test
client) it falls back to a read loop in large blocks.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hmacfs.storage import OpenBlob

_SENDFILE_MAX = 1 << 30


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
        self._fd, self._socket = fd, _sendfile_socket(environ) if fd is not None else None
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
