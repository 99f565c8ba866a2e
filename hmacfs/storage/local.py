"""Local-filesystem blob store (``BlobStore`` and ``PathBacked``).

Layout under the root: ``parts/<upload>.part`` for uploads in flight (one
preallocated file each, chunks written at their offsets with ``os.pwrite``) and
``blobs/<aa>/<bb>/<sha256>`` for finished content, addressed by its hash.
Every write is fsynced before the caller may acknowledge it.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hmacfs.storage.blob_store import (
    S3_SCHEME,
    BlobEntry,
    BlobStore,
    PartEntry,
    PathBacked,
    Reserving,
    Space,
    StoredBlob,
    WrittenRange,
)
from hmacfs.storage.blocking import offload
from hmacfs.storage.buffers import BufferPool
from hmacfs.storage.copying import Hasher, Reader, blocks_reader, copy_into, read_exactly, write_all
from hmacfs.storage.holes import punch_holes
from hmacfs.storage.local_files import (
    LocalOpenBlob,
    feed_file,
    holds,
    link_blob,
    normal_root,
    part_entry,
    preallocate,
    read_file_range,
    scan_files,
    subdirectories,
)
from hmacfs.storage.range_lock import PartLock

__all__ = ["LocalBlobStore", "StoredBlob", "WrittenRange", "blocks_reader", "holds", "normal_root"]

_PART_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


WHOLE_IN_MEMORY = 64 * 1024  # bodies read whole before their file is created (receive)


class LocalBlobStore:
    def __init__(
        self,
        root: Path,
        *,
        fsync: bool = True,
        buffer_size: int = 1024 * 1024,
        offload_promotion: bool = False,
        buffers: BufferPool | None = None,
    ) -> None:
        self.root = root
        self._location: str | None = None
        self.fsync = fsync
        self.buffer_size = buffer_size
        # The process's body buffers under performance.max_buffer_memory (None: copying's default pool).
        self.buffers = buffers
        # promote_part runs inside the caller's database transaction. Letting other
        # greenlets run meanwhile (its rename and directory fsyncs in a thread) is
        # only safe when the database does not hold a process-wide write lock then
        # (PostgreSQL yes, SQLite no: a second writer would block the whole loop in
        # sqlite's busy wait).
        self.offload_promotion = offload_promotion
        self.foreign: Callable[[str], BlobStore] | None = None  # the S3 store's roots, if any

    def usable_root(self, path: str) -> Path:
        """``path`` as a storage root: absolute, symlinks resolved, and writable here (a
        probe file is created, fsynced and removed). ValueError says what is wrong."""
        if not os.path.isabs(path):
            raise ValueError(f"{path!r} is not an absolute path")
        root = normal_root(path)
        try:
            self.at(root).check_writable()
        except OSError as exc:
            raise ValueError(f"{path!r} is not writable: {exc.strerror or exc}") from None
        return root

    @property
    def location(self) -> str:
        """The root's real path (symlinks resolved: two names of one directory are one
        root), computed once per store."""
        if self._location is None:
            self._location = os.path.realpath(self.root)
        return self._location

    def at(self, root: str | Path | None) -> BlobStore:
        """The same store over another root (a pool's storage path); itself for None; for
        an ``s3://`` root the S3 store over it (``foreign``: StorageMigration to S3).

        Parts written through it live under that root, so promoting one to a
        blob there is a rename on one filesystem.
        """
        if isinstance(root, str) and root.startswith(S3_SCHEME) and self.foreign is not None:
            return self.foreign(root)
        if root is None or Path(root) == self.root:
            return self
        other = copy.copy(self)
        other.root, other._location = Path(root), None
        return other

    # -- life cycle -----------------------------------------------------------
    def ensure_layout(self) -> None:
        for sub in ("parts", "blobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _create(self, path: Path) -> int:
        """Open a new file for writing, making the layout on first use."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            return os.open(path, flags, 0o600)
        except FileNotFoundError:
            self.ensure_layout()
            return os.open(path, flags, 0o600)

    def _open_part(self, part: str) -> int:
        """Open a part for writing, creating it (and the layout on first use) if needed."""
        path = self.part_path(part)
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self.ensure_layout()
            return os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)

    def space(self) -> Space:
        usage = shutil.disk_usage(self.root)
        return Space(usage.free, usage.total)

    def check_writable(self) -> None:
        """Create, fsync and remove a probe file; raise OSError when storage is unusable."""
        self.ensure_layout()
        probe = self.root / "parts" / f".probe-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)

    # -- parts ----------------------------------------------------------------
    def part_path(self, part: str) -> Path:
        if not _PART_NAME.match(part):
            raise ValueError(f"bad part name {part!r}")
        return self.root / "parts" / f"{part}.part"

    def create_part(
        self, part: str, size: int | None, *, direct: bool = False, hashed_on_arrival: bool = False
    ) -> None:
        """Create a new part file, reserving ``size`` bytes of disk when known. Raises OSError
        (ENOSPC, EDQUOT) when they cannot be reserved; then no part remains."""
        self.ensure_layout()
        path = self.part_path(part)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            if size:
                preallocate(fd, size)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)

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
        """Stream exactly ``length`` bytes from ``read`` into the part at ``offset``, feeding
        them to ``hashers`` on the way.

        The bytes are fsynced before this returns. Raises IncompleteBody when
        the source ends early (the range must then be treated as unwritten,
        and the hashers as spoiled).
        """
        fd = self._open_part(part)
        try:
            copy_into(fd, offset, read, length, hashers=hashers, **self._copying)
            if self.fsync and durable:
                offload(os.fsync, fd)
        finally:
            os.close(fd)

    def sync_part(self, part: str) -> None:
        if not self.fsync:
            return
        fd = os.open(self.part_path(part), os.O_WRONLY)
        try:
            offload(os.fsync, fd)
        finally:
            os.close(fd)

    @property
    def _copying(self) -> dict[str, Any]:
        """``copy_into`` options: bounded blocks, written behind when they will be fsynced."""
        return {"buffer_size": self.buffer_size, "write_behind": self.fsync, "pool": self.buffers}

    def same_bytes(self, part: str, offset: int, other: str, length: int) -> bool:
        """Whether ``length`` bytes of ``part`` at ``offset`` equal the start of part ``other``."""
        mine = read_file_range(self.part_path(part), offset, length, self.buffer_size)
        theirs = read_file_range(self.part_path(other), 0, length, self.buffer_size)
        return all(a == b for a, b in itertools.zip_longest(mine, theirs))

    def feed_range(self, part: str, hasher: Hasher, start: int, length: int) -> None:
        """Feed ``length`` bytes of a part from ``start`` to ``hasher``, in bounded buffers
        (one reused buffer: a writable view, so a ctypes hasher need not copy it)."""
        fd = os.open(self.part_path(part), os.O_RDONLY)
        try:
            feed_file(fd, hasher, start, length, buffer_size=self.buffer_size)
        except ValueError as exc:
            raise ValueError(f"part {part}: {exc}") from None
        finally:
            os.close(fd)

    def part_files(self, prefix: str = "") -> list[Path]:
        """The part files whose names start with ``prefix``.

        A prefix test instead of Path.glob: glob compiles a new regex for every
        prefix, and the task worker looks after every task."""
        try:
            entries = os.scandir(self.root / "parts")
        except FileNotFoundError:
            return []
        with entries:
            return [Path(e.path) for e in entries if e.name.startswith(prefix) and e.name.endswith(".part")]

    def list_parts(self, prefix: str = "") -> list[PartEntry]:
        """The parts whose names start with ``prefix``, with their sizes and mtimes."""
        entries = scan_files(self.root / "parts", lambda n: n.startswith(prefix) and n.endswith(".part"))
        return [entry for e in entries if (entry := part_entry(e)) is not None]

    def read_part(self, part: str, start: int, length: int) -> Iterator[bytes]:
        return read_file_range(self.part_path(part), start, length, self.buffer_size)

    def part_size(self, part: str) -> int | None:
        try:
            return os.stat(self.part_path(part)).st_size
        except FileNotFoundError:
            return None

    def lock_part(self, part: str) -> PartLock:
        return PartLock(self.part_path(part))

    def release_ranges(self, part: str, ranges: Iterable[tuple[int, int]]) -> bool:
        return punch_holes(self.part_path(part), ranges)

    def delete_part(self, part: str) -> None:
        self.part_path(part).unlink(missing_ok=True)

    # -- blobs ----------------------------------------------------------------
    def blob_key(self, sha256: str, unique: str | None = None) -> str:
        """Where content lives: by hash alone when shared, hash plus ``unique`` when not."""
        if not _SHA256.match(sha256):
            raise ValueError("not a sha256 hex digest")
        name = sha256 if unique is None else f"{sha256}-{unique}"
        return f"blobs/{sha256[:2]}/{sha256[2:4]}/{name}"

    def blob_path(self, storage_key: str) -> Path:
        return self.root / storage_key

    def open_blob(self, storage_key: str, *, first: tuple[int, int] | None = None) -> LocalOpenBlob:
        # A string path: pathlib's join cost about 3 % of a cached 4 KiB GET.
        return LocalOpenBlob(os.path.join(self.root, storage_key), self.buffer_size)

    def has_blob(self, storage_key: str, size: int) -> bool:
        return holds(self.blob_path(storage_key), size)

    def delete_blob(self, storage_key: str, *, changed_before: float | None = None) -> bool:
        path = self.blob_path(storage_key)
        try:
            if changed_before is not None and os.stat(path).st_ctime >= changed_before:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def list_blobs(self) -> Iterator[BlobEntry]:
        """Every blob file under ``blobs/`` with its size and ctime (a file removed
        meanwhile is left out)."""
        for path in self.blob_files():
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            yield BlobEntry(path.relative_to(self.root).as_posix(), stat.st_size, stat.st_ctime)

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
        """Make the part's bytes the blob of ``sha256`` (nothing to do when the blob's path
        already holds that content). The part stays: it is a second name for the same
        bytes (a hard link) until the caller drops it, which it does only once the rows
        that point at the blob have committed. So a transaction that fails after this
        leaves the upload as it was, and completing it again finishes the job. With
        ``drop_part`` (a one-request upload) it goes in the same thread hop, after the
        blob's link is durable: removing it after the commit stalled the worker's loop.

        Callers hold the blob's database row while doing this (see
        ``hmacfs.files``), so a collector cannot remove the target meanwhile.
        The link and the directory fsyncs run in one thread hop when
        ``offload_promotion``: file-system metadata calls wait on the journal.
        """
        key = key or self.blob_key(sha256, None if shared else part)
        promote = (self.part_path(part), self.blob_path(key), size, self.fsync, drop_part)
        created = offload(link_blob, *promote) if self.offload_promotion else link_blob(*promote)
        return StoredBlob(sha256, size, key, created=created)

    def blob_files(self) -> Iterator[Path]:
        """Every file under ``blobs/`` of this root (for the orphan collector)."""
        for first in subdirectories(self.root / "blobs"):
            for second in subdirectories(first):
                with os.scandir(second) as entries:
                    yield from (Path(e.path) for e in entries if e.is_file(follow_symlinks=False))

    def receive(self, part: str, read: Reader, length: int | None) -> WrittenRange:
        """Stream a whole body into a new part (created, preallocated, written and
        fsynced through one descriptor); nothing remains if the body is short.

        A body that fits one buffer is read first and then created, written and
        fsynced in one thread hop: creating a file waits on the file-system
        journal, which would stall every other request of a gevent worker. Only up to
        ``WHOLE_IN_MEMORY``: that buffer is outside the budgeted pool, and a thousand
        slow 1 MiB PUTs would each hold their whole body."""
        if length is None:
            return self._receive_to_end(part, read)
        if length <= min(self.buffer_size, WHOLE_IN_MEMORY):
            data = read_exactly(read, length)
            offload(self._write_new, self.part_path(part), data)
            return WrittenRange(0, length, hashlib.sha256(data).hexdigest())

        def fill(fd: int) -> WrittenRange:
            preallocate(fd, length)
            hasher = hashlib.sha256()
            copy_into(fd, 0, read, length, hashers=(hasher,), **self._copying)
            return WrittenRange(0, length, hasher.hexdigest())

        return self._fill_new_part(part, fill)

    def _receive_to_end(self, part: str, read: Reader) -> WrittenRange:
        """Stream ``read`` until it returns b"" into a new part, hashing it; fsync. The
        part is removed on any failure (a limit the reader enforces too)."""

        def fill(fd: int) -> WrittenRange:
            hasher, size = hashlib.sha256(), 0
            while data := read(self.buffer_size):
                hasher.update(data)
                write_all(fd, data, size)
                size += len(data)
            return WrittenRange(0, size, hasher.hexdigest())

        return self._fill_new_part(part, fill)

    def _fill_new_part(self, part: str, fill: Callable[[int], WrittenRange]) -> WrittenRange:
        """Create the part, ``fill`` its descriptor, fsync it; removed again on any failure."""
        fd = self._create(self.part_path(part))
        try:
            written = fill(fd)
            if self.fsync:
                offload(os.fsync, fd)
        except BaseException:
            os.close(fd)
            self.delete_part(part)
            raise
        os.close(fd)
        return written

    def _write_new(self, path: Path, data: bytes | bytearray) -> None:
        """Create ``path`` holding ``data``, fsynced; nothing remains if that fails."""
        fd = self._create(path)
        try:
            write_all(fd, data, 0)
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)


if TYPE_CHECKING:  # mypy proves the store implements the port and its path capability
    _IMPLEMENTS: tuple[BlobStore, PathBacked, Reserving] = (LocalBlobStore(Path()),) * 3
