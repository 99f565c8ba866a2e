"""The upload engine's core: creating, finding, locking and cancelling uploads.

Every resumable protocol goes through here. Bytes go to one preallocated part
file per upload (named by the public task id), each chunk written at its
offset and fsynced before its ``upload_chunks`` row is inserted (``chunks``),
so an acknowledged chunk survives a crash; ``completion`` turns a full part
into a file. Functions flush; the request boundary commits. How a request's
transaction spans a streamed body is the boundary's choice too
(``hmacfs.db.BodyTransaction``): on PostgreSQL a first-written chunk's row and
counts commit by themselves, in one statement, before the request goes on.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID, mark_written
from hmacfs.errors import BadRequest, Conflict, Gone, NotFound, PayloadTooLarge
from hmacfs.models import Pool, UploadChunk, UploadTask
from hmacfs.models.status import OPEN_STATUSES, Protocol, UploadStatus
from hmacfs.storage import BlobStore
from hmacfs.uploads.chunking import choose_chunk_size, chunk_count
from hmacfs.uploads.counting import count_ended, count_started
from hmacfs.uploads.policy import check_extension, check_pool_accepts, get_pool
from hmacfs.uploads.quotas import Charge, check_quotas, check_reservation


class ChecksumMismatch(BadRequest):
    """A chunk's declared digest did not match its bytes; the chunk was discarded."""

    code = "CHECKSUM_MISMATCH"


@dataclass(frozen=True)
class NewUpload:
    protocol: Protocol
    file_name: str
    file_size: int | None
    account_id: uuid.UUID | None
    pool_id: uuid.UUID = DEFAULT_POOL_ID
    bundle_id: uuid.UUID | None = None
    content_type: str = "application/octet-stream"
    chunk_size: int | None = None
    sha256: str | None = None
    expired_at: datetime | None = None
    encrypt_password: str | None = None
    metadata: dict[str, Any] | None = None
    concat: str | None = None
    task_id: str | None = None  # chosen by the caller (its A/B arm hangs on it); else a new one
    client_profile_key: str | None = None  # the client_profiles row the sizes came from
    uploader: str | None = None  # who the daily quota charges; None: the account, if any

    @property
    def charged_uploader(self) -> str | None:
        return self.uploader or (None if self.account_id is None else str(self.account_id))


def new_task_id() -> str:
    """A fresh public upload id (URL-safe, 32 characters)."""
    return secrets.token_urlsafe(24)


def create_upload(session: Session, services: Services, new: NewUpload) -> UploadTask:
    """Validate against the pool, limits and quotas, then add the task and preallocate its part.

    The declared size is reserved: on disk (the part is preallocated; 507 when it cannot
    be) and against the quotas (``hmacfs.uploads.quotas``: 403 QUOTA_EXCEEDED or
    RESERVATION_LIMIT, 507 STORAGE_QUOTA_EXCEEDED), checked under their locks until commit.
    """
    settings = services.settings.uploads
    pool = get_pool(session, new.pool_id)
    check_pool_accepts(pool, settings, new.file_size, new.content_type)
    check_extension(new.file_name, settings.allowed_extensions)
    now = services.clock.now()
    if new.file_size:
        charge = Charge(new.file_size, new.account_id, new.charged_uploader)
        check_quotas(session, services.settings, charge, now)
        check_reservation(session, services.settings, new.account_id, new.file_size)
    chunk_size = choose_chunk_size(
        new.chunk_size, settings.chunk_size, settings.min_chunk_size, settings.max_chunk_size
    )
    if new.expired_at is not None and new.expired_at <= now:
        raise BadRequest(
            "expiredAt must be in the future", code="VALIDATION_FAILED", details={"field": "expiredAt"}
        )
    task = UploadTask(
        id=uuid.uuid4(),
        task_id=new.task_id or new_task_id(),
        protocol=new.protocol.value,
        status=UploadStatus.PENDING.value,
        account_id=new.account_id,
        pool_id=pool.id,
        bundle_id=new.bundle_id,
        file_name=new.file_name,
        file_size=new.file_size,
        size_deferred=new.file_size is None,
        content_type=new.content_type,
        chunk_size=chunk_size,
        chunks_count=None if new.file_size is None else chunk_count(new.file_size, chunk_size),
        hash=new.sha256.lower() if new.sha256 else None,
        upload_metadata=new.metadata,
        expired_at=new.expired_at or _pool_expiry(pool, now),
        concat=new.concat,
        client_profile_key=new.client_profile_key,
        uploader=new.charged_uploader,
        storage_root=pool.storage_path,
        last_activity=now,
        created_at=now,
        updated_at=now,
    )
    if new.encrypt_password:
        task.encrypt_requested = True
        task.encrypt_password_sealed = services.sealer.seal(new.encrypt_password, context=str(task.id))
    session.add(task)
    session.flush()
    mark_written(session)
    # Direct: the part becomes a file's blob (a tus partial upload's is read by its final one).
    # tus appends in order and hashes each PATCH as it streams; the others hash by reading back.
    direct, in_order = new.concat is None, new.protocol == Protocol.TUS
    part_store(services.store, task).create_part(
        task.task_id, new.file_size, direct=direct, hashed_on_arrival=in_order
    )
    count_started(session, services.metrics, task.protocol)
    return task


