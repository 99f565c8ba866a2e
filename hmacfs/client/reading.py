"""Reading a file's pieces into reused buffers, and their digests."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from hmacfs.client.errors import LocalFileError

_HASH_BLOCK = 4 * 1024 * 1024


class PieceReader:
    """Reads byte ranges of one file into one reused buffer (``pread``: no shared offset,
    so each thread keeps its own reader)."""

    def __init__(self, path: Path, capacity: int) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise LocalFileError(f"{path}: {exc.strerror}") from exc
        self._path = path
        self._buffer = bytearray(capacity)

    def read(self, offset: int, length: int) -> memoryview:
        """The file's bytes [offset, offset + length), valid until the next call."""
        if length > len(self._buffer):
            self._buffer = bytearray(length)
        view = memoryview(self._buffer)[:length]
        got = 0
        while got < length:
            try:
                count = os.preadv(self._fd, [view[got:]], offset + got)
            except OSError as exc:
                raise LocalFileError(f"{self._path}: {exc.strerror}") from exc
            if count == 0:
                raise LocalFileError(f"{self._path}: the file shrank while uploading")
            got += count
        return view

    def close(self) -> None:
        os.close(self._fd)


def sha256_b64(data: memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def file_sha256(path: Path) -> str:
    """SHA-256 of the whole file, hex (hashlib releases the GIL on big blocks)."""
    hasher = hashlib.sha256()
    buffer = bytearray(_HASH_BLOCK)
    view = memoryview(buffer)
    try:
        with path.open("rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                hasher.update(view[:count])
    except OSError as exc:
        raise LocalFileError(f"{path}: {exc.strerror}") from exc
    return hasher.hexdigest()
