"""Moving a proxied body from one socket to another inside the kernel (``splice``): an
object store's download, from the store's connection to the client's.

A download from an object store arrives on the store's connection and leaves on
the client's. Read and written through Python, every byte is copied twice by
the kernel (``recv`` into the process, ``send`` out of it), which was most of
the 0.4-0.5 CPU-s per GiB that proxying an S3 GET cost hmacfs. ``splice``
moves the socket's pages into a pipe and the pipe's pages onto the client's
socket by reference: the bytes never enter the process.

Both sockets are gevent's (non-blocking); a splice that would block yields to
the loop until its socket is ready, as the kernel sendfile of local blobs does.
"""

from __future__ import annotations

import fcntl
import os
from typing import Protocol

_PIPE_SIZE = 1 << 20  # 1 MiB: the default pipe-max-size; the kernel keeps 64 KiB if refused
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class SocketBody(Protocol):
    """The rest of a response body as it arrives on a plain TCP socket."""

    @property
    def buffered(self) -> bytes:
        """The body's first bytes, already read off the socket."""

    @property
    def fileno(self) -> int:
        """The socket (non-blocking) the body's other bytes arrive on."""

    @property
    def remaining(self) -> int:
        """How many bytes after ``buffered`` are to be taken from the socket."""

    @property
    def timeout(self) -> float | None:
        """Seconds the source may stay silent (its client's read timeout); None: as long
        as the client may."""

    def close(self) -> None:
        """Give the connection back (it is closed: its body was taken past its reader)."""


def splice_available() -> bool:
    return hasattr(os, "splice")


def splice_body(body: SocketBody, out_fd: int, timeout: float) -> None:
    """Send ``body.remaining`` bytes of ``body``'s socket to ``out_fd`` through a pipe (its
    ``buffered`` bytes are the caller's to send first).

    Raises ConnectionError when the source ends early or the client goes away,
    TimeoutError when the client takes nothing for ``timeout`` seconds or the source
    sends nothing for ``body.timeout`` (``timeout`` when None).
    """
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        capacity = _widen(write_end)
        waits = (body.timeout or timeout, timeout)
        _pump(body.fileno, (read_end, write_end), out_fd, body.remaining, capacity=capacity, waits=waits)
    finally:
        os.close(read_end)
        os.close(write_end)


def _widen(pipe_fd: int) -> int:
    """The pipe's capacity, raised to 1 MiB where the kernel allows (fewer wake-ups)."""
    try:
        return fcntl.fcntl(pipe_fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        return fcntl.fcntl(pipe_fd, fcntl.F_GETPIPE_SZ)


def _pump(
    source: int, pipe: tuple[int, int], out_fd: int, length: int, *, capacity: int, waits: tuple[float, float]
) -> None:
    from gevent.socket import wait_read, wait_write

    read_end, write_end = pipe
    remaining, in_pipe = length, 0
    while remaining or in_pipe:
        taken = _splice(source, write_end, min(remaining, capacity - in_pipe)) if remaining else None
        if taken == 0:
            raise ConnectionError(f"the source ended with {remaining} of {length} bytes to come")
        if taken:
            remaining -= taken
            in_pipe += taken
        sent = _splice(read_end, out_fd, in_pipe) if in_pipe else None
        if sent:
            in_pipe -= sent
        elif sent == 0:
            raise ConnectionError("the client went away")
        if taken or sent:
            continue
        # Nothing moved: the client's socket is full (the pipe holds bytes for it), or the
        # source has nothing yet. Both waits raise TimeoutError past theirs.
        if in_pipe:
            wait_write(out_fd, timeout=waits[1])
        else:
            wait_read(source, timeout=waits[0])


def _splice(source: int, target: int, count: int) -> int | None:
    """Bytes moved; None when it would block (or ``count`` is 0: a full pipe)."""
    if count <= 0:
        return None
    try:
        return os.splice(source, target, count, flags=_FLAGS)
    except BlockingIOError:
        return None
