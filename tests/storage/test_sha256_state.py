"""The exportable SHA-256 and the part range locks the running hash relies on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hmacfs.storage.range_lock import PartLock
from hmacfs.storage.sha256_state import STATE_SIZE, ResumableSha256, available

pytestmark = pytest.mark.skipif(not available(), reason="libcrypto not loadable")


def test_a_saved_state_continues_to_the_same_digest_as_hashlib() -> None:
    data = os.urandom(300_000)
    for cut in (0, 1, 63, 64, 65, 4096, 150_001, len(data)):
        first = ResumableSha256()
        first.update(data[:cut])  # bytes: read-only, copied
        state = first.state()
        assert len(state) == STATE_SIZE
        second = ResumableSha256(state)
        second.update(memoryview(bytearray(data[cut:])))  # a writable view: not copied
        assert second.hexdigest() == hashlib.sha256(data).hexdigest()
    assert ResumableSha256().hexdigest() == hashlib.sha256().hexdigest()


def test_a_digest_does_not_end_the_hash() -> None:
    running = ResumableSha256()
    running.update(b"abc")
    assert running.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    running.update(b"def")
    assert running.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_a_state_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="112 bytes"):
        ResumableSha256(b"\0" * 32)


def test_range_locks_conflict_between_holders_and_merge_within_one(tmp_path: Path) -> None:
    path = tmp_path / "x.part"
    path.write_bytes(b"\0" * 100)
    mine, theirs = PartLock(path), PartLock(path)
    try:
        assert mine.try_lock(0, 10)
        assert not theirs.try_lock(5, 10)  # overlaps
        assert theirs.try_lock(10, 10)  # next to it
        assert not mine.try_lock(0, 0)  # the whole file: theirs is in it
        assert theirs.try_lock(50, 1, exclusive=False)
        assert not mine.try_lock(50, 1)
        theirs.close()  # closing releases every range
        assert mine.try_lock(0, 0)  # grows over its own range without conflict
        mine.unlock(0, 50)
        again = PartLock(path)
        assert again.try_lock(0, 50) and not again.try_lock(50, 1)
        again.close()
    finally:
        mine.close()


def test_waiting_gives_up_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "x.part"
    path.write_bytes(b"\0" * 10)
    holder, waiter = PartLock(path), PartLock(path)
    naps: list[float] = []
    try:
        assert holder.try_lock(0, 10)
        assert not waiter.wait_lock(0, 10, timeout=0.05, sleep=naps.append)
        assert naps and max(naps) <= 0.05
        holder.close()
        assert waiter.wait_lock(0, 10, timeout=0.05, sleep=naps.append)
    finally:
        holder.close()
        waiter.close()
