"""The BlobStore port: where the upload engine, files, tasks and downloads keep bytes.

Two kinds of objects live in a store:

- **parts**: the bytes of something in flight (an upload, a task's output, a
  re-sent chunk's scratch copy), named by the caller (``[A-Za-z0-9_-]{1,64}``),
  written at offsets in any order and from several processes at once;
- **blobs**: finished content, addressed by its SHA-256 and named by an opaque
  ``storage_key`` the store chooses (``promote_part``); rows record that key
  and the root (``at``) it was written under, and callers never parse it.

Every backend implements ``BlobStore``; what only some can do is a separate
small protocol, tested with ``isinstance``: ``PathBacked`` (a local path, for
``sendfile`` and X-Accel-Redirect), ``Reserving`` (space reserved at creation
that an idle upload gives back) and ``Presignable`` (a URL a client may be
redirected to). The backend is chosen in one place, ``hmacfs.container``.

**Durability.** When ``create_part``, ``write_part``, ``receive`` and
``promote_part`` return, what they wrote survives a crash of the process and of
the machine (local: fsynced; an object store: stored by it). The engine
acknowledges a client only after that, so this return is the durability
point. A method that fails leaves the range it was writing unwritten as far as
the caller knows (it may hold any bytes).

**Errors.** A missing part or blob is ``FileNotFoundError`` (whatever the
backend: callers catch that one class). A full store is ``OSError`` with
``errno.ENOSPC`` or ``errno.EDQUOT`` (answered 507). A store that cannot be
reached is ``StoreUnavailable`` (answered 503). Bad names are ``ValueError``.

**Roots.** A pool may name its own storage root (``pools.storage_path``).
``at(root)`` is the same store over that root: a directory for the local
store, a key prefix (or nothing) for an object store. Blobs are read through
``store.at(blob.storage_root)``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from hmacfs.storage.copying import Hasher, Reader

S3_SCHEME = "s3://"  # a storage root in an S3 bucket: s3://bucket/prefix/ (hmacfs.storage.s3)


class StoreUnavailable(Exception):
    """The store cannot be reached or answered with a server error (an object store down,
    timing out): the request is undone and may be retried (503)."""


@dataclass(frozen=True)
class WrittenRange:
    """Bytes written at ``offset``: ``size`` of them, whose SHA-256 (hex) is ``sha256``."""

    offset: int
    size: int
    sha256: str


@dataclass(frozen=True)
class StoredBlob:
    """A promoted blob: its content's SHA-256 (hex) and size, the opaque key rows record,
    and whether this promotion stored it (False: the key held that content already)."""

    sha256: str
    size: int
    storage_key: str
    created: bool


@dataclass(frozen=True)
class Space:
    """Bytes still free and in all, of the file system (or volume) under a root."""

    free: int
    total: int


@dataclass(frozen=True)
class PartEntry:
    """A part as the cleanup listings see it: its name, size in bytes, and when it was last
    written (POSIX seconds)."""

    name: str
    size: int
    modified: float


@dataclass(frozen=True)
class BlobEntry:
    """A stored blob as the orphan collector sees it: its key, size in bytes, and when it
    was last stored or promoted again (POSIX seconds; the local store uses the ctime,
    which ``promote_part`` refreshes when the content was there already)."""

    storage_key: str
    size: int
    changed: float


class RangeLock(Protocol):
    """Byte-range locks on one part, excluding every other ``RangeLock`` on that part (in
    any greenlet or process that shares the store), while the ranges one lock holds never
    conflict with each other. Closing it (or the holder dying) releases every range."""

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        """Lock [offset, offset + length) now (length 0: to the end); False when another
        lock holds a conflicting range."""

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        """``try_lock`` until it succeeds or ``timeout`` seconds have passed (then False)."""

    def unlock(self, offset: int, length: int) -> None:
        """Release [offset, offset + length) (length 0: to the end)."""

    def close(self) -> None:
        """Release every range; idempotent."""


class OpenBlob(Protocol):
    """A blob opened for range reads (``BlobStore.open_blob``); a context manager."""

    @property
    def size(self) -> int:
        """The blob's size in bytes."""

    def read_range(self, start: int, length: int) -> Iterator[bytes]:
        """Yield ``length`` bytes from ``start`` in bounded blocks (fewer only if the blob
        is shorter than it was when opened)."""

    def close(self) -> None:
        """Give back what reading held (a descriptor, a connection); idempotent."""

    def __enter__(self) -> OpenBlob: ...

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None: ...


