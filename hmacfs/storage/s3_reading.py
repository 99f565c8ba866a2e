"""Reading helpers of the S3 store: an opened blob (its ranges read, or handed over as the
socket they arrive on), bodies streamed or spooled into a PUT, two block streams compared."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Any

from hmacfs.storage.copying import FillingReader, Hasher, IncompleteBody, Reader

# A piece is kept in memory up to this size, on local disk beyond: a thousand slow
# uploads then hold a thousand small buffers, not a thousand parts.
SPOOL_IN_MEMORY = 256 * 1024


@contextmanager
def spooled(
    read: Reader, size: int, hashers: tuple[Hasher, ...], *, block: int, exact: bool = True
) -> Iterator[tuple[IO[bytes], int]]:
    """``size`` bytes of ``read`` (fewer at its end when not ``exact``) in a seekable
    temporary file positioned at its start, with their count, fed to ``hashers`` on the
    way; IncompleteBody when an ``exact`` read ends early."""
    with new_spool() as spool:
        received = spool_into(spool, read, size, hashers, block=block, exact=exact)
        yield spool, received


def new_spool() -> IO[bytes]:
    """A temporary file kept in memory up to ``SPOOL_IN_MEMORY``, on local disk beyond."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)


def spool_into(
    spool: IO[bytes], read: Reader, size: int, hashers: tuple[Hasher, ...], *, block: int, exact: bool = True
) -> int:
    """Write ``size`` bytes of ``read`` (``spooled``) to ``spool``, left at its start; the
    count written."""
    received = 0
    while received < size:
        data = read(min(block, size - received))
        if not data:
            if not exact:
                break
            raise IncompleteBody(
                f"body ended after {received} of {size} bytes",
                details={"expected": size, "received": received},
            )
        for hasher in hashers:
            hasher.update(data)
        spool.write(data)
        received += len(data)
    spool.seek(0)
    return received


class BodyStream:
    """``size`` bytes of ``read`` as the body of one PUT, fed to ``hashers`` as the PUT sends
    them: the client's bytes flow on to the store while they arrive, with no spool (the
    client sets ``payload_signing_enabled`` off, so nothing must read the body before it
    is sent). The HTTP client asks for small blocks (16 KiB); each ``read`` returns up to
    ``block`` bytes anyway, which it sends as they are, so a 1 MiB body read costs one
    call, not 64.

    A reader that fills a buffer (``FillingReader``: the request body) is read into one
    buffer of ``block`` bytes, reused by every ``read``: the PUT sends each block (and the
    hashers take it) before it asks for the next, so a block costs one copy, from the
    socket, instead of a zeroed allocation and two more copies. What ``read`` returns is
    valid until its next call.

    A body that ends early raises IncompleteBody from within the PUT; whatever ``read``
    raised is kept in ``failure`` (the HTTP client may wrap it: the caller raises this
    one instead). Only an untouched stream can be rewound (a retry before any byte was
    sent); otherwise ``seek`` fails and the PUT with it."""

    def __init__(self, read: Reader, size: int, hashers: tuple[Hasher, ...], *, block: int) -> None:
        self._read, self._size, self._left, self._hashers, self._block = read, size, size, hashers, block
        self._started = False
        self._filling = read if isinstance(read, FillingReader) else None
        self._buffer: memoryview | None = None
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes | memoryview:
        if self._left <= 0:
            return b""
        self._started = True
        try:
            data = self._next(min(self._left, max(size, self._block)))
            if not data:
                received = self._size - self._left
                raise IncompleteBody(
                    f"body ended after {received} of {self._size} bytes",
                    details={"expected": self._size, "received": received},
                )
        except BaseException as exc:
            self.failure = exc
            raise
        for hasher in self._hashers:
            hasher.update(data)
        self._left -= len(data)
        return data

    def _next(self, size: int) -> bytes | memoryview:
        if self._filling is None:
            return self._read(size)
        if self._buffer is None:
            self._buffer = memoryview(bytearray(min(self._block, self._size)))
        return self._buffer[: self._filling.readinto(self._buffer[: min(size, len(self._buffer))])]

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset or whence or self._started:
            raise OSError("a streamed body cannot be sent again")
        return 0

    def tell(self) -> int:
        return 0


