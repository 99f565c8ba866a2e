"""An in-memory BlobStore: a real implementation of the port, for tests.

Every root's parts and blobs live in dictionaries shared by all the stores
``at`` makes from one ``MemoryBlobStore`` (so two of them over one root see the
same bytes, as two processes over one directory do). Everything is "durable"
at once. ``capacity`` (bytes, None: unlimited) makes writes past it fail with
ENOSPC; ``unavailable`` makes every call raise StoreUnavailable, as a store that
went down does. Range locks exclude each other within the process.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from hmacfs.storage.blob_store import (
    BlobEntry,
    BlobStore,
    PartEntry,
    Space,
    StoredBlob,
    StoreUnavailable,
    WrittenRange,
)
from hmacfs.storage.copying import Hasher, Reader, read_exactly
from hmacfs.storage.shared_range_lock import MemoryRangeLock, MemoryRangeLocks

_PART_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 64 * 1024  # what read_part, feed_range and OpenBlob.read_range yield at most


@dataclass
class _Part:
    data: bytearray
    modified: float = field(default_factory=time.time)


@dataclass
class _Blob:
    data: bytes
    changed: float = field(default_factory=time.time)


@dataclass
class _Root:
    parts: dict[str, _Part] = field(default_factory=dict)
    blobs: dict[str, _Blob] = field(default_factory=dict)


class _Shared:
    """What every store made from one MemoryBlobStore shares: the roots, the locks."""

    def __init__(self, capacity: int | None) -> None:
        self.guard = threading.RLock()
        self.roots: dict[str, _Root] = {}
        self.locks = MemoryRangeLocks()
        self.capacity = capacity
        self.unavailable = False

    def used(self) -> int:
        return sum(
            sum(len(p.data) for p in root.parts.values()) + sum(len(b.data) for b in root.blobs.values())
            for root in self.roots.values()
        )


class MemoryBlobStore:
    """``BlobStore`` in memory (not PathBacked, Reserving or Presignable)."""

    def __init__(self, root: str = "", *, capacity: int | None = None) -> None:
        self._shared = _Shared(capacity)
        self._root = root

    # -- roots and health -------------------------------------------------------------
    @property
    def unavailable(self) -> bool:
        return self._shared.unavailable

    @unavailable.setter
    def unavailable(self, value: bool) -> None:
        """True: every call raises StoreUnavailable (the store went down) until set back."""
        self._shared.unavailable = value

    @property
    def location(self) -> str:
        return f"memory:{self._root}"

    def usable_root(self, root: str) -> str:
        self._check()
        if not root:
            raise ValueError("an empty storage root")
        return root

    def at(self, root: str | None) -> MemoryBlobStore:
        if root is None or root == self._root:
            return self
        other = copy.copy(self)
        other._root = root
        return other

    def ensure_layout(self) -> None:
        self._check()

    def check_writable(self) -> None:
        self._check()

    def space(self) -> Space | None:
        self._check()
        capacity = self._shared.capacity
        if capacity is None:
            return None
        with self._shared.guard:
            return Space(max(capacity - self._shared.used(), 0), capacity)

    # -- parts ------------------------------------------------------------------------
    def create_part(
        self, part: str, size: int | None, *, direct: bool = False, hashed_on_arrival: bool = False
    ) -> None:
        _check_part(part)
        with self._guard() as root:
            if part not in root.parts:
                self._reserve(size or 0)
                root.parts[part] = _Part(bytearray(size or 0))

    def write_part(
        self,
        part: str,
        offset: int,
        read: Reader,
        length: int,
        *,
        hashers: tuple[Hasher, ...] = (),
        durable: bool = True,
    ) -> None:
        _check_part(part)
        data = read_exactly(read, length)  # IncompleteBody before anything is written
        for hasher in hashers:
            hasher.update(memoryview(data))
        with self._guard() as root:
            stored = root.parts.setdefault(part, _Part(bytearray()))
            self._reserve(max(offset + length - len(stored.data), 0))
            _write_at(stored.data, offset, data)
            stored.modified = time.time()

    def sync_part(self, part: str) -> None:
        self._part(part)

    def receive(self, part: str, read: Reader, length: int | None) -> WrittenRange:
        _check_part(part)
        data = read_exactly(read, length) if length is not None else _read_to_end(read)
        with self._guard() as root:
            self._reserve(len(data))
            root.parts[part] = _Part(bytearray(data))
        return WrittenRange(0, len(data), hashlib.sha256(data).hexdigest())

    def read_part(self, part: str, start: int, length: int) -> Iterator[bytes]:
        return _blocks(lambda: bytes(self._part(part).data[start : start + length]))

    def feed_range(self, part: str, hasher: Hasher, start: int, length: int) -> None:
        data = bytes(self._part(part).data[start : start + length])
        if len(data) < length:
            raise ValueError(f"part {part} ends at {start + len(data)}, before {start + length}")
        for offset in range(0, length, _BLOCK):
            hasher.update(data[offset : offset + _BLOCK])

    def same_bytes(self, part: str, offset: int, other: str, length: int) -> bool:
        mine = self._part(part).data[offset : offset + length]
        return mine == self._part(other).data[:length]

    def part_size(self, part: str) -> int | None:
        _check_part(part)
        with self._guard() as root:
            stored = root.parts.get(part)
            return None if stored is None else len(stored.data)

    def lock_part(self, part: str) -> MemoryRangeLock:
        self._part(part)
        return self._shared.locks.lock(f"{self._root}/{part}")  # a part name has no "/"

    def delete_part(self, part: str) -> None:
        _check_part(part)
        with self._guard() as root:
            root.parts.pop(part, None)

    def list_parts(self, prefix: str = "") -> list[PartEntry]:
        with self._guard() as root:
            return [
                PartEntry(name, len(p.data), p.modified)
                for name, p in root.parts.items()
                if name.startswith(prefix)
            ]

    # -- blobs ------------------------------------------------------------------------
    def blob_key(self, sha256: str, unique: str | None = None) -> str:
        if not _SHA256.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return sha256 if unique is None else f"{sha256}-{unique}"

    def seal_part(self, part: str) -> None:
        """Nothing to do: every written byte is readable."""

    def promoted_key(self, part: str, sha256: str, *, shared: bool = True) -> str:
        return self.blob_key(sha256, None if shared else part)

    def promote_part(
        self,
        part: str,
        sha256: str,
        size: int,
        *,
        shared: bool = True,
        drop_part: bool = False,
        key: str | None = None,
    ) -> StoredBlob:
        stored = self._promote(part, sha256, size, key or self.blob_key(sha256, None if shared else part))
        if drop_part:
            self.delete_part(part)
        return stored

    def _promote(self, part: str, sha256: str, size: int, key: str) -> StoredBlob:
        with self._guard() as root:
            existing = root.blobs.get(key)
            if existing is not None and len(existing.data) == size:
                existing.changed = time.time()
                return StoredBlob(sha256, size, key, created=False)
            stored = root.parts.get(part)
            if stored is None:
                raise FileNotFoundError(errno.ENOENT, "no such part", part)
            self._reserve(size)
            root.blobs[key] = _Blob(bytes(stored.data[:size]))
        return StoredBlob(sha256, size, key, created=True)

    def open_blob(self, storage_key: str, *, first: tuple[int, int] | None = None) -> MemoryOpenBlob:
        with self._guard() as root:
            stored = root.blobs.get(storage_key)
            if stored is None:
                raise FileNotFoundError(errno.ENOENT, "no such blob", storage_key)
            return MemoryOpenBlob(stored.data)

    def has_blob(self, storage_key: str, size: int) -> bool:
        with self._guard() as root:
            stored = root.blobs.get(storage_key)
            return stored is not None and len(stored.data) == size

    def delete_blob(self, storage_key: str, *, changed_before: float | None = None) -> bool:
        with self._guard() as root:
            stored = root.blobs.get(storage_key)
            if stored is None or (changed_before is not None and stored.changed >= changed_before):
                return False
            del root.blobs[storage_key]
            return True

    def list_blobs(self) -> Iterator[BlobEntry]:
        with self._guard() as root:
            entries = [BlobEntry(key, len(b.data), b.changed) for key, b in root.blobs.items()]
        yield from entries

    # -- helpers ----------------------------------------------------------------------
    def _check(self) -> None:
        if self._shared.unavailable:
            raise StoreUnavailable("the memory store was made unavailable")

    def _guard(self) -> _Guarded:
        self._check()
        return _Guarded(self._shared, self._root)

    def _part(self, part: str) -> _Part:
        _check_part(part)
        with self._guard() as root:
            stored = root.parts.get(part)
            if stored is None:
                raise FileNotFoundError(errno.ENOENT, "no such part", part)
            return stored

    def _reserve(self, size: int) -> None:
        """ENOSPC when ``size`` more bytes do not fit the capacity (the guard is held)."""
        capacity = self._shared.capacity
        if capacity is not None and size > 0 and self._shared.used() + size > capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _Guarded:
    """``with`` the shared lock held, giving this store's root (made on first use)."""

    def __init__(self, shared: _Shared, root: str) -> None:
        self._shared, self._root = shared, root

    def __enter__(self) -> _Root:
        self._shared.guard.acquire()
        return self._shared.roots.setdefault(self._root, _Root())

    def __exit__(self, *_: object) -> None:
        self._shared.guard.release()


