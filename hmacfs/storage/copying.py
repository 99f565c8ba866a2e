"""Streaming a body into a file at an offset, hashed on the way, in bounded buffers.

Hashing and ``pwrite`` run in a native thread (both release the GIL) while the
next block is received, so a large body is not limited by hashing on the core
that receives it.

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
import functools
import os
import sys
from collections.abc import Callable, Iterator
from typing import Protocol, cast, runtime_checkable

from hmacfs.errors import BadRequest
from hmacfs.storage.blocking import Pending, start_blocking
from hmacfs.storage.buffers import BufferPool

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


@runtime_checkable
class AdaptiveReader(Protocol):
    """A FillingReader that chooses its own read size as the body goes (the adaptive arm).

    ``block_size()`` is asked before each block; at or below ``TRICKLE_BLOCK`` the
    copy waits for ``wait_readable()`` (False: the body ended or went silent)
    before it takes a buffer, and writes whatever one read brought, so a slow
    client holds no buffer while it is silent.
    """

    def __call__(self, size: int) -> bytes: ...

    def readinto(self, view: memoryview) -> int: ...

    def block_size(self) -> int: ...

    def wait_readable(self) -> bool: ...


TRICKLE_BLOCK = 64 * 1024


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
    pool: BufferPool | None = None,
) -> None:
    """Write exactly ``length`` bytes of ``read`` at ``offset`` of ``fd`` (not fsynced),
    feeding them to each of ``hashers`` on the way.

    Raises IncompleteBody when ``read`` ends early. A reader that can fill
    buffers (``readinto``) is read into two reused buffers, one filling while
    the other is hashed and written: no copies. Blocks are at most
    ``buffer_size`` bytes. ``write_behind``: start the disk write of each block
    at once (the caller fsyncs afterwards). Buffers come from ``pool`` (a default
    process pool when None). An ``AdaptiveReader`` picks the block size itself,
    between the pool's minimum and ``buffer_size``."""
    write = _write_and_start if write_behind else write_all
    buffers = _SPARE if pool is None else pool
    if isinstance(read, AdaptiveReader):
        _adaptive_into(
            fd, offset, read, length, hashers=hashers, pool=buffers, write=write, largest=buffer_size
        )
        return
    if isinstance(read, FillingReader):
        _fill_into(
            fd, offset, read, length, hashers=hashers, buffer_size=buffer_size, write=write, pool=buffers
        )
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
    pool: BufferPool,
) -> None:
    """A block is hashed and written in a native thread (``_start_block``) while the
    next block fills: receiving and hashing overlap on separate cores.

    Blocks start and end small (``_block_size``): what waits before the first
    write starts, and what is left to hash and write after the last byte
    arrives, is a small block rather than a full buffer. For a chunk that is
    part of every request's answer time (a 1 MiB block took ~2.5 ms to write
    into this VM's page cache)."""
    buffers = pool.take(buffer_size, needed=length)
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
                pending = _start_block(hashers, write, fd, block, position)
            else:  # the only block of a small body: no thread hand-off
                _hash_and_write(hashers, write, fd, block, position)
            position += filled
            turn ^= 1
    finally:
        _wait(pending)  # no thread touches the buffers any more
        pool.give_back(buffers, buffer_size)


def _adaptive_into(
    fd: int,
    offset: int,
    read: AdaptiveReader,
    length: int,
    *,
    hashers: tuple[Hasher, ...],
    pool: BufferPool,
    write: _Write,
    largest: int,
) -> None:
    """``_fill_into`` with a block size the reader may change between blocks.

    Large blocks overlap as there (a pair, one filling while the other is hashed
    and written; a new pair when the size changes) and shrink towards the end of
    the body as there. Trickle blocks hold one buffer only between a readable
    socket and the end of its write."""
    position, remaining, done = offset, length, 0
    pair: Pair | None = None
    pair_size, turn = 0, 0
    pending: list[Pending] = []
    try:
        while remaining:
            size = max(1, min(read.block_size(), largest))
            if size <= TRICKLE_BLOCK:
                _wait(pending)
                _release(pool, pair, pair_size)
                pair = None
                got = _trickle_step(
                    read,
                    min(size, remaining),
                    pool,
                    functools.partial(_hash_and_write, hashers, write, fd, at=position),
                )
                if not got:
                    raise _short(length, done)
            else:
                if pair is None or size != pair_size:
                    _wait(pending)
                    _release(pool, pair, pair_size)
                    pair, pair_size, turn = pool.take(size, needed=remaining), size, 0
                block = pair[turn][: _block_size(len(pair[turn]), remaining, first=False)]
                got = _fill(read, block)
                if got < len(block):
                    raise _short(length, done + got)
                _wait(pending)
                pending = _start_block(hashers, write, fd, block, position)
                turn ^= 1
            position, remaining, done = position + got, remaining - got, done + got
    finally:
        _wait(pending)
        _release(pool, pair, pair_size)


Pair = tuple[memoryview, memoryview]


def _release(pool: BufferPool, pair: Pair | None, size: int) -> None:
    if pair is not None:
        pool.give_back(pair, size)


def _trickle_step(
    read: AdaptiveReader, size: int, pool: BufferPool, consume: Callable[[memoryview], None]
) -> int:
    """Wait until the client sent something, then take one buffer, read once, hash and
    write what came, and give the buffer back. 0 when the body ended."""
    if not read.wait_readable():
        return 0
    buffer = pool.take_one(size)
    try:
        got = read.readinto(buffer[:size])
        if got:
            consume(buffer[:got])
        return got
    finally:
        pool.give_back_one(buffer)


# Callers that pass no pool (tasks, tests) share this one; the app passes its budgeted pool.
_SPARE = BufferPool(budget=256 * 1024 * 1024)


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


def _start_block(
    hashers: tuple[Hasher, ...], write: _Write, fd: int, block: memoryview, at: int
) -> list[Pending]:
    """Hand ``block`` to native threads: one hashes it with the first hasher and then writes
    it; any further hasher gets a thread of its own.

    One hand-off per block rather than one per step: the write then reads bytes the hash
    just brought into that core's cache, and a 1 GiB PUT has two threads to run (receive,
    hash and write) on this two-core VM rather than three. A 1 GiB PUT, paired against a
    hand-off per step: 10 % less server CPU per GiB and the same rate on a quiet machine,
    1.09-1.33x the rate when other load leaves it less than two cores (docs/benchmarks.md,
    xep, "branch bigput")."""
    pending = [start_blocking(hasher.update, block) for hasher in hashers[1:]]
    pending.append(start_blocking(_hash_and_write, hashers[:1], write, fd, block, at))
    return pending


def _hash_and_write(
    hashers: tuple[Hasher, ...], write: _Write, fd: int, data: bytes | memoryview, at: int
) -> None:
    for hasher in hashers:
        hasher.update(data)
    write(fd, data, at)


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


def blocks_reader(blocks: Iterator[bytes]) -> Reader:
    """A Reader over an iterator of byte blocks: exactly ``size`` bytes per call
    until the blocks run out, then b""."""
    pending = bytearray()

    def read(size: int) -> bytes:
        while len(pending) < size:
            block = next(blocks, b"")
            if not block:
                break
            pending.extend(block)
        data = bytes(pending[:size])
        del pending[:size]
        return data

    return read
