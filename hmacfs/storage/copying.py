"""Streaming a body into a file at an offset, hashed on the way, in bounded buffers.

Hashing and ``pwrite`` run in native threads (both release the GIL) while the
next block is received, so a large body is not limited by hashing on one core.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

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


def copy_into(
    fd: int, offset: int, read: Reader, length: int, *, buffer_size: int, also: Hasher | None = None
) -> str:
    """Write exactly ``length`` bytes of ``read`` at ``offset`` of ``fd`` (not fsynced);
    return their SHA-256 (hex), also feeding them to ``also`` when given.

    Raises IncompleteBody when ``read`` ends early. A reader that can fill
    buffers (``readinto``) is read into two reused buffers, one filling while
    the other is hashed and written: no copies. Blocks are at most
    ``buffer_size`` bytes."""
    hasher = hashlib.sha256()
    hashers = (hasher,) if also is None else (hasher, also)
    if isinstance(read, FillingReader):
        _fill_into(fd, offset, read, length, hashers=hashers, buffer_size=buffer_size)
        return hasher.hexdigest()
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
            pending = None if last else start_blocking(_hash_and_write, hashers, fd, data, position)
            if last:
                _hash_and_write(hashers, fd, data, position)
            position += len(data)
    finally:
        if pending is not None:
            pending.get()
    return hasher.hexdigest()


def _fill_into(
    fd: int, offset: int, read: FillingReader, length: int, *, hashers: tuple[Hasher, ...], buffer_size: int
) -> None:
    """Each hasher and the write of a block run in native threads at once, while the
    next block fills: the steps of a large body overlap on separate cores."""
    size = min(buffer_size, length) or 1
    buffers = (memoryview(bytearray(size)), memoryview(bytearray(size)))
    position, remaining, turn = offset, length, 0
    pending: list[Pending] = []
    try:
        while remaining:
            block = buffers[turn][: min(size, remaining)]
            filled = _fill(read, block)
            if filled < len(block):
                raise _short(length, length - remaining + filled)
            _wait(pending)  # the other buffer is free again
            remaining -= filled
            if remaining or position != offset:
                pending = [start_blocking(hasher.update, block) for hasher in hashers]
                pending.append(start_blocking(_write, fd, block, position))
            else:  # the only block of a small body: no thread hand-off
                _hash_and_write(hashers, fd, block, position)
            position += filled
            turn ^= 1
    finally:
        _wait(pending)


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


def _hash_and_write(hashers: tuple[Hasher, ...], fd: int, data: bytes | memoryview, position: int) -> None:
    for hasher in hashers:
        hasher.update(data)
    _write(fd, data, position)


def _write(fd: int, data: bytes | memoryview, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        position += written
        view = view[written:]
