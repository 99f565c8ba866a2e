from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from hmacfs.storage.buffers import BufferMemoryExhausted, BufferPool
from hmacfs.storage.copying import IncompleteBody, copy_into

KIB = 1024


def test_the_budget_is_never_exceeded_smaller_buffers_then_a_refusal() -> None:
    pool = BufferPool(192 * KIB, minimum=32 * KIB, wait=0.05)
    big = pool.take(128 * KIB, needed=10**9)
    assert len(big[0]) == 64 * KIB  # halved to fit
    assert len(pool.take(64 * KIB, needed=10**9)[0]) == 32 * KIB
    with pytest.raises(BufferMemoryExhausted):
        pool.take(32 * KIB, needed=10**9)
    assert pool.held == 192 * KIB and pool.peak == 192 * KIB


def test_a_waiting_body_gets_a_buffer_once_another_gives_one_back() -> None:
    pool = BufferPool(128 * KIB, minimum=32 * KIB, wait=5.0)
    held = pool.take(64 * KIB, needed=10**9)
    threading.Timer(0.1, pool.give_back, (held, 64 * KIB)).start()
    pair = pool.take(64 * KIB, needed=10**9)
    assert len(pair[0]) == 64 * KIB and pool.held <= pool.budget


def test_spares_are_kept_for_reuse_and_dropped_when_the_budget_needs_them() -> None:
    pool = BufferPool(512 * KIB, minimum=32 * KIB, keep=4)
    first = pool.take(128 * KIB, needed=10**9)
    pool.give_back(first, 128 * KIB)
    assert pool.take(128 * KIB, needed=10**9)[0].obj is first[0].obj  # reused
    one = pool.take_one(32 * KIB)
    pool.give_back_one(one)
    assert pool.take_one(32 * KIB).obj is one.obj
    assert pool.held <= pool.budget


class Trickle:
    """An AdaptiveReader: hands out ``body`` ``step`` bytes per read, with a block size
    that grows half-way, and counts what the pool held while it waited."""

    def __init__(self, body: bytes, step: int, pool: BufferPool, sizes: tuple[int, int]) -> None:
        self.body, self.step, self.pool, self.sizes = body, step, pool, sizes
        self.position = 0
        self.held_while_waiting: list[int] = []
        self.asked: list[int] = []

    def block_size(self) -> int:
        size = self.sizes[0] if self.position < len(self.body) // 2 else self.sizes[1]
        self.asked.append(size)
        return size

    def wait_readable(self) -> bool:
        self.held_while_waiting.append(self.pool.in_use)
        return self.position < len(self.body)

    def readinto(self, view: memoryview) -> int:
        got = min(len(view), self.step, len(self.body) - self.position)
        view[:got] = self.body[self.position : self.position + got]
        self.position += got
        return got

    def __call__(self, size: int) -> bytes:
        buffer = bytearray(size)
        return bytes(buffer[: self.readinto(memoryview(buffer))])


def _copy(tmp_path: Path, reader: Trickle, length: int, pool: BufferPool) -> str:
    hasher = hashlib.sha256()
    fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        copy_into(fd, 0, reader, length, buffer_size=1024 * KIB, hashers=(hasher,), pool=pool)
    finally:
        os.close(fd)
    return hasher.hexdigest()


def test_a_trickling_body_holds_no_buffer_while_silent_and_its_size_changes_mid_body(tmp_path: Path) -> None:
    pool = BufferPool(8 * 1024 * KIB, minimum=32 * KIB)
    body = os.urandom(3 * 1024 * KIB + 17)
    reader = Trickle(body, step=5000, pool=pool, sizes=(32 * KIB, 512 * KIB))
    assert _copy(tmp_path, reader, len(body), pool) == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "part").read_bytes() == body
    assert set(reader.held_while_waiting) == {0}
    assert {32 * KIB, 512 * KIB} <= set(reader.asked)
    assert pool.in_use == 0


def test_an_adaptive_body_that_ends_early_is_incomplete_and_returns_its_buffers(tmp_path: Path) -> None:
    pool = BufferPool(8 * 1024 * KIB, minimum=32 * KIB)
    for sizes in ((32 * KIB, 32 * KIB), (256 * KIB, 256 * KIB)):
        reader = Trickle(b"x" * 100_000, step=9000, pool=pool, sizes=sizes)
        with pytest.raises(IncompleteBody):
            _copy(tmp_path, reader, 200_000, pool)
        assert pool.in_use == 0


class _Sizes:
    """A hasher that records the size of each block it is fed."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def update(self, data: bytes | memoryview, /) -> None:
        self.sizes.append(len(data))


def test_an_adaptive_body_of_large_blocks_ends_in_small_ones(tmp_path: Path) -> None:
    """What is left to hash and write after a body's last byte is a small block, not a
    whole buffer: every request's answer waits for it."""
    pool = BufferPool(8 * 1024 * KIB, minimum=32 * KIB)
    body = os.urandom(5 * 1024 * KIB)
    reader = Trickle(body, step=len(body), pool=pool, sizes=(1024 * KIB, 1024 * KIB))
    seen = _Sizes()
    fd = os.open(tmp_path / "part", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        copy_into(fd, 0, reader, len(body), buffer_size=1024 * KIB, hashers=(seen,), pool=pool)
    finally:
        os.close(fd)
    assert (tmp_path / "part").read_bytes() == body
    assert sum(seen.sizes) == len(body) and max(seen.sizes) == 1024 * KIB
    assert seen.sizes[-1] <= 64 * KIB
    assert seen.sizes[-3:] == sorted(seen.sizes[-3:], reverse=True)
