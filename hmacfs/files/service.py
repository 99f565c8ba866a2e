"""Creating files from finished parts (with deduplication), deleting and expiring them.

Blob rows are reference counted. The row is locked (inserted or updated) before
its bytes are moved or removed, so an upload reusing a blob and the collector
removing unreferenced blobs never interleave.

Storage roots: a part is written under its pool's storage path (``root``; None
is the store's own root) and a new blob is made there by a rename. Each blob
row records its root (``blobs.storage_root``, NULL = the store root) and every
reader resolves it with ``blob_store``. Deduplication stays global, one
shared blob per content hash: content already stored under another root is
referenced where it is and the new part is dropped (no copy), so a pool's root
holds the content first stored through that pool, while every file of the pool
still reads its bytes through its blob row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import on_commit
from hmacfs.errors import Conflict
from hmacfs.files import sql
from hmacfs.models import Blob, File, Pool
from hmacfs.storage import BlobStore, PathBacked


@dataclass(frozen=True)
class NewFile:
    """What a finished upload knows about the file it becomes."""

    name: str
    content_type: str
    pool_id: uuid.UUID
    account_id: uuid.UUID | None = None
    bundle_id: uuid.UUID | None = None
    path: str | None = None
    expired_at: datetime | None = None


def blob_store(store: BlobStore, storage_root: str | None) -> BlobStore:
    """The store over the root a ``storage_root`` column value names (NULL: the store's
    own root): where a blob's bytes are (a pool's storage path, or where a
    StorageMigration or FileMove put them)."""
    return store.at(storage_root)


def blob_location(store: BlobStore, blob: Blob) -> Path:
    """The file of a blob's bytes, for a path-backed store (the doctor, tests); TypeError
    for any other."""
    home = blob_store(store, blob.storage_root)
    if not isinstance(home, PathBacked):
        raise TypeError(f"{type(home).__name__} keeps no blob in a file")
    return home.blob_path(blob.storage_key)


def same_root(store: BlobStore, first: str | None, second: str | None) -> bool:
    """Whether two ``storage_root`` values name the same root of ``store``."""
    return first == second or blob_store(store, first).location == blob_store(store, second).location


def pool_stores(session: Session, store: BlobStore) -> list[BlobStore]:
    """``store`` over each distinct storage path a pool has of its own."""
    roots = session.scalars(select(Pool.storage_path).where(Pool.storage_path.is_not(None)).distinct())
    return [store.at(root) for root in roots]


def deduplicates(settings: DeduplicationSettings, size: int) -> bool:
    return settings.enabled and size <= settings.maxsize


class PathTaken(Conflict):
    """Another file already lives at the requested slot path."""

    code = "SLOT_TAKEN"


def create_file_from_part(
    session: Session,
    store: BlobStore,
    dedup: DeduplicationSettings,
    *,
    part: str,
    sha256: str,
    size: int,
    new: NewFile,
    root: str | None = None,
) -> File:
    """Turn a fully written, fsynced part (under ``root``, None = the store root) into a blob
    there and a ``files`` row.

    With deduplication the bytes are kept once per content hash and the part
    is dropped when that content is already stored (under any root). The rows
    are written before the part is moved, so a refused row (PathTaken:
    ``new.path`` is taken, also by a concurrent upload that commits first)
    leaves the part where it was for the caller to delete. Flushes; the
    caller commits.
    """
    shared = deduplicates(dedup, size)
    blob = _reference_blob(session, store, sha256=sha256, size=size, part=part, shared=shared, root=root)
    file = _insert_file(session, blob.id, sha256=sha256, size=size, new=new)
    place_part(session, store, blob, part=part, sha256=sha256, size=size, root=root)
    return file


@dataclass(frozen=True)
class BlobReference:
    """A blob row referenced by a new file: where its bytes are (or go)."""

    id: uuid.UUID
    storage_key: str
    storage_root: str | None
    shared: bool


def _reference_blob(
    session: Session,
    store: BlobStore,
    *,
    sha256: str,
    size: int,
    part: str,
    shared: bool,
    root: str | None,
) -> BlobReference:
    """Take one reference to the blob of this content (inserted under ``root`` when new) in
    one statement. The row stays locked until commit: the collector, a migration switching
    its root and other uploads of this content wait."""
    statements = sql.statements(session)
    key = store.at(root).promoted_key(part, sha256, shared=shared)
    values = {
        "id": uuid.uuid4(),
        "sha256": sha256,
        "size": size,
        "storage_key": key,
        "storage_root": root,
        "ref_count": 1,
    }
    if shared:
        row = session.execute(statements.reference_shared_blob, values).one()
    else:
        row = session.execute(statements.insert_blob, {**values, "shared": False}).one()
    return BlobReference(row.id, row.storage_key, row.storage_root, shared)


def place_part(
    session: Session,
    store: BlobStore,
    blob: BlobReference,
    *,
    part: str,
    sha256: str,
    size: int,
    root: str | None,
    once: bool = False,
) -> None:
    """Make the part the blob's bytes (linked under ``root``), unless the blob's bytes are
    already where its row says (a dedup hit, possibly under another root). The part
    itself goes once ``session`` commits: until then a failed commit leaves it, and
    the upload, as they were (a retried completion finds everything in place).
    ``once``: a one-request upload, whose part is removed on rollback too (nobody
    retries it), so the store drops it as it promotes it."""
    parts = store.at(root)
    if same_root(store, blob.storage_root, root):
        parts.promote_part(part, sha256, size, shared=blob.shared, drop_part=once, key=blob.storage_key)
        if once:
            return
    elif not blob_store(store, blob.storage_root).has_blob(blob.storage_key, size):
        # The row's bytes were missing where it pointed: they are now under ``root``.
        stored = parts.promote_part(part, sha256, size, shared=blob.shared)
        values = {"storage_root": root, "storage_key": stored.storage_key}
        session.execute(update(Blob).where(Blob.id == blob.id).values(**values))
    on_commit(session, partial(parts.delete_part, part))


def _insert_file(session: Session, blob_id: uuid.UUID, *, sha256: str, size: int, new: NewFile) -> File:
    """INSERT the ``files`` row and return it as a persistent ORM object (one round trip).

    A taken slot path waits for the other writer's transaction and then
    raises PathTaken, so the part is never promoted for a refused upload.
    """
    values = {
        "id": uuid.uuid4(),
        "blob_id": blob_id,
        "sha256": sha256,
        "size": size,
        "name": new.name,
        "content_type": new.content_type,
        "pool_id": new.pool_id,
        "account_id": new.account_id,
        "bundle_id": new.bundle_id,
        "path": new.path,
        "expired_at": new.expired_at,
    }
    file: File | None = session.scalars(sql.statements(session).insert_file, values).first()
    if file is None:
        raise PathTaken("a file already exists at this path")
    return file


def find_duplicate(session: Session, sha256: str, account_id: uuid.UUID | None, now: datetime) -> File | None:
    """A live file with this content the account may see: its own, or in a public pool.

    Never another account's private file.
    """
    visible = Pool.public.is_(True) if account_id is None else (File.account_id == account_id) | Pool.public
    query = (
        select(File)
        .join(Pool, Pool.id == File.pool_id)
        .where(File.sha256 == sha256, visible)
        .where((File.expired_at.is_(None)) | (File.expired_at > now))
        .order_by(File.created_at)
        .limit(1)
    )
    return session.scalars(query).first()


def delete_file(session: Session, file: File) -> None:
    """Delete the row and drop its blob reference; the bytes go when the collector runs."""
    session.execute(update(Blob).where(Blob.id == file.blob_id).values(ref_count=Blob.ref_count - 1))
    session.delete(file)
    session.flush()


def expire_files(session: Session, now: datetime, limit: int = 500) -> int:
    """Delete up to ``limit`` files whose ``expired_at`` has passed; return how many."""
    expired = session.scalars(
        select(File).where(File.expired_at.is_not(None), File.expired_at <= now).limit(limit)
    ).all()
    for file in expired:
        delete_file(session, file)
    return len(expired)


def collect_blobs(session: Session, store: BlobStore, limit: int = 500) -> int:
    """Remove blobs no file references: bytes first, then the row (row locked throughout)."""
    orphans = sql.orphan_blobs(session, limit)
    for blob in orphans:
        blob_store(store, blob.storage_root).delete_blob(blob.storage_key)
        session.delete(blob)
    session.flush()
    return len(orphans)


def replace_content(
    session: Session,
    store: BlobStore,
    dedup: DeduplicationSettings,
    file: File,
    *,
    part: str,
    sha256: str,
    size: int,
    root: str | None = None,
) -> None:
    """Point ``file`` at new bytes (a finished part under ``root``), dropping its reference
    to the old blob.

    Used by tasks that rewrite a file in place (encrypt, decrypt). The old
    bytes go when the collector runs. Flushes; the caller commits.
    """
    shared = deduplicates(dedup, size)
    blob = _reference_blob(session, store, sha256=sha256, size=size, part=part, shared=shared, root=root)
    session.execute(update(Blob).where(Blob.id == file.blob_id).values(ref_count=Blob.ref_count - 1))
    file.blob_id = blob.id
    session.flush()
    place_part(session, store, blob, part=part, sha256=sha256, size=size, root=root)


def adopt_copy(session: Session, file: File, *, storage_key: str, storage_root: str | None) -> Blob:
    """Point ``file`` at a private blob holding a verified copy of its bytes (``storage_key``
    under ``storage_root``), dropping its reference to the blob it shared with other files.

    Used when one of several files sharing a blob moves to another storage root:
    the others keep the old bytes, which the collector removes once nothing
    references them. Flushes; the caller commits.
    """
    old = session.get(Blob, file.blob_id)
    if old is None:
        raise LookupError(f"file {file.id} has no blob")
    # The blob's own hash and size: an encrypted file's differ from the file's (plaintext) ones.
    blob = Blob(
        sha256=old.sha256,
        size=old.size,
        shared=False,
        storage_key=storage_key,
        storage_root=storage_root,
        ref_count=1,
    )
    session.add(blob)
    session.flush()
    session.execute(update(Blob).where(Blob.id == old.id).values(ref_count=Blob.ref_count - 1))
    file.blob_id = blob.id
    session.flush()
    return blob
