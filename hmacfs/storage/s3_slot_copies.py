"""A node's copy of the whole slots it stored as ``UploadPart``s, until the running hash reads them.

The parts of an open multipart upload cannot be read back, so a direct part's
running SHA-256 (``hmacfs.uploads.running_hash``) used to stop at its first
slot, and completion read the whole file back from the store to hash it: 0.4 s
of the last request per 256 MiB, and 1.3 CPU-s per GiB in the store. Instead,
the node that streams a slot into its ``UploadPart`` also writes the bytes to a
local file (page cache; no fsync: the store holds the durable copy), named by
the slot and the ``ETag`` the store answered (its MD5, ``marker_tag``: what a
listing gives for the slot's marker on stores that list MD5s, so no marker is
read; on others the marker is read). The running hash reads a slot from here
only when its ``e-<n>`` marker (the ETag last acknowledged for the slot) names
that file's ETag: a slot re-sent with other bytes, on this node or another, has
a new ETag, so stale bytes are never hashed. A slot not here (sent
to another node, evicted, or the process restarted) is read back from the store
once sealed, as before.

A slot's file is deleted once hashed (an advance never goes back, except after
a re-send, when completion reads it from the store); a part's files when the
part is promoted or deleted on this node; anything left over a day is swept.
At most ``budget`` bytes are kept: a slot past it is not copied.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import BinaryIO

from hmacfs.storage.copying import Hasher
from hmacfs.storage.local_files import feed_file

log = logging.getLogger(__name__)

COPIES_DIRECTORY = "s3-slot-copies"  # under the local store's root ([storage] path)
MAX_AGE = 24 * 3600.0  # a part's files untouched this long are swept
_SWEEP_EVERY = 600.0  # seconds between sweeps of a process
_BLOCK = 1024 * 1024


_TAG = re.compile(r"[0-9a-f]{32}")  # the MD5 of a slot marker's body (``marker_tag``)


class SlotCopyWriter:
    """The bytes of one slot as they stream into its ``UploadPart`` (a ``Hasher``: the
    stream feeds it each block). A failure to write (disk full) gives up the copy
    quietly; the upload goes on, and the slot is later read from the store."""

    def __init__(self, directory: Path, number: int) -> None:
        self._directory, self._number = directory, number
        self._temporary = directory / f"{number:06d}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        self._file: int | None = None
        self._written = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._file = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            log.debug("not keeping slot %d in %s: %s", number, directory, exc)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is None:
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._file, view) :]
            self._written += len(data)
        except OSError as exc:
            log.debug("not keeping slot %d: %s", self._number, exc)
            self.discard()

    def keep(self, tag: str, size: int) -> None:
        """The store acknowledged the slot, and its marker will be ``tag`` (``marker_tag`` of
        the ETag): the copy becomes its file (one per slot: an older one, of an earlier
        upload of the slot, is removed)."""
        if self._file is None:
            return
        os.close(self._file)
        self._file = None
        if self._written != size:  # the body was retried from the start, or cut: not a copy
            self._remove(self._temporary)
            return
        final = self._directory / f"{self._number:06d}-{tag}"
        try:
            for older in self._directory.glob(f"{self._number:06d}-*"):
                self._remove(older)
            os.replace(self._temporary, final)
        except OSError as exc:
            log.debug("not keeping slot %d: %s", self._number, exc)
            self._remove(self._temporary)

    def discard(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None
        self._remove(self._temporary)

    @staticmethod
    def _remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


class SlotCopies:
    """The slot files of this node under ``root``, at most ``budget`` bytes of them."""

    def __init__(self, root: Path, budget: int) -> None:
        self.root, self.budget = root, budget
        self._swept = 0.0

    def _directory(self, scope: str, part: str) -> Path:
        """A part's directory; ``scope`` (the bucket and prefix) keeps two roots apart."""
        return self.root / f"{hashlib.sha256(scope.encode()).hexdigest()[:12]}-{part}"

    def writer(self, scope: str, part: str, number: int, size: int) -> SlotCopyWriter | None:
        """A copy of slot ``number`` (``size`` bytes) while it is stored, or None when it
        would take the cache past its budget."""
        self._sweep()
        if self._used() + size > self.budget:
            return None
        return SlotCopyWriter(self._directory(scope, part), number)

    def open(self, scope: str, part: str, number: int, tag: str, size: int) -> BinaryIO | None:
        """This node's copy of slot ``number`` when it holds the one whose marker is ``tag``,
        all ``size`` bytes of it, open (it stays readable if another process drops it now)."""
        if not _TAG.fullmatch(tag):
            return None
        path = self._directory(scope, part) / f"{number:06d}-{tag}"
        try:
            file = path.open("rb", buffering=0)
        except OSError:
            return None
        if os.fstat(file.fileno()).st_size != size:
            file.close()
            return None
        return file

    def holds(self, scope: str, part: str, number: int) -> bool:
        """Whether this node holds some copy of slot ``number`` (before its ETag is known)."""
        return any(self._directory(scope, part).glob(f"{number:06d}-*"))

    @staticmethod
    def feed(file: BinaryIO, hasher: Hasher, start: int, length: int) -> None:
        """Feed ``length`` bytes of the open copy from ``start`` to ``hasher`` (its size was
        checked when it was opened, and a copy never shrinks)."""
        feed_file(file.fileno(), hasher, start, length, buffer_size=_BLOCK)

    def drop(self, file: BinaryIO) -> None:
        """Delete the open copy ``file``."""
        with contextlib.suppress(OSError):
            os.unlink(file.name)

    def drop_part(self, scope: str, part: str) -> None:
        shutil.rmtree(self._directory(scope, part), ignore_errors=True)

    def _used(self) -> int:
        total = 0
        with contextlib.suppress(OSError), os.scandir(self.root) as parts:
            for entry in parts:
                with contextlib.suppress(OSError), os.scandir(entry.path) as files:
                    total += sum(f.stat().st_size for f in files if f.is_file())
        return total

    def _sweep(self) -> None:
        """Remove parts' directories untouched for ``MAX_AGE`` (uploads abandoned, or finished
        on another node), at most every ``_SWEEP_EVERY`` seconds."""
        now = time.time()
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        with contextlib.suppress(OSError), os.scandir(self.root) as parts:
            for entry in parts:
                with contextlib.suppress(OSError):
                    if now - entry.stat().st_mtime > MAX_AGE:
                        shutil.rmtree(entry.path, ignore_errors=True)