class BlobStore(Protocol):
    """Parts and content-addressed blobs under one root (see the module docstring for
    durability, errors and roots)."""

    # -- roots and health ---------------------------------------------------------
    def usable_root(self, root: str) -> str | os.PathLike[str]:
        """``root`` as a pool's storage root, normalised (as rows record it), after
        checking that this store can write there; ValueError says what is wrong."""

    @property
    def location(self) -> str:
        """Names this store's root, equal for two stores over the same root (the local
        store: its directory; an object store: bucket and prefix). For comparisons
        and messages; never parsed."""

    def at(self, root: str | None) -> BlobStore:
        """The same store over another root (a pool's ``storage_path``); itself for None
        or its own root. Parts promoted there become blobs there."""

    def ensure_layout(self) -> None:
        """Make whatever the store needs before first use (idempotent)."""

    def check_writable(self) -> None:
        """Write, make durable and remove a probe; raise OSError or StoreUnavailable when
        the store cannot take writes."""

    def space(self) -> Space | None:
        """The free and total bytes of what holds this root; None when the backend has no
        such limit (an object store)."""

    # -- parts --------------------------------------------------------------------
    def create_part(
        self, part: str, size: int | None, *, direct: bool = False, hashed_on_arrival: bool = False
    ) -> None:
        """Create part ``part`` (kept if it exists), reserving ``size`` bytes where the
        backend can. Raises OSError (ENOSPC, EDQUOT) when they cannot be reserved; then
        no new part remains. ``direct``: the part will be promoted to ``promoted_key``,
        so the store may keep its bytes where that blob will be (S3: a multipart upload);
        until ``seal_part``, some of its written ranges may then not be readable
        (``read_part`` yields fewer bytes, ``feed_range`` raises ValueError), unless this
        node kept them for reading. ``hashed_on_arrival``: its writes come in order and
        are hashed as they arrive (tus), so nothing needs to be kept for reading."""

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
        """Stream exactly ``length`` bytes from ``read`` into ``part`` at ``offset`` (in
        any order, ranges of one part from several writers at once), feeding them to
        ``hashers``; creates the part if needed. Durable when it returns, unless
        ``durable`` is False: then only after a later ``sync_part`` (a task writing
        its output block by block). Raises IncompleteBody when ``read`` ends early
        (the range is then unwritten, the hashers spoiled)."""

    def sync_part(self, part: str) -> None:
        """The durability point of writes made with ``durable=False``: when this returns,
        every range written to ``part`` so far survives a crash."""

    def seal_part(self, part: str) -> None:
        """Make every written byte of a ``direct`` part readable (nothing for other parts).
        The caller makes sure no write to the part runs meanwhile; writes after it are
        allowed (a chunk re-sent after a hash mismatch)."""

    def receive(self, part: str, read: Reader, length: int | None) -> WrittenRange:
        """Stream a whole body of ``length`` bytes (None: until ``read`` returns b"") into a
        new part and return its size and SHA-256; durable when it returns, nothing
        remains when it raises (IncompleteBody, or whatever ``read`` raises: a limit)."""

    def read_part(self, part: str, start: int, length: int) -> Iterator[bytes]:
        """Yield ``length`` bytes of ``part`` from ``start`` in bounded blocks (fewer if
        the part ends first). FileNotFoundError (on first use) when there is no part."""

    def feed_range(self, part: str, hasher: Hasher, start: int, length: int) -> None:
        """Feed ``length`` bytes of ``part`` from ``start`` to ``hasher``; ValueError when
        the part ends first, FileNotFoundError when there is none."""

    def same_bytes(self, part: str, offset: int, other: str, length: int) -> bool:
        """Whether ``length`` bytes of ``part`` at ``offset`` equal the first ``length``
        bytes of part ``other``."""

    def part_size(self, part: str) -> int | None:
        """The part's size in bytes (its preallocated or furthest written end); None when
        there is no such part."""

    def lock_part(self, part: str) -> RangeLock:
        """A new range lock on an existing part; FileNotFoundError when there is none."""

    def delete_part(self, part: str) -> None:
        """Discard the part (nothing when there is none)."""

    def list_parts(self, prefix: str = "") -> list[PartEntry]:
        """The parts under this root whose names start with ``prefix`` (for cleanup);
        a part deleted while listing may be missing or listed."""

    # -- blobs --------------------------------------------------------------------
    def blob_key(self, sha256: str, unique: str | None = None) -> str:
        """The storage key of content ``sha256``: shared by every upload of that content
        when ``unique`` is None, else its own. ValueError when ``sha256`` is not a
        lower-case hex digest."""

    def promoted_key(self, part: str, sha256: str, *, shared: bool = True) -> str:
        """The key the blob of ``part`` (content ``sha256``) is best promoted to: where the
        store keeps a ``direct`` part's bytes already, else ``blob_key(sha256, None if
        shared else part)``. Valid while the part is not written."""

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
        """Make the first ``size`` bytes of ``part`` the blob of ``sha256`` at ``key`` (a key
        of ``promoted_key`` or of a row; None: ``blob_key(sha256, None if shared else
        part)``); ``created`` is False when that key held ``size`` bytes already (dedup:
        the part's bytes are then not used).
        The caller has verified the hash. The part may remain, and the caller deletes
        it once the rows that name the blob have committed; the blob never depends on
        it. Repeating a promotion after a failed commit is safe. ``drop_part``: the part
        is gone when this returns (a one-request upload, whose part goes whether its
        commit succeeds or not: nothing would promote it again)."""

    def open_blob(self, storage_key: str, *, first: tuple[int, int] | None = None) -> OpenBlob:
        """Open a blob for range reads; FileNotFoundError when there is none. ``first``: the
        range (start, length) the caller reads first, which a store may start reading now
        (an object store's GET of it is also the existence check, instead of a HEAD)."""

    def has_blob(self, storage_key: str, size: int) -> bool:
        """Whether the blob exists with exactly ``size`` bytes (the bytes a row expects)."""

    def delete_blob(self, storage_key: str, *, changed_before: float | None = None) -> bool:
        """Delete a blob; False when there is none, or when ``changed_before`` (POSIX
        seconds) is given and the blob was stored or promoted again since (the orphan
        collector's last check: a completion reusing it has just refreshed it).
        Callers hold its row locked, or know it has none, and delete only
        unreferenced content."""

    def list_blobs(self) -> Iterator[BlobEntry]:
        """Every blob under this root (for the orphan collector)."""


