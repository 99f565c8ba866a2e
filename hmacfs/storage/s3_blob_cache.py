"""Small blobs of the S3 store kept in each process's memory, for downloads.

Chat traffic is small files, each uploaded once and downloaded by every member
of the chat. From an object store every download is a GET, which made a 4 KiB
download 2.6x slower than from the local store's page cache. A worker keeps the
bytes of the small blobs it stored or served (at most ``CACHED_AT_MOST`` each,
``[storage.s3] small_blob_cache`` bytes in all, the least recently used going
first) and serves them again without asking the store.

Why a cached blob is never stale: a blob's key names its content (its SHA-256,
with the upload's part for an unshared blob, or a direct part's own upload key),
and an object is only ever written with the bytes its key names. A download
reaches the cache only after its file's row was found, so a deleted or expired
file is refused before its bytes are looked at; a blob stored again after it was
deleted is the same bytes under the same key. A process drops the blobs it
deletes itself.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

CACHED_AT_MOST = 256 * 1024  # bytes of one blob kept (larger blobs are streamed)


class BlobCache:
    """Blob bytes by their full key (bucket and key), within ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._used = 0
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._guard:
            data = self._entries.get(key)
            if data is not None:
                self._entries.move_to_end(key)
            return data

    def keeps(self, size: int) -> bool:
        """Whether a blob of ``size`` bytes would be kept."""
        return size <= min(CACHED_AT_MOST, self._budget)

    def put(self, key: str, data: bytes) -> None:
        if not self.keeps(len(data)):
            return
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = data
            self._used += len(data)
            while self._used > self._budget:
                _, dropped = self._entries.popitem(last=False)
                self._used -= len(dropped)

    def drop(self, key: str) -> None:
        with self._guard:
            dropped = self._entries.pop(key, None)
            if dropped is not None:
                self._used -= len(dropped)
