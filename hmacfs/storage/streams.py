"""Blobs as seekable binary files, for libraries that want one (zipfile, tarfile, Pillow).

A path-backed store opens the file itself; any other store is read through
``OpenBlob.read_range`` behind a buffered, seekable reader.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from hmacfs.storage.blob_store import BlobStore, OpenBlob, PathBacked

_BUFFER = 1024 * 1024  # one range read per MiB for a store without files


def open_blob_file(store: BlobStore, storage_key: str) -> BinaryIO:
    """The blob's bytes as a seekable binary file (close it when done); FileNotFoundError
    when there is no such blob."""
    if isinstance(store, PathBacked):
        return store.blob_path(storage_key).open("rb")
    return io.BufferedReader(BlobFile(store.open_blob(storage_key)), _BUFFER)


class BlobFile(io.RawIOBase):
    """A read-only, seekable raw file over an ``OpenBlob`` (closed with it)."""

    def __init__(self, blob: OpenBlob) -> None:
        self._blob = blob
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._blob.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), max(self._blob.size - self._position, 0))
        got = 0
        for block in self._blob.read_range(self._position, wanted):
            buffer[got : got + len(block)] = block
            got += len(block)
        self._position += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._blob.close()
        super().close()
