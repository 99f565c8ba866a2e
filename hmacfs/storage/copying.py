"""Streaming a body into a file at an offset, hashed on the way, in bounded buffers.

Hashing and ``pwrite`` run in native threads (both release the GIL) while the
next block is received, so a large body is not limited by hashing on one core.

Write-behind: when the caller will fsync, each written block is handed to the
disk at once (``sync_file_range``), so the disk writes while the rest of the
body arrives and the final fsync has little left to wait for. Without it the
whole body stays dirty in the page cache (Linux starts background writeback
only at ``dirty_background_ratio`` of memory) and fsync writes it all at the
end, after the last byte arrived.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

from hmacfs.errors import BadRequest
from hmacfs.storage.blocking import Pending, start_blocking

Reader = Callable[[int], bytes]


class IncompleteBody(BadRequest):
    """The client sent fewer bytes than it declared; nothing was kept."""

    code = "INCOMPLETE_BODY"


class Hasher(Protocol):
    """What the store needs of a ``hashlib`` object."""

    def update(self, data: bytes | memoryview, /) -> None: ...


@runtime_checkable
class FillingReader(Protocol):
    """A Reader that can also fill a caller's buffer (as ``socket.recv_into``): up to
    ``len(view)`` bytes, at least one unless the body has ended (0)."""

    def __call__(self, size: int) -> bytes: ...

    def readinto(self, view: memoryview) -> int: ...


def _fill(read: FillingReader, view: memoryview) -> int:
    """Fill ``view`` completely unless the body ends first; returns the bytes placed."""
    filled = 0
    while filled < len(view):
        got = read.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def read_exactly(read: Reader, length: int) -> bytearray:
    """The next ``length`` bytes of ``read`` in one buffer; IncompleteBody when it ends early."""
    buffer = bytearray(length)
    view = memoryview(buffer)
    if isinstance(read, FillingReader):
        filled = _fill(read, view)
    else:
        filled = 0
        while filled < length:
            data = read(length - filled)
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
    if filled < length:
        raise _short(length, filled)
    return buffer


def copy_into(
    fd: int,
    offset: int,
    read: Reader,
    length: int,
    *,
    buffer_size: int,
    hashers: tuple[Hasher, ...] = (),
    write_behind: bool = False,
) -> None:
    """Write exactly ``length`` bytes of ``read`` at ``offset`` of ``fd`` (not fsynced),
    feeding them to each of ``hashers`` on the way.

    Raises IncompleteBody when ``read`` ends early. A reader that can fill
    buffers (``readinto``) is read into two reused buffers, one filling while
    the other is hashed and written: no copies. Blocks are at most
    ``buffer_size`` bytes. ``write_behind``: start the disk write of each block
    at once (the caller fsyncs afterwards)."""
    write = _write_and_start if write_behind else write_all
    if isinstance(read, FillingReader):
        _fill_into(fd, offset, read, length, hashers=hashers, buffer_size=buffer_size, write=write)
        return
    position, remaining = offset, length
    pending: Pending | None = None
    try:
        while remaining:
            data = read(min(buffer_size, remaining))
            if not data:
                raise _short(length, length - remaining)
            if pending is not None:
                pending.get()
            remaining -= len(data)
            last = not remaining and pending is None
            pending = None if last else start_blocking(_hash_and_write, hashers, write, fd, data, position)
            if last:
                _hash_and_write(hashers, write, fd, data, position)
            position += len(data)
    finally:
        if pending is not None:
            pending.get()


def _fill_into(
    fd: int,
    offset: int,
    read: FillingReader,
    length: int,
    *,
    hashers: tuple[Hasher, ...],
    buffer_size: int,
    write: _Write,
) -> None:
    """Each hasher and the write of a block run in native threads at once, while the
    next block fills: the steps of a large body overlap on separate cores.

    Blocks start and end small (``_block_size``): what waits before the first
    write starts, and what is left to hash and write after the last byte
    arrives, is a small block rather than a full buffer. For a chunk that is
    part of every request's answer time (a 1 MiB block took ~2.5 ms to write
    into this VM's page cache)."""
    buffers = _SPARE.take(buffer_size, needed=length)
    size = len(buffers[0])
    position, remaining, turn = offset, length, 0
    pending: list[Pending] = []
    try:
        while remaining:
            block = buffers[turn][: _block_size(size, remaining, first=position == offset)]
            filled = _fill(read, block)
            if filled < len(block):
                raise _short(length, length - remaining + filled)
            _wait(pending)  # the other buffer is free again
            remaining -= filled
            if remaining or position != offset:
                pending = [start_blocking(hasher.update, block) for hasher in hashers]
                pending.append(start_blocking(write, fd, block, position))
            else:  # the only block of a small body: no thread hand-off
                _hash_and_write(hashers, write, fd, block, position)
            position += filled
            turn ^= 1
    finally:
        _wait(pending)  # no thread touches the buffers any more
        _SPARE.give_back(buffers, buffer_size)


