"""Storing an XEP-0363 slot upload (signed PUT) and finding slot files.

The body streams into a fresh part before any database row exists, and no
database connection is held while it streams (a slow client must not pin a
pooled connection). A short body leaves nothing behind: ``receive`` removes
the part and no row is written.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.errors import Conflict
from hmacfs.files import NewFile, create_file_from_part, deduplicates
from hmacfs.files.one_shot import OneShot, record_one_shot
from hmacfs.models import Blob, File, Pool, UploadTask
from hmacfs.models.status import Protocol, UploadStatus
from hmacfs.storage.copying import Reader
from hmacfs.storage.local import WrittenRange

log = logging.getLogger(__name__)

# Above this size a taken path is refused before the body is read; below it the
# extra database round trips cost more than reading the body would (the
# authoritative check runs before the file is recorded in any case).
EARLY_CHECK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class SlotUpload:
    """A verified upload: ``path`` is the decoded ``slot/name``."""

    path: str
    size: int
    content_type: str

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _exists(session: Session, path: str) -> bool:
    return session.scalar(select(File.id).where(File.path == path)) is not None


def ensure_slot_free(sessions: sessionmaker[Session], path: str) -> None:
    """Raise Conflict (409) when a file already lives at ``path``.

    Uses its own short session so no connection stays checked out while the
    body streams afterwards.
    """
    with sessions() as session:
        if _exists(session, path):
            raise Conflict("a file already exists at this path", code="SLOT_TAKEN")


def store_slot_upload(session: Session, services: Services, upload: SlotUpload, read: Reader) -> File:
    """Stream the body into the store and record the file and its upload task.

    Raises Conflict (409) when the path is taken (also when a concurrent PUT
    to the same path won), IncompleteBody (400) on a short body. Flushes.
    """
    if upload.size > EARLY_CHECK_SIZE:
        ensure_slot_free(services.db.sessions, upload.path)
    part = uuid.uuid4().hex
    written = services.store.receive(part, read, upload.size)
    return record_one_shot_upload(
        session, services, Protocol.XEP0363, part, written,
        name=upload.filename, content_type=upload.content_type, path=upload.path,
    )  # fmt: skip


def record_one_shot_upload(
    session: Session,
    services: Services,
    protocol: Protocol,
    part: str,
    written: WrittenRange,
    *,
    name: str,
    content_type: str,
    account_id: uuid.UUID | None = None,
    path: str | None = None,
) -> File:
    """Record a part received in one request (XEP-0363 PUT, multipart POST) as a file of
    the default pool and a completed upload task; the part is deleted if that fails.
    On PostgreSQL the rows are one statement (``hmacfs.files.one_shot``).

    Raises Conflict (409 SLOT_TAKEN) when ``path`` is taken. Flushes.
    """
    try:
        now = services.clock.now()
        new = NewFile(
            name=name, content_type=content_type, pool_id=DEFAULT_POOL_ID, account_id=account_id, path=path
        )  # fmt: skip
        if services.db.is_postgresql:
            upload = OneShot(
                protocol, part, written.sha256, written.size,
                shared=deduplicates(services.settings.deduplication, written.size),
                now=now, fallback_expiry=expiry(None, services.settings, now),
            )  # fmt: skip
            file = record_one_shot(session, services.store, upload, new)
        else:
            new = replace(new, expired_at=file_expiry(session, services.settings, now))
            file = create_file_from_part(
                session, services.store, services.settings.deduplication,
                part=part, sha256=written.sha256, size=written.size, new=new,
            )  # fmt: skip
            record_completed_task(session, protocol, file, now)
    except BaseException:
        services.store.delete_part(part)
        raise
    count_upload(services, protocol, written.size)
    return file


def file_expiry(session: Session, settings: Settings, now: datetime) -> datetime | None:
    """When a new file of the default pool expires; None = never."""
    pool_ttl = session.scalar(_DEFAULT_POOL_TTL)
    return expiry(pool_ttl, settings, now)


def expiry(pool_ttl: int | None, settings: Settings, now: datetime) -> datetime | None:
    """The pool's TTL (seconds), else ``[xep0363] file_ttl``; None = never."""
    ttl = timedelta(seconds=pool_ttl) if pool_ttl else settings.xep0363.file_ttl
    return now + ttl if ttl > timedelta(0) else None


def record_completed_task(session: Session, protocol: Protocol, file: File, now: datetime) -> None:
    """INSERT the ``upload_tasks`` row of a one-shot upload, so stats and listings see it."""
    values = {
        "id": uuid.uuid4(),
        "task_id": uuid.uuid4().hex,
        "protocol": protocol.value,
        "status": UploadStatus.COMPLETED.value,
        "account_id": file.account_id,
        "pool_id": file.pool_id,
        "file_name": file.name,
        "file_size": file.size,
        "content_type": file.content_type,
        "chunk_size": max(file.size, 1),
        "chunks_count": 1,
        "chunks_uploaded": 1,
        "bytes_received": file.size,
        "upload_offset": file.size,
        "hash": file.sha256,
        "file_id": file.id,
        "expired_at": file.expired_at,
        "last_activity": now,
        "completed_at": now,
    }
    session.execute(_INSERT_UPLOAD_TASK, values)


# Built once: the statements of every one-shot upload (values bound at execution).
_INSERT_UPLOAD_TASK = insert(cast(Table, UploadTask.__table__))
_DEFAULT_POOL_TTL = select(Pool.file_ttl_seconds).where(Pool.id == DEFAULT_POOL_ID)


def count_upload(services: Services, protocol: Protocol, size: int) -> None:
    metrics = services.metrics
    if metrics is not None:
        metrics.uploads_total.labels(protocol=protocol.value).inc()
        metrics.upload_bytes_total.labels(protocol=protocol.value).inc(size)
        metrics.upload_size_bytes.labels(protocol=protocol.value).observe(size)


def find_slot_file(session: Session, path: str, now: datetime) -> tuple[File, Blob] | None:
    """The live file at slot ``path`` and its blob (expired files are already gone for readers)."""
    query = (
        select(File, Blob)
        .join(Blob, Blob.id == File.blob_id)
        .where(File.path == path)
        .where((File.expired_at.is_(None)) | (File.expired_at > now))
    )
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])
