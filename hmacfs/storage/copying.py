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
import fcntl
import functools
import mmap
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


@runtime_checkable
class SplicingReader(Protocol):
    """A FillingReader that can also move its bytes into a pipe in the kernel (``splice``):
    see ``hmacfs.web.bodies.SocketBody.splice_into`` for what it returns."""

    def __call__(self, size: int) -> bytes: ...

    def readinto(self, view: memoryview) -> int: ...

    def splice_into(self, pipe: int, count: int) -> int | None: ...


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
    if isinstance(read, SplicingReader) and _splicing(fd, length):
        _splice_body(fd, offset, read, length, hashers=hashers, write_behind=write_behind, pool=buffers)
        return
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
    """Blocks go through a ``_Pipeline`` (hashed in order on one native thread, written on
    another a block behind) while the next block fills: receiving, hashing and writing
    overlap on separate cores.

    Blocks start and end small (``_block_size``): what waits before the first
    write starts, and what is left to hash and write after the last byte
    arrives, is a small block rather than a full buffer. For a chunk that is
    part of every request's answer time (a 1 MiB block took ~2.5 ms to write
    into this VM's page cache)."""
    ring = _Ring.take(pool, buffer_size, length)
    pipeline = _Pipeline(hashers, write, fd)
    position, remaining = offset, length
    try:
        while remaining:
            slot = ring.next()
            pipeline.free(slot)
            block = ring.block(slot, remaining, first=position == offset)
            filled = _fill(read, block)
            if filled < len(block):
                raise _short(length, length - remaining + filled)
            remaining -= filled
            if remaining or position != offset:
                pipeline.push(slot, block, position)
            else:  # the only block of a small body: no thread hand-off
                _hash_and_write(hashers, write, fd, block, position)
            position += filled
        pipeline.finish()
    finally:
        pipeline.close()  # no thread touches the buffers any more
        ring.give_back(pool)


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

    Large blocks overlap as there (a ring of buffers through a ``_Pipeline``; a new ring
    when the size changes) and shrink towards the end of the body as there. Trickle
    blocks hold one buffer only between a readable socket and the end of its write."""
    position, remaining, done = offset, length, 0
    ring: _Ring | None = None
    pipeline = _Pipeline(hashers, write, fd)
    try:
        while remaining:
            size = max(1, min(read.block_size(), largest))
            if size <= TRICKLE_BLOCK:
                pipeline.finish()
                _Ring.drop(pool, ring)
                ring = None
                got = _trickle_step(
                    read,
                    min(size, remaining),
                    pool,
                    functools.partial(_hash_and_write, hashers, write, fd, at=position),
                )
                if not got:
                    raise _short(length, done)
            else:
                if ring is None or size != ring.size:
                    pipeline.finish()
                    _Ring.drop(pool, ring)
                    ring = _Ring.take(pool, size, remaining)
                slot = ring.next()
                pipeline.free(slot)
                block = ring.block(slot, remaining, first=False)
                got = _fill(read, block)
                if got < len(block):
                    raise _short(length, done + got)
                pipeline.push(slot, block, position)
            position, remaining, done = position + got, remaining - got, done + got
        pipeline.finish()
    finally:
        pipeline.close()
        _Ring.drop(pool, ring)


class _Ring:
    """The reused buffers of one body, taken in turn: a pool pair, and a third buffer
    when the body is longer than the pair (so a block can fill while the one before is
    hashed and the one before that is written)."""

    def __init__(self, pair: Pair, third: memoryview | None, size: int) -> None:
        self.pair, self.third, self.size = pair, third, size
        self.buffers = [*pair, third] if third is not None else [*pair]
        self._turn = -1

    @classmethod
    def take(cls, pool: BufferPool, size: int, needed: int) -> _Ring:
        pair = pool.take(size, needed=needed)
        third = pool.take_one(len(pair[0])) if needed > 2 * len(pair[0]) else None
        return cls(pair, third, size)

    @staticmethod
    def drop(pool: BufferPool, ring: _Ring | None) -> None:
        """Give ``ring``'s buffers back (no thread may use them any more)."""
        if ring is not None:
            ring.give_back(pool)

    def give_back(self, pool: BufferPool) -> None:
        pool.give_back(self.pair, self.size)
        if self.third is not None:
            pool.give_back_one(self.third)

    def next(self) -> int:
        """The slot of the next buffer in turn (``_Pipeline.free`` it before filling)."""
        self._turn = (self._turn + 1) % len(self.buffers)
        return self._turn

    def block(self, slot: int, remaining: int, *, first: bool) -> memoryview:
        """The part of buffer ``slot`` the next block fills (``_block_size``)."""
        buffer = self.buffers[slot]
        return buffer[: _block_size(len(buffer), remaining, first=first)]