_Pair = tuple[memoryview, memoryview]


class _SparePairs:
    """Full-size buffer pairs kept for the next body, up to ``keep`` per buffer size.

    A new pair of 1 MiB buffers cost about 1.4 ms here (bytearray zero-fills
    it, page by page): for a 5 MiB chunk request, a sixth of what its bytes
    take. A body only ever uses what it filled itself, so reuse leaks nothing.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._spare: dict[int, list[_Pair]] = {}

    def take(self, buffer_size: int, *, needed: int) -> _Pair:
        """A spare full-size pair, else a new pair of at most ``needed`` bytes each."""
        try:
            return self._spare.get(buffer_size, []).pop()  # atomic under the GIL: safe from threads
        except IndexError:
            size = min(buffer_size, needed) or 1
            return memoryview(bytearray(size)), memoryview(bytearray(size))

    def give_back(self, pair: _Pair, buffer_size: int) -> None:
        spare = self._spare.setdefault(buffer_size, [])
        if len(pair[0]) == buffer_size and len(spare) < self.keep:
            spare.append(pair)


_SPARE = _SparePairs(keep=4)


_SMALLEST_BLOCK = 64 * 1024
_FIRST_BLOCK = 256 * 1024


def _block_size(size: int, remaining: int, *, first: bool) -> int:
    """The next block: at most ``size``, at most half of what remains (so the blocks
    shrink towards the end, down to ``_SMALLEST_BLOCK``), and ``_FIRST_BLOCK`` at first."""
    block = min(size, remaining, max(_SMALLEST_BLOCK, remaining // 2))
    return min(block, _FIRST_BLOCK) if first else block


def _short(expected: int, received: int) -> IncompleteBody:
    return IncompleteBody(
        f"body ended after {received} of {expected} bytes",
        details={"expected": expected, "received": received},
    )


def _wait(pending: list[Pending]) -> None:
    """Wait for every call (none may still touch a buffer or the descriptor afterwards);
    then raise the first failure."""
    failures = []
    for call in pending:
        try:
            call.get()
        except BaseException as exc:  # re-raised below, once the others finished
            failures.append(exc)
    pending.clear()
    if failures:
        raise failures[0]


def _hash_and_write(
    hashers: tuple[Hasher, ...], write: _Write, fd: int, data: bytes | memoryview, position: int
) -> None:
    for hasher in hashers:
        hasher.update(data)
    write(fd, data, position)


def write_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """``pwrite`` all of ``data`` at ``position`` (a write may place fewer bytes)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        position += written
        view = view[written:]


_Write = Callable[[int, "bytes | bytearray | memoryview", int], None]


def _write_and_start(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """``write_all``, then start writing those bytes to the disk without waiting."""
    write_all(fd, data, position)
    start_writeback(fd, position, len(data))


def _libc_sync_file_range() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of dirty pages, do not wait


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` to the disk, without
    waiting (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; elsewhere nothing). Not a
    durability guarantee: fsync still follows."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # failures are harmless
