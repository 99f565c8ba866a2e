"""Creating files from finished parts (with deduplication), deleting and expiring them.

Blob rows are reference counted. The row is locked (inserted or updated) before
its bytes are moved or removed, so an upload reusing a blob and the collector
removing unreferenced blobs never interleave.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import dialect_insert
from hmacfs.models import Blob, File, Pool
from hmacfs.storage import LocalBlobStore


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


def blob_location(store: LocalBlobStore, blob: Blob) -> Path:
    """Where a blob's bytes are: under its own ``storage_root`` once a StorageMigration
    moved it, else under the store's root."""
    root = Path(blob.storage_root) if blob.storage_root else store.root
    return root / blob.storage_key


def deduplicates(settings: DeduplicationSettings, size: int) -> bool:
    return settings.enabled and size <= settings.maxsize


def create_file_from_part(
    session: Session,
    store: LocalBlobStore,
    dedup: DeduplicationSettings,
    *,
    part: str,
    sha256: str,
    size: int,
    new: NewFile,
) -> File:
    """Turn a fully written, fsynced part into a blob and a ``files`` row.

    With deduplication the bytes are kept once per content hash and the part
    is dropped when that content is already stored. Flushes; the caller commits.
    """
    file = File(
        blob_id=_reference_blob(session, store, dedup, part=part, sha256=sha256, size=size),
        sha256=sha256,
        size=size,
        name=new.name,
        content_type=new.content_type,
        pool_id=new.pool_id,
        account_id=new.account_id,
        bundle_id=new.bundle_id,
        path=new.path,
        expired_at=new.expired_at,
    )
    session.add(file)
    session.flush()
    return file


def _reference_blob(
    session: Session,
    store: LocalBlobStore,
    dedup: DeduplicationSettings,
    *,
    part: str,
    sha256: str,
    size: int,
) -> uuid.UUID:
    """Move a finished part into a blob (a shared one when deduplicating) and take one
    reference to it; returns the blob's id."""
    if deduplicates(dedup, size):
        return _shared_blob(session, store, part, sha256, size)
    stored = store.promote_part(part, sha256, size, shared=False)
    blob = Blob(sha256=sha256, size=size, shared=False, storage_key=stored.storage_key, ref_count=1)
    session.add(blob)
    session.flush()
    return blob.id


def _shared_blob(session: Session, store: LocalBlobStore, part: str, sha256: str, size: int) -> uuid.UUID:
    key = store.blob_key(sha256)
    statement = (
        dialect_insert(session)(Blob)
        .values(id=uuid.uuid4(), sha256=sha256, size=size, shared=True, storage_key=key, ref_count=0)
        .on_conflict_do_nothing(index_elements=["sha256"], index_where=text("shared"))
    )
    session.execute(statement)
    # Taking the reference locks the row until commit: the collector waits.
    reference = session.execute(
        update(Blob)
        .where(Blob.sha256 == sha256, Blob.shared)
        .values(ref_count=Blob.ref_count + 1)
        .returning(Blob.id)
    ).scalar_one()
    store.promote_part(part, sha256, size, shared=True)
    blob_id: uuid.UUID = reference
    return blob_id


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


def collect_blobs(session: Session, store: LocalBlobStore, limit: int = 500) -> int:
    """Remove blobs no file references: bytes first, then the row (row locked throughout)."""
    query = select(Blob).where(Blob.ref_count <= 0).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    orphans = session.scalars(query).all()
    for blob in orphans:
        blob_location(store, blob).unlink(missing_ok=True)
        session.delete(blob)
    session.flush()
    return len(orphans)


def replace_content(
    session: Session,
    store: LocalBlobStore,
    dedup: DeduplicationSettings,
    file: File,
    *,
    part: str,
    sha256: str,
    size: int,
) -> None:
    """Point ``file`` at new bytes (a finished part), dropping its reference to the old blob.

    Used by tasks that rewrite a file in place (encrypt, decrypt). The old
    bytes go when the collector runs. Flushes; the caller commits.
    """
    new_blob = _reference_blob(session, store, dedup, part=part, sha256=sha256, size=size)
    session.execute(update(Blob).where(Blob.id == file.blob_id).values(ref_count=Blob.ref_count - 1))
    file.blob_id = new_blob
    session.flush()