class _Pipeline:
    """A body's blocks through two native-thread stages: block n is hashed (after block
    n-1, so the digest sees the bytes in order) while block n-1 is written, and the
    caller fills block n+1 meanwhile. The serial path is then the hash alone rather
    than hash and write; see docs/benchmarks.md (xep, branch putpipe). Further hashers
    (a chunk's digest beside the running hash) get a thread each, beside the first."""

    def __init__(self, hashers: tuple[Hasher, ...], write: _Write, fd: int) -> None:
        self._hashers, self._write, self._fd = hashers, write, fd
        self._hashing: list[Pending] = []
        self._behind: tuple[int, memoryview, int] | None = None  # (slot, block, at) not yet written
        self._writing: dict[int, list[Pending]] = {}  # by slot

    def free(self, slot: int) -> None:
        """Wait until no write uses buffer ``slot``; raises that write's failure."""
        _wait(self._writing.pop(slot, []))

    def push(self, slot: int, block: memoryview, at: int) -> None:
        """Start hashing ``block`` (once the previous block's hash ended) and writing the previous block."""
        _wait(self._hashing)
        self._hashing = [start_blocking(hasher.update, block) for hasher in self._hashers]
        self._write_behind()
        self._behind = (slot, block, at)

    def finish(self) -> None:
        """Wait for every hash and write of the blocks pushed so far; raises the first failure."""
        _wait(self._hashing)
        self._write_behind()
        for slot in list(self._writing):
            self.free(slot)

    def close(self) -> None:
        """``finish`` without writing what is left (after a failure): only waits."""
        self._behind = None
        pending = self._hashing + [call for calls in self._writing.values() for call in calls]
        self._writing.clear()
        _wait(pending)

    def _write_behind(self) -> None:
        if self._behind is not None:
            slot, block, at = self._behind
            self._writing.setdefault(slot, []).append(start_blocking(self._write, self._fd, block, at))
            self._behind = None


Pair = tuple[memoryview, memoryview]


def _trickle_step(
    read: AdaptiveReader, size: int, pool: BufferPool, consume: Callable[[memoryview], None]
) -> int:
    """Wait until the client sent something, then take one buffer, read once, hash and
    write what came, and give the buffer back. 0 when the body ended."""
    if not read.wait_readable():
        return 0
    return _read_step(read, size, pool, consume)


def _read_step(
    read: FillingReader, size: int, pool: BufferPool, consume: Callable[[memoryview], None]
) -> int:
    """Take one buffer, read once into it, ``consume`` what came, give the buffer back."""
    buffer = pool.take_one(size)
    try:
        got = read.readinto(buffer[:size])
        if got:
            consume(buffer[:got])
        return got
    finally:
        pool.give_back_one(buffer)


_SPLICE_AT_LEAST = 8 * 1024 * 1024  # bodies below this go through buffers (two pipes cost syscalls)


def _splicing(fd: int, length: int) -> bool:
    return length >= _SPLICE_AT_LEAST and hasattr(os, "splice") and os.path.exists(f"/proc/self/fd/{fd}")