@runtime_checkable
class PathBacked(Protocol):
    """A store whose parts and blobs are local files: downloads may ``sendfile`` them or
    let nginx serve them (X-Accel-Redirect), tasks may hand them to libraries that
    want a path. The paths are only valid while the part or blob exists."""

    @property
    def root(self) -> Path:
        """The directory this store's root maps to."""

    def part_path(self, part: str) -> Path:
        """The file of ``part`` (it may not exist); ValueError for a bad name."""

    def blob_path(self, storage_key: str) -> Path:
        """The file of the blob ``storage_key`` (it may not exist)."""


@runtime_checkable
class Reserving(Protocol):
    """A store whose ``create_part`` reserves space for the whole part (the local store
    preallocates): an idle upload's unwritten ranges can give it back."""

    def release_ranges(self, part: str, ranges: Iterable[tuple[int, int]]) -> bool:
        """Give back the space of each ``(offset, length)`` range of ``part`` (they read as
        zeros until written again, which may then find no space: ENOSPC). False when
        the backend cannot (nothing is freed); FileNotFoundError when there is no part."""


@runtime_checkable
class SweepsUploads(Protocol):
    """A store that starts uploads of its own which a dying process can leave behind (an
    object store's multipart uploads, holding their parts' bytes until aborted)."""

    def abort_uploads(self, *, started_before: float) -> int:
        """Abort this root's unfinished uploads started before ``started_before`` (POSIX
        seconds); how many."""


@runtime_checkable
class Presignable(Protocol):
    """A store that can let clients fetch a blob from it directly (downloads answered
    with a redirect)."""

    def presigned_url(
        self,
        storage_key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A URL that serves the blob (Range included) for ``expires_in`` seconds, with
        ``filename`` as its Content-Disposition and ``content_type`` when given."""