class MemoryOpenBlob:
    """A blob's bytes as they were when opened (``OpenBlob``)."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data
        self.size = len(data)

    def read_range(self, start: int, length: int) -> Iterator[bytes]:
        data = self._data
        if data is None:
            raise ValueError("the blob was closed")
        return _blocks(lambda: data[start : start + length])

    def close(self) -> None:
        self._data = None

    def __enter__(self) -> MemoryOpenBlob:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _check_part(part: str) -> None:
    if not _PART_NAME.match(part):
        raise ValueError(f"bad part name {part!r}")


def _write_at(target: bytearray, offset: int, data: bytes | bytearray) -> None:
    if len(target) < offset:
        target.extend(bytes(offset - len(target)))
    target[offset : offset + len(data)] = data


def _read_to_end(read: Reader) -> bytes:
    chunks = []
    while data := read(_BLOCK):
        chunks.append(data)
    return b"".join(chunks)


def _blocks(take: Callable[[], bytes]) -> Iterator[bytes]:
    """The bytes ``take`` returns on first use (FileNotFoundError then, as a file's read
    would), in blocks."""
    data = take()
    for offset in range(0, len(data), _BLOCK):
        yield data[offset : offset + _BLOCK]


if TYPE_CHECKING:  # mypy proves the store implements the port
    _IMPLEMENTS: BlobStore = MemoryBlobStore()