def _splice_body(
    fd: int,
    offset: int,
    read: SplicingReader,
    length: int,
    *,
    hashers: tuple[Hasher, ...],
    write_behind: bool,
    pool: BufferPool,
) -> None:
    """``copy_into`` through pipes: the body's bytes go socket → pipe → file in the kernel
    (``_Splicer``) and are hashed from the file's pages; bytes the reader already holds
    (gunicorn's read-ahead) and an adaptive reader's trickle go through a buffer."""
    write = _write_and_start if write_behind else write_all
    position, remaining = offset, length
    splicer = _Splicer(fd, hashers, write_behind)
    try:
        while remaining:
            size = read.block_size() if isinstance(read, AdaptiveReader) else _PIPE_SIZE
            consume = functools.partial(_hash_and_write, hashers, write, fd, at=position)
            got: int | None
            if size <= TRICKLE_BLOCK and isinstance(read, AdaptiveReader):
                splicer.finish()
                got = _trickle_step(read, min(size, remaining), pool, consume)
            else:
                got = splicer.step(read, position, remaining)
                if got is None:
                    splicer.finish()
                    got = _read_step(read, min(TRICKLE_BLOCK, remaining), pool, consume)
            if not got:
                raise _short(length, position - offset)
            position, remaining = position + got, remaining - got
        splicer.finish()
    finally:
        splicer.close()


_PIPE_SIZE = 1024 * 1024  # a pipe's capacity asked for (the default pipe-max-size)


class _Splicer:
    """Blocks of a body moved socket → pipe → file by the kernel, never copied through the
    process: a receive copy less per byte than ``recv_into`` + ``pwrite``. A native
    thread moves each pipe into the file (a page-cache copy, as ``pwrite``), then hashes
    that range from a read-only mapping of the file (the pages it just wrote, in its
    cache), one block after the other so the digest sees the bytes in order; the next
    pipe fills meanwhile."""

    def __init__(self, fd: int, hashers: tuple[Hasher, ...], write_behind: bool) -> None:
        self._fd, self._hashers, self._write_behind = fd, hashers, write_behind
        self._pipes: list[tuple[int, int, int]] = []  # (read end, write end, capacity)
        self._busy: list[list[Pending]] = []  # by pipe: its move and hash
        self._last: list[Pending] = []  # the block before: its hash must end first
        self._turn = -1
        self._source = -1  # the file again, readable (``fd`` may be write-only)

    def step(self, read: SplicingReader, at: int, limit: int) -> int | None:
        """Fill the next pipe with up to ``limit`` bytes and hand it to a thread; the bytes
        moved (0: the body ended), or None when ``read`` cannot splice now."""
        slot = self._next()
        _wait(self._busy[slot])
        out, into, capacity = self._pipes[slot]
        count, filled = min(limit, capacity), 0
        while filled < count:
            got = read.splice_into(into, count - filled)
            if got is None and not filled:
                return None
            if not got:
                break
            filled += got
        if filled:
            _wait(self._last)
            self._last = self._busy[slot] = [start_blocking(self._store, out, filled, at)]
        return filled

    def finish(self) -> None:
        """Wait until every block handed over is in the file and hashed; raises the first failure."""
        _wait([call for calls in self._busy for call in calls])
        self._last = []

    def close(self) -> None:
        try:
            self.finish()
        finally:
            for out, into, _capacity in self._pipes:
                os.close(out)
                os.close(into)
            self._pipes.clear()
            if self._source >= 0:
                os.close(self._source)
                self._source = -1

    def _next(self) -> int:
        if len(self._pipes) < 2:
            out, into = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._pipes.append((out, into, _widen(into)))
            self._busy.append([])
        self._turn = (self._turn + 1) % len(self._pipes)
        return self._turn

    def _store(self, pipe: int, count: int, at: int) -> None:
        moved = 0
        while moved < count:
            got = os.splice(pipe, self._fd, count - moved, offset_dst=at + moved)
            if not got:
                raise OSError(f"the pipe ran dry after {moved} of {count} bytes")
            moved += got
        if self._write_behind:
            start_writeback(self._fd, at, count)
        self._hash(at, count)

    def _hash(self, at: int, count: int) -> None:
        if not self._hashers:
            return
        if self._source < 0:
            self._source = os.open(f"/proc/self/fd/{self._fd}", os.O_RDONLY | os.O_CLOEXEC)
        start = at - at % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(self._source, at + count - start, access=mmap.ACCESS_READ, offset=start)
        try:
            with memoryview(mapped) as view:
                for hasher in self._hashers:
                    hasher.update(view[at - start :])
        finally:
            mapped.close()


def _widen(pipe: int) -> int:
    """The pipe's capacity, raised to ``_PIPE_SIZE`` where the kernel allows."""
    try:
        return fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        return fcntl.fcntl(pipe, fcntl.F_GETPIPE_SZ)


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