class S3OpenBlob:
    """A blob object opened for range reads: each ``read_range`` (or ``open_socket_range``)
    is one ranged GET. ``open_range(key, start, length)`` makes that GET and returns its
    body (botocore's StreamingBody); ``get_range(key, start, length, opened)`` reads one in
    blocks. ``opened``: (start, length, body) of a GET made when the blob was opened, taken
    by the first read of exactly that range, else closed with the blob."""

    def __init__(
        self,
        get_range: Callable[[str, int, int, Any], Iterator[bytes]],
        key: str,
        size: int,
        open_range: Callable[[str, int, int], Any] | None = None,
        *,
        opened: tuple[int, int, Any] | None = None,
    ) -> None:
        self._get_range, self._key, self._size, self._open_range = get_range, key, size, open_range
        self._opened = opened

    @property
    def size(self) -> int:
        return self._size

    def _take(self, start: int, length: int) -> Any:
        """The body of the GET made on opening, if it is this range's (once)."""
        opened, self._opened = self._opened, None
        if opened is not None and opened[:2] == (start, length):
            return opened[2]
        if opened is not None:
            opened[2].close()
        return None

    def read_range(self, start: int, length: int) -> Iterator[bytes]:
        length = min(length, self._size - start)
        return self._get_range(self._key, start, length, self._take(start, length))

    def open_socket_range(self, start: int, length: int) -> S3SocketBody | None:
        """The range's body as the plain TCP socket it arrives on (for ``splice``), or None
        where the connection is not one (TLS, a chunked answer): the caller reads instead.
        StoreUnavailable or FileNotFoundError as ``read_range``."""
        length = min(length, self._size - start)
        if self._open_range is None or length <= 0:
            return None
        opened = self._take(start, length)
        body = opened if opened is not None else self._open_range(self._key, start, length)
        return S3SocketBody.take(body, length)

    def close(self) -> None:
        """Close the GET made on opening if no read took it (each read's connection goes
        back to the pool)."""
        self._take(-1, -1)

    def __enter__(self) -> S3OpenBlob:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


class S3SocketBody:
    """A GetObject's body taken past botocore and urllib3: ``buffered`` bytes their reader
    already holds, then ``remaining`` bytes to come on the socket ``fileno``. The
    connection is closed when done (its reader's count no longer matches the socket) and
    given back to the pool, which opens a new one for the next request."""

    def __init__(
        self, response: Any, buffered: bytes, fileno: int, remaining: int, timeout: float | None
    ) -> None:
        self._response, self.buffered, self.fileno, self.remaining = response, buffered, fileno, remaining
        self.timeout = timeout  # the client's read timeout, which its socket carries

    @classmethod
    def take(cls, body: Any, length: int) -> S3SocketBody | None:
        """``body`` (a StreamingBody of ``length`` bytes) as a S3SocketBody; None, with the
        body closed, when its connection is TLS or the answer is not a plain
        Content-Length body of ``length`` bytes."""
        raw: Any = getattr(body, "_raw_stream", None)  # urllib3's HTTPResponse
        answer: Any = getattr(raw, "_fp", None)  # http.client's HTTPResponse
        sock: Any = getattr(getattr(raw, "connection", None), "sock", None)
        reader: Any = getattr(answer, "fp", None)
        plain = sock is not None and not hasattr(sock, "getpeercert")  # an SSL socket has it
        if not plain or reader is None or getattr(answer, "chunked", True) or answer.length != length:
            body.close()
            return None
        buffered = reader.read1(length)  # what the reader holds (or one recv when nothing)
        return cls(raw, buffered, sock.fileno(), length - len(buffered), sock.gettimeout())

    def close(self) -> None:
        self._response.close()
        self._response.release_conn()


class Blocks:
    """Blocks of bytes read in any sizes, compared as one stream."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks, self._pending = blocks, b""

    def take(self, size: int) -> bytes:
        while len(self._pending) < size:
            block = next(self._blocks, b"")
            if not block:
                break
            self._pending += block
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def equals(self, other: Blocks, length: int, step: int = 256 * 1024) -> bool:
        for position in range(0, length, step):
            size = min(step, length - position)
            if self.take(size) != other.take(size):
                return False
        return True