def part_store(store: BlobStore, task: UploadTask) -> BlobStore:
    """``store`` over the root that holds ``task``'s part: its pool's storage path when the
    upload began (recorded on the row, so changing the pool later strands nothing)."""
    return store.at(task.storage_root)


def _pool_expiry(pool: Pool, now: datetime) -> datetime | None:
    return None if pool.file_ttl_seconds is None else now + timedelta(seconds=pool.file_ttl_seconds)


def get_upload(
    session: Session, task_id: str, account_id: uuid.UUID | None, protocol: Protocol | None = None
) -> UploadTask:
    """The task, if ``account_id`` may see it; another account's task is 404 (no existence leak).

    A task without an owner (anonymous tus, X-Signature sessions) is reached by
    anyone holding its unguessable id.
    """
    task = session.scalars(select(UploadTask).where(UploadTask.task_id == task_id)).first()
    return check_visible(task, task_id, account_id, protocol)


def check_visible(
    task: UploadTask | None, task_id: str, account_id: uuid.UUID | None, protocol: Protocol | None = None
) -> UploadTask:
    """``task`` (the upload ``task_id`` as read) if ``account_id`` may see it; 404 otherwise."""
    if (
        task is None
        or task.deleted_at is not None
        or (task.account_id is not None and task.account_id != account_id)
        or (protocol is not None and task.protocol != protocol.value)
    ):
        raise NotFound("no such upload", code="UPLOAD_NOT_FOUND", details={"taskId": task_id})
    return task


def check_open(task: UploadTask) -> None:
    """Raise 409 for a completed upload and 410 for an expired, cancelled or failed one."""
    if task.status in OPEN_STATUSES:
        return
    if task.status == UploadStatus.COMPLETED:
        raise Conflict("upload already completed", code="UPLOAD_COMPLETED")
    raise Gone(f"upload is {task.status.lower()}", code=f"UPLOAD_{task.status.upper()}")


def lock_task(session: Session, task: UploadTask) -> UploadTask:
    """Re-read the task with its row locked until commit (PostgreSQL; SQLite has one writer)."""
    fresh = session.get(UploadTask, task.id, with_for_update=True, populate_existing=True)
    assert fresh is not None
    return fresh


def uploaded_indexes(session: Session, task: UploadTask) -> list[int]:
    query = (
        select(UploadChunk.chunk_index)
        .where(UploadChunk.upload_id == task.id)
        .order_by(UploadChunk.chunk_index)
    )
    return list(session.scalars(query))


def cancel_upload(session: Session, services: Services, task: UploadTask) -> None:
    """Cancel an unfinished upload and delete its bytes (a finished one is left alone: 409)."""
    check_open(task)
    task.status = UploadStatus.CANCELLED.value
    task.last_activity = services.clock.now()
    session.flush()
    count_ended(session, services.metrics, task.protocol, "cancelled")
    part_store(services.store, task).delete_part(task.task_id)


def check_room(task: UploadTask, offset: int, length: int, limit: int) -> None:
    """An offset write must stay within the declared length (or the limit while deferred)."""
    end = offset + length
    bound = task.file_size if task.file_size is not None else limit
    if end > bound:
        raise PayloadTooLarge(
            f"write would end at byte {end}, past the upload length {bound}",
            code="UPLOAD_LENGTH_EXCEEDED",
            details={"limit": bound},
        )
