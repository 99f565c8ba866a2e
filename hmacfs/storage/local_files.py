"""File-system helpers of the local blob store: reserving, linking, listing, fsyncing
directories. Only ``hmacfs.storage`` calls them."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from hmacfs.storage.blob_store import PartEntry
from hmacfs.storage.copying import Hasher


def normal_root(path: str | Path) -> Path:
    """A root directory as rows record it and comparisons see it: symlinks resolved."""
    return Path(os.path.realpath(path))


def preallocate(fd: int, size: int) -> None:
    """Reserve ``size`` bytes of disk, so that writing them later cannot run out of space.
    Raises OSError (ENOSPC, EDQUOT) when they cannot be reserved; only where the file
    system cannot reserve at all is the length merely set."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in _NO_FALLOCATE:
            raise
        os.ftruncate(fd, size)


# posix_fallocate's answers of a file system that cannot reserve space (not: "no space").
_NO_FALLOCATE = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


def holds(path: Path, size: int) -> bool:
    """Whether ``path`` is a file of exactly ``size`` bytes (the bytes a blob row expects)."""
    try:
        return os.stat(path).st_size == size
    except FileNotFoundError:
        return False


def link(source: Path, target: Path) -> None:
    """Give ``source``'s bytes the name ``target`` too, replacing whatever ``target`` was
    (a truncated leftover). Where the file system has no hard links (FAT), the part is
    moved instead: then a failed commit strands it as before this store linked."""
    try:
        os.link(source, target)
    except FileExistsError:
        temporary = target.with_name(f"{target.name}.{os.getpid()}.link")
        temporary.unlink(missing_ok=True)
        os.link(source, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        os.replace(source, target)


def link_blob(source: Path, target: Path, size: int, fsync: bool, drop_source: bool = False) -> bool:
    """Link part file ``source`` at blob path ``target`` (its first ``size`` bytes) and, when
    ``fsync``, make that durable; False when ``target`` already held the content.
    ``drop_source``: then remove ``source`` (in the caller's thread hop: an unlink waits
    on the journal as a link does)."""
    created = _link_blob(source, target, size, fsync)
    if drop_source:
        source.unlink(missing_ok=True)
    return created


def _link_blob(source: Path, target: Path, size: int, fsync: bool) -> bool:
    if holds(target, size):
        # Perhaps left by an attempt whose commit failed, with no row yet: its new
        # ctime tells the orphan collector it is in use again (``list_blobs``).
        touch_ctime(target)
        return False
    if os.path.getsize(source) != size:
        os.truncate(source, size)
    changed = [target.parent]  # directories whose entries must reach the disk
    try:
        link(source, target)
    except FileNotFoundError:  # first blob of this directory (or the part is gone: raises again)
        target.parent.mkdir(parents=True, exist_ok=True)
        link(source, target)
        # New directories are entries of their parents (blobs/aa/bb: up to two new ones).
        changed += [target.parent.parent, target.parent.parent.parent]
    if fsync:
        for directory in changed:
            fsync_dir(directory)
    return True


def read_file_range(path: Path, start: int, length: int, block_size: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``path`` from ``start`` in blocks of at most ``block_size``
    (fewer if the file ends first); FileNotFoundError on first use when it is missing."""
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            block = handle.read(min(block_size, remaining))
            if not block:
                break
            remaining -= len(block)
            yield block


def touch_ctime(path: Path) -> None:
    """Set ``path``'s change time to now, leaving its access and modification times."""
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def subdirectories(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalOpenBlob:
    """A blob file opened for range reads (``OpenBlob``): one descriptor, positional reads,
    so several ranges of one download share it."""

    def __init__(self, path: str | Path, buffer_size: int) -> None:
        self.path = path
        self._buffer_size = buffer_size
        self._fd: int | None = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read_range(self, start: int, length: int) -> Iterator[bytes]:
        position, end = start, start + length
        while position < end:
            block = os.pread(self.fileno(), min(self._buffer_size, end - position), position)
            if not block:
                return
            position += len(block)
            yield block

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the blob was closed")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> LocalOpenBlob:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def scan_files(directory: Path, keep: Callable[[str], bool]) -> list[os.DirEntry[str]]:
    """The regular files in ``directory`` whose names ``keep`` accepts ([] when it is missing)."""
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return []
    with entries:
        return [e for e in entries if keep(e.name) and e.is_file(follow_symlinks=False)]


def part_entry(entry: os.DirEntry[str]) -> PartEntry | None:
    try:
        stat = entry.stat(follow_symlinks=False)
    except FileNotFoundError:  # removed meanwhile
        return None
    return PartEntry(entry.name.removesuffix(".part"), stat.st_size, stat.st_mtime)


def feed_file(fd: int, hasher: Hasher, start: int, length: int, *, buffer_size: int) -> None:
    """Feed ``length`` bytes of the open file ``fd`` from ``start`` to ``hasher``, through
    one reused buffer (a writable view, so a ctypes hasher need not copy it); ValueError
    when the file ends first."""
    buffer = memoryview(bytearray(min(buffer_size, length) or 1))
    position, end = start, start + length
    while position < end:
        got = os.preadv(fd, [buffer[: min(len(buffer), end - position)]], position)
        if not got:
            raise ValueError(f"the file ends at {position}, before {end}")
        hasher.update(buffer[:got])
        position += got
