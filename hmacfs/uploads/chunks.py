"""Writing numbered chunks (chunked and Drive protocols): idempotent, safe in parallel."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table, bindparam, inspect, update
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import built_once, dialect_insert
from hmacfs.errors import BadRequest
from hmacfs.models import File, UploadChunk, UploadTask
from hmacfs.models.status import OPEN_STATUSES, UploadStatus
from hmacfs.storage import LocalBlobStore
from hmacfs.storage.copying import Hasher, Reader
from hmacfs.storage.local import blocks_reader
from hmacfs.uploads.chunking import check_chunk_length, chunk_bounds
from hmacfs.uploads.completion import complete_upload
from hmacfs.uploads.notify import publish_progress
from hmacfs.uploads.service import ChecksumMismatch, check_open, part_store, release_connection
from hmacfs.uploads.tus_headers import ExpectedDigest


@dataclass(frozen=True)
class ChunkResult:
    task: UploadTask
    stored: bool  # False when an identical chunk was already there
    file: File | None = None  # the file, when this chunk completed the upload


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
    upload_id, part, store = task.id, task.task_id, part_store(services, task)
    release_connection(session)
    sha256 = write_checked(store, part, offset, read, length, digest=digest)
    now = services.clock.now()
    row = {"upload_id": upload_id, "chunk_index": index, "offset": offset, "size": length, "sha256": sha256}
    inserted = record_chunk(session, {**row, "received_at": now})
    if not inserted:
        return ChunkResult(task, stored=False)
    _count_chunk(session, services, task, length, now)
    publish_progress(session, services.settings.events, task, now)
    done = auto_complete and task.chunks_uploaded >= (task.chunks_count or 0)
    return ChunkResult(task, stored=True, file=complete_upload(session, services, task) if done else None)


def write_checked(
    store: LocalBlobStore,
    part: str,
    offset: int,
    read: Reader,
    length: int,
    *,
    digest: ExpectedDigest | None,
    also: Hasher | None = None,
) -> str:
    """Write and fsync ``length`` bytes at ``offset``; verify the declared digest and the end of the body."""
    hasher = digest.new_hasher() if digest is not None and digest.algorithm != "sha256" else None

    def reading(size: int) -> bytes:
        data = read(size)
        if hasher is not None:
            hasher.update(data)
        return data

    written = store.write_part(part, offset, read if hasher is None else reading, length, also=also)
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
    statement = built_once(_RECORD_CHUNK, session, _build_record_chunk)
    result = cast(CursorResult[Any], session.execute(statement, row))
    return result.rowcount == 1


def _build_record_chunk(session: Session) -> Executable:
    table = cast(Table, UploadChunk.__table__)
    insert = dialect_insert(session)(table)
    return insert.on_conflict_do_nothing(index_elements=[table.c.upload_id, table.c.chunk_index])


_RECORD_CHUNK: dict[str, Executable] = {}


def check_still_open(session: Session, services: Services, task: UploadTask, part: str) -> None:
    """After a body has streamed in: the upload may have been completed, cancelled or
    expired meanwhile. Then its part is gone (or became a blob) and the write just
    re-created a stray file at the part path: remove it and refuse (409/410)."""
    session.refresh(task)
    if task.status not in OPEN_STATUSES:
        part_store(services, task).delete_part(part)
        check_open(task)


def _count_chunk(session: Session, services: Services, task: UploadTask, size: int, now: datetime) -> None:
    """Add one chunk to the counters in SQL (no lost update between parallel chunks) and
    reload the task from the same statement. The task's id comes from its identity key:
    reading ``task.id`` after the connection was given back would reload the whole row.

    Only while the upload is open: if it was completed, cancelled or expired
    while this chunk streamed in, the request fails (its chunk row rolls back)
    and the stray part file the write re-created is removed.
    """
    identity = inspect(task).identity
    assert identity is not None  # a persistent task
    values = {"upload": identity[0], "added": size, "at": now}
    if session.scalars(_COUNT_CHUNK, values).first() is None:
        check_still_open(session, services, task, task.task_id)


# Built once (values bound at execution).
_COUNT_CHUNK = (
    update(UploadTask)
    .where(UploadTask.id == bindparam("upload"), UploadTask.status.in_([s.value for s in OPEN_STATUSES]))
    .values(
        chunks_uploaded=UploadTask.chunks_uploaded + 1,
        bytes_received=UploadTask.bytes_received + bindparam("added"),
        status=UploadStatus.IN_PROGRESS.value,
        last_activity=bindparam("at"),
    )
    .returning(UploadTask)
    .execution_options(synchronize_session=False, populate_existing=True)
)


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
    store = part_store(services, task)
    key = {"upload_id": existing.upload_id, "chunk_index": existing.chunk_index}
    part, offset, size, old_sha256 = task.task_id, existing.offset, existing.size, existing.sha256
    scratch = f"{part}-r{existing.chunk_index}"
    release_connection(session)
    store.create_part(scratch, size)
    try:
        sha256 = write_checked(store, scratch, 0, read, size, digest=digest)
        if sha256 == old_sha256:
            return ChunkResult(task, stored=False)
        blocks = store.read_range(store.part_path(scratch), 0, size)
        store.write_part(part, offset, blocks_reader(iter(blocks)), size)
    finally:
        store.delete_part(scratch)
    check_still_open(session, services, task, part)
    now = services.clock.now()
    session.execute(
        update(UploadChunk)
        .where(UploadChunk.upload_id == key["upload_id"], UploadChunk.chunk_index == key["chunk_index"])
        .values(sha256=sha256, received_at=now)
    )
    task.last_activity = now
    session.flush()
    return ChunkResult(task, stored=True)
