"""The upload engine: every resumable protocol creates, fills and completes uploads here.

Bytes go to one preallocated part file per upload (named by the public task
id), each chunk written at its offset and fsynced before its ``upload_chunks``
row is inserted, so an acknowledged chunk survives a crash. Functions flush;
the request boundary commits.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.errors import BadRequest, Conflict, Gone, HashMismatch, NotFound, PayloadTooLarge
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.models import File, Pool, UploadChunk, UploadTask
from hmacfs.models.status import OPEN_STATUSES, Protocol, UploadStatus
from hmacfs.storage.blocking import offload
from hmacfs.uploads.chunking import check_chunk_length, choose_chunk_size, chunk_bounds, chunk_count
from hmacfs.uploads.notify import publish_completed, publish_progress
from hmacfs.uploads.policy import check_pool_accepts, check_quota, get_pool
from hmacfs.uploads.tus_headers import ExpectedDigest

Reader = Callable[[int], bytes]


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


@dataclass(frozen=True)
class ChunkResult:
    task: UploadTask
    stored: bool  # False when an identical chunk was already there
    file: File | None = None  # the file, when this chunk completed the upload


def create_upload(session: Session, services: Services, new: NewUpload) -> UploadTask:
    """Validate against the pool, limits and quota, then add the task and preallocate its part."""
    settings = services.settings.uploads
    pool = get_pool(session, new.pool_id)
    check_pool_accepts(pool, settings, new.file_size, new.content_type)
    if new.account_id is not None and new.file_size:
        check_quota(session, new.account_id, new.file_size, settings.default_quota)
    chunk_size = choose_chunk_size(
        new.chunk_size, settings.chunk_size, settings.min_chunk_size, settings.max_chunk_size
    )
    now = services.clock.now()
    task = UploadTask(
        id=uuid.uuid4(),
        task_id=secrets.token_urlsafe(24),
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
        last_activity=now,
        created_at=now,
        updated_at=now,
    )
    if new.encrypt_password:
        task.encrypt_requested = True
        task.encrypt_password_sealed = services.sealer.seal(new.encrypt_password, context=str(task.id))
    session.add(task)
    session.flush()
    session.info[_WROTE] = True
    services.store.create_part(task.task_id, new.file_size)
    return task


_WROTE = "hmacfs.uploads.wrote"


def release_connection(session: Session) -> None:
    """Call before streaming a body when this request has only read so far.

    Ending the read-only transaction gives its pooled connection back while
    the bytes arrive, so slow clients do not exhaust the pool, and on SQLite
    the writes afterwards start from a fresh snapshot: a read transaction
    cannot become a write one once another connection has committed
    (SQLITE_BUSY_SNAPSHOT). With no I/O between the first write and the
    commit, no other greenlet runs while a request holds SQLite's write lock.
    Loaded objects are expired and reload on next use. Skipped once the
    request has written (tus creation-with-upload), whose transaction must stay.
    """
    if not session.info.get(_WROTE):
        session.rollback()


def _hash_part(services: Services, part: str, size: int) -> str:
    """Stream the part through SHA-256; in the thread pool on PostgreSQL so other requests run.

    On SQLite the hash may run while this request holds the write lock, so it
    must not yield to other greenlets, which would block on that lock.
    """
    if services.db.is_postgresql:
        return offload(services.store.hash_part, part, size)
    return services.store.hash_part(part, size)


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


def dialect_insert(session: Session) -> type[postgresql.Insert] | type[sqlite.Insert]:
    return postgresql.Insert if session.get_bind().dialect.name == "postgresql" else sqlite.Insert


def lock_task(session: Session, task: UploadTask) -> UploadTask:
    """Re-read the task with its row locked until commit (PostgreSQL; SQLite has one writer)."""
    fresh = session.get(UploadTask, task.id, with_for_update=True, populate_existing=True)
    assert fresh is not None
    return fresh


def write_chunk(
    session: Session,
    services: Services,
    task: UploadTask,
    index: int,
    read: Reader,
    *,
    declared_length: int | None,
    digest: ExpectedDigest | None = None,
    auto_complete: bool = False,
) -> ChunkResult:
    """Store chunk ``index`` (exactly its slot's length) and record it once.

    A repeated identical chunk is not recorded twice (``stored`` False); a
    repeated chunk with other bytes replaces the old one after it has been
    received in full, so a failed retry never damages an acknowledged chunk.
    Raises ChecksumMismatch (nothing recorded) and IncompleteBody (400).
    """
    check_open(task)
    assert task.file_size is not None
    offset, length = chunk_bounds(index, task.file_size, task.chunk_size)
    check_chunk_length(declared_length, length)
    existing = session.get(UploadChunk, (task.id, index))
    if existing is not None:
        return _rewrite_chunk(session, services, task, existing, read, digest=digest)
    upload_id, part = task.id, task.task_id
    release_connection(session)
    sha256 = write_checked(services, part, offset, read, length, digest=digest)
    now = services.clock.now()
    row = {"upload_id": upload_id, "chunk_index": index, "offset": offset, "size": length, "sha256": sha256}
    inserted = record_chunk(session, {**row, "received_at": now})
    if not inserted:
        return ChunkResult(task, stored=False)
    _count_chunk(session, task, length, now)
    publish_progress(session, services.settings.events, task, now)
    done = auto_complete and task.chunks_uploaded >= (task.chunks_count or 0)
    return ChunkResult(task, stored=True, file=complete_upload(session, services, task) if done else None)


def write_checked(
    services: Services, part: str, offset: int, read: Reader, length: int, *, digest: ExpectedDigest | None
) -> str:
    """Write and fsync ``length`` bytes at ``offset``; verify the declared digest and the end of the body."""
    hasher = digest.new_hasher() if digest is not None and digest.algorithm != "sha256" else None

    def reading(size: int) -> bytes:
        data = read(size)
        if hasher is not None:
            hasher.update(data)
        return data

    written = services.store.write_part(part, offset, reading, length)
    if read(1):
        raise BadRequest(
            f"body is longer than {length} bytes", code="BODY_TOO_LONG", details={"expected": length}
        )
    if digest is not None:
        actual = hasher.digest() if hasher is not None else bytes.fromhex(written.sha256)
        if not hmac.compare_digest(actual, digest.digest):
            raise ChecksumMismatch(
                f"{digest.header} does not match the body; the chunk was discarded",
                details={"field": digest.header, "algorithm": digest.algorithm},
            )
    return written.sha256


def record_chunk(session: Session, row: dict[str, Any]) -> bool:
    """Insert an ``upload_chunks`` row; False when a concurrent request recorded that chunk first."""
    statement = (
        dialect_insert(session)(UploadChunk)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["upload_id", "chunk_index"])
    )
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount == 1


def _count_chunk(session: Session, task: UploadTask, size: int, now: datetime) -> None:
    """Add one chunk to the counters in SQL (no lost update between parallel chunks)."""
    session.execute(
        update(UploadTask)
        .where(UploadTask.id == task.id)
        .values(
            chunks_uploaded=UploadTask.chunks_uploaded + 1,
            bytes_received=UploadTask.bytes_received + size,
            status=UploadStatus.IN_PROGRESS.value,
            last_activity=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(task)


def _rewrite_chunk(
    session: Session,
    services: Services,
    task: UploadTask,
    existing: UploadChunk,
    read: Reader,
    *,
    digest: ExpectedDigest | None,
) -> ChunkResult:
    """A chunk sent again: receive it aside, then keep it only if its bytes differ."""
    store = services.store
    key = {"upload_id": existing.upload_id, "chunk_index": existing.chunk_index}
    part, offset, size, old_sha256 = task.task_id, existing.offset, existing.size, existing.sha256
    scratch = f"{part}-r{existing.chunk_index}"
    release_connection(session)
    store.create_part(scratch, size)
    try:
        sha256 = write_checked(services, scratch, 0, read, size, digest=digest)
        if sha256 == old_sha256:
            return ChunkResult(task, stored=False)
        blocks = store.read_range(store.part_path(scratch), 0, size)
        store.write_part(part, offset, blocks_reader(iter(blocks)), size)
    finally:
        store.delete_part(scratch)
    now = services.clock.now()
    session.execute(
        update(UploadChunk)
        .where(UploadChunk.upload_id == key["upload_id"], UploadChunk.chunk_index == key["chunk_index"])
        .values(sha256=sha256, received_at=now)
    )
    task.last_activity = now
    session.flush()
    return ChunkResult(task, stored=True)


def blocks_reader(blocks: Any) -> Reader:
    pending = bytearray()

    def read(size: int) -> bytes:
        while len(pending) < size:
            block = next(blocks, b"")
            if not block:
                break
            pending.extend(block)
        data = bytes(pending[:size])
        del pending[:size]
        return data

    return read


def uploaded_indexes(session: Session, task: UploadTask) -> list[int]:
    query = (
        select(UploadChunk.chunk_index)
        .where(UploadChunk.upload_id == task.id)
        .order_by(UploadChunk.chunk_index)
    )
    return list(session.scalars(query))


def received_totals(session: Session, task: UploadTask) -> tuple[int, int]:
    """(chunks, bytes) recorded for ``task``, recomputed from ``upload_chunks``."""
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(UploadChunk.size), 0)).where(
            UploadChunk.upload_id == task.id
        )
    ).one()
    return int(row[0]), int(row[1])


def _check_received(session: Session, task: UploadTask) -> int:
    """The file size once every byte is there; raise 409 UPLOAD_INCOMPLETE otherwise."""
    if task.size_deferred or task.file_size is None:
        raise Conflict("the upload length is not known yet", code="UPLOAD_INCOMPLETE")
    if task.protocol == Protocol.TUS.value:
        received, expected = task.upload_offset, task.file_size
        complete = received == expected
    else:
        chunks, received = received_totals(session, task)
        expected = task.file_size
        complete = chunks == task.chunks_count and received == expected
    if not complete:
        raise Conflict(
            f"{received} of {expected} bytes received",
            code="UPLOAD_INCOMPLETE",
            details={"received": received, "expected": expected},
        )
    return expected


def complete_upload(session: Session, services: Services, task: UploadTask) -> File:
    """Verify and turn a fully received upload into a file; completing twice returns the same file.

    Raises 409 UPLOAD_INCOMPLETE, 403 QUOTA_EXCEEDED, or 422 HASH_MISMATCH
    (the task stays open: the client re-sends the wrong chunks and completes again).
    """
    if task.file_id is not None:
        return _file_of(session, task)
    check_open(task)
    size = _check_received(session, task)
    check_quota(session, task.account_id, size, services.settings.uploads.default_quota, exclude=task.id)
    sha256 = _hash_part(services, task.task_id, size)
    if task.hash and not hmac.compare_digest(sha256, task.hash):
        raise HashMismatch(
            "the uploaded bytes do not match the declared SHA-256",
            details={"expected": task.hash, "actual": sha256},
        )
    task = lock_task(session, task)
    if task.file_id is not None:  # a concurrent completion won
        return _file_of(session, task)
    file = create_file_from_part(
        session, services.store, services.settings.deduplication, part=task.task_id, sha256=sha256, size=size,
        new=NewFile(
            name=task.file_name, content_type=task.content_type, pool_id=task.pool_id,
            account_id=task.account_id, bundle_id=task.bundle_id, expired_at=task.expired_at,
        ),
    )  # fmt: skip
    _mark_completed(session, services, task, file)
    return file


def _file_of(session: Session, task: UploadTask) -> File:
    file = session.get(File, task.file_id)
    if file is None:
        raise Gone("the file of this upload was deleted", code="FILE_GONE")
    return file


def _mark_completed(session: Session, services: Services, task: UploadTask, file: File) -> None:
    now = services.clock.now()
    task.status = UploadStatus.COMPLETED.value
    task.file_id = file.id
    task.completed_at = task.last_activity = now
    task.progress_published, task.progress_published_at = 100.0, now
    session.flush()
    hand_over_encryption(session, services, task, file)
    publish_completed(session, task, file)


def hand_over_encryption(session: Session, services: Services, task: UploadTask, file: File) -> bool:
    """The single place post-completion processing starts; True when encryption was asked for.

    The sealed password stays on the task row (never in clear) for the
    background FileEncrypt task, which erases it once used.
    """
    return task.encrypt_requested and task.encrypt_password_sealed is not None


def finish_partial(session: Session, services: Services, task: UploadTask) -> None:
    """A tus partial upload is complete once its bytes are in; it becomes no file by itself."""
    now = services.clock.now()
    task.status = UploadStatus.COMPLETED.value
    task.completed_at = task.last_activity = now
    session.flush()


def cancel_upload(session: Session, services: Services, task: UploadTask) -> None:
    """Cancel an unfinished upload and delete its bytes (a finished one is left alone: 409)."""
    check_open(task)
    task.status = UploadStatus.CANCELLED.value
    task.last_activity = services.clock.now()
    session.flush()
    services.store.delete_part(task.task_id)


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
