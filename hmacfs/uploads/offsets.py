"""Offset-addressed writes (tus): one writer per upload at a time, bytes appended at the offset.

Writes are serialised per upload by the ``upload:<task id>`` lock: busy answers at
once (LockBusy, 423). On PostgreSQL it is a transaction-level advisory lock
taken on the request's own connection, so it holds across processes and
machines until the request commits or rolls back; the task row is read
``FOR UPDATE`` in the same statement and stays locked while the bytes stream (the request boundary
holds the transaction: ``BodyTransaction.hold``), so nothing can change the
upload under the writer. SQLite (one process) uses the in-process locker and
gives its connection back while the bytes stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import BodyTransaction, is_postgresql
from hmacfs.errors import BadRequest, Conflict, Forbidden, NotFound
from hmacfs.models import File, UploadTask
from hmacfs.models.status import OPEN_STATUSES, Protocol, UploadStatus
from hmacfs.ports import LockBusy, lock_id
from hmacfs.storage.copying import Reader, blocks_reader
from hmacfs.storage.sha256_state import ResumableSha256, available
from hmacfs.uploads.chunking import chunk_count
from hmacfs.uploads.chunks import check_still_open, write_checked
from hmacfs.uploads.completion import complete_upload, finish_partial
from hmacfs.uploads.counting import count_bytes
from hmacfs.uploads.digest import ExpectedDigest
from hmacfs.uploads.handoff import OFFSET_SLOT, BodyWatch, holding
from hmacfs.uploads.notify import publish_progress
from hmacfs.uploads.quotas import check_unreserved_append
from hmacfs.uploads.service import (
    NewUpload,
    cancel_upload,
    check_open,
    check_room,
    check_visible,
    create_upload,
    get_upload,
    lock_task,
    part_store,
)
from hmacfs.uploads.sql import lock_for_append, read_for_append, record_append
from hmacfs.uploads.switches import note_client


def upload_lock_key(task: UploadTask) -> str:
    """The key of the lock an upload's offset writer holds (by public id: a PATCH knows it
    before it has read the upload, so it takes the lock in the same statement)."""
    return _lock_key(task.task_id)


def _lock_key(task_id: str) -> str:
    return f"upload:{task_id}"


def check_length(task: UploadTask, size: int, limit: int) -> None:
    """A deferred length may be declared once, not below the bytes received nor above ``limit``."""
    if not task.size_deferred:
        if task.file_size != size:
            raise BadRequest("Upload-Length cannot change", code="LENGTH_ALREADY_SET")
        return
    if size < task.upload_offset:
        raise BadRequest("Upload-Length is below the bytes already received", code="INVALID_LENGTH")
    check_room(task, 0, size, limit)


def declare_length(session: Session, task: UploadTask, size: int) -> None:
    """Fix a deferred upload length (tus ``Upload-Length`` on a later PATCH); checked first."""
    if not task.size_deferred:
        return
    task.file_size = size
    task.size_deferred = False
    task.chunks_count = chunk_count(size, task.chunk_size)
    session.flush()


def write_at_offset(
    session: Session,
    services: Services,
    upload_id: str,
    offset: int,
    read: Reader,
    *,
    account_id: uuid.UUID | None,
    length: int,
    body: BodyTransaction,
    digest: ExpectedDigest | None = None,
    declared_size: int | None = None,
    watch: BodyWatch | None = None,
) -> UploadTask:
    """Append ``length`` bytes at ``offset`` of the tus upload ``upload_id`` as ``account_id``
    may see it (404 otherwise); ``offset`` must equal the upload's offset (409 otherwise).

    ``body``: whether the transaction, with the task's row lock, is held while the
    bytes stream (the request boundary's choice; PostgreSQL holds it). Raises
    LockBusy while another request writes this upload, unless ``watch`` (the body's,
    see ``hmacfs.uploads.handoff``) lets this PATCH take over from a writer that went
    silent; the stalled writer then ends with WriterPreempted. Returns the upload as
    it is now (completed when these bytes were its last).
    """
    with _writer_lock(session, services, upload_id, account_id, offset=offset, watch=watch) as held:
        task = held
        if task.concat == "final":
            raise Forbidden("a final concatenation cannot be patched", code="FINAL_UPLOAD")
        check_open(task)
        if offset != task.upload_offset:
            raise Conflict(
                f"Upload-Offset {offset} does not match the upload's offset {task.upload_offset}",
                code="OFFSET_MISMATCH",
                details={"offset": task.upload_offset},
            )
        limit = services.settings.uploads.max_upload_size
        if declared_size is not None:
            check_length(task, declared_size, limit)
        check_room(task, offset, length, declared_size if task.size_deferred and declared_size else limit)
        end = max(offset + length, declared_size or 0)  # a declared length is charged whole
        check_unreserved_append(session, services.settings, task, end, services.clock.now())
        part, store = task.task_id, part_store(services.store, task)
        running = _continued_hash(task, offset) if length else None
        released = body.before_body(session)
        sha256 = None
        if length:
            with watch.seated(task.id, OFFSET_SLOT) if watch is not None else nullcontext():
                sha256 = write_checked(store, part, offset, read, length, digest=digest, also=running)
        if released:  # the row lock was let go: the upload may have ended meanwhile
            task = lock_task(session, task)
            check_still_open(session, services.store, task, part)
        if declared_size is not None:
            declare_length(session, task, declared_size)
        if length:
            _append(session, services, task, offset=offset, length=length, sha256=sha256, running=running)
            if watch is not None:
                note_client(session, services, task, watch.client)
        finish_if_done(session, services, task)
        return task


@contextmanager
def _writer_lock(
    session: Session,
    services: Services,
    upload_id: str,
    account_id: uuid.UUID | None,
    *,
    offset: int,
    watch: BodyWatch | None,
) -> Iterator[UploadTask]:
    """Hold the upload's writer lock for the ``with`` block and give its row, read under it.

    On PostgreSQL the lock is tried and the row read ``FOR UPDATE`` in one round trip
    (``lock_for_append``); only when that finds nothing is the upload looked up
    without a lock, to tell a missing upload (404) from a busy one, and to take over
    from a silent writer when ``watch`` allows (a PATCH at the acknowledged offset)."""
    key = _lock_key(upload_id)
    locked: list[UploadTask] = []

    def hold() -> AbstractContextManager[None]:
        return _held(session, services, upload_id, key, locked)

    with ExitStack() as stack:
        try:
            stack.enter_context(hold())
        except LockBusy:
            task = get_upload(session, upload_id, account_id, Protocol.TUS)
            claimable = watch if offset == task.upload_offset else None
            holds = holding(services, task.id, OFFSET_SLOT, hold, claimable, protocol=task.protocol,
                            busy=LockBusy)  # fmt: skip
            stack.enter_context(holds)
        yield check_visible(locked[-1], upload_id, account_id, Protocol.TUS)


@contextmanager
def _held(
    session: Session, services: Services, upload_id: str, key: str, locked: list[UploadTask]
) -> Iterator[None]:
    """Take the lock ``key`` and append the upload read under it to ``locked``; LockBusy when
    it is taken (or, on PostgreSQL, when there is no such upload)."""
    if is_postgresql(session):  # a transaction-level advisory lock: released by the commit
        task = lock_for_append(session, upload_id, lock_id(key))
        if task is None:
            raise LockBusy(key)
        locked.append(task)
        yield
        return
    with services.locker.hold_in(session, key):
        found = read_for_append(session, upload_id)
        if found is None:
            raise LockBusy(key)  # the caller's lookup answers 404
        locked.append(found)
        yield


def _continued_hash(task: UploadTask, offset: int) -> ResumableSha256 | None:
    """The upload's running SHA-256, to be fed the bytes written at ``offset``: the PATCHes of
    an upload are serialised and each stores the state with its offset, so it normally
    covers exactly the bytes before ``offset``. None without libcrypto (completion then
    hashes the part)."""
    if not available() or task.hashed_bytes != offset or (offset and task.hash_state is None):
        return None
    return ResumableSha256(task.hash_state if offset else None)


def _append(
    session: Session,
    services: Services,
    task: UploadTask,
    *,
    offset: int,
    length: int,
    sha256: str | None,
    running: ResumableSha256 | None,
) -> None:
    """Record the range, move the offset and, with it, the running hash's state."""
    now = services.clock.now()
    row = {"upload_id": task.id, "chunk_index": task.chunks_uploaded, "offset": offset, "size": length}
    hashed = (task.hashed_bytes, task.hash_state) if running is None else (offset + length, running.state())
    values = {
        "chunks_uploaded": task.chunks_uploaded + 1, "upload_offset": offset + length,
        "bytes_received": offset + length, "status": UploadStatus.IN_PROGRESS.value,
        "last_activity": now, "updated_at": now, "hashed_bytes": hashed[0], "hash_state": hashed[1],
    }  # fmt: skip
    record_append(session, task, {**row, "sha256": sha256, "received_at": now}, values)
    count_bytes(services.metrics, task.protocol, length)
    publish_progress(session, services.settings.events, task, now)


def finish_if_done(session: Session, services: Services, task: UploadTask) -> File | None:
    """Complete the upload once every declared byte is in (at once for an empty one)."""
    if task.size_deferred or task.upload_offset != task.file_size:
        return None
    if task.concat == "partial":
        finish_partial(session, services, task)
        return None
    return complete_upload(session, services, task)


def concatenate(
    session: Session, services: Services, new: NewUpload, parts: Sequence[UploadTask]
) -> UploadTask:
    """tus ``Upload-Concat: final``: a new upload made of finished partial uploads, in order.

    The partial parts are streamed into the new part (bounded buffers), then
    the upload completes like any other. Raises 400 when a part is unfinished.
    """
    for part in parts:
        if part.concat != "partial" or part.status != UploadStatus.COMPLETED.value or part.file_size is None:
            raise BadRequest("every part must be a finished partial upload", code="INVALID_CONCAT")
    total = sum(part.file_size or 0 for part in parts)
    task = create_upload(session, services, _final(new, total))
    store = part_store(services.store, task)
    offset = 0
    for part in parts:
        size = part.file_size or 0
        running = _continued_hash(task, offset)
        blocks = iter(part_store(services.store, part).read_part(part.task_id, 0, size))
        hashers = (running,) if running else ()
        store.write_part(task.task_id, offset, blocks_reader(blocks), size, hashers=hashers)
        if size:
            _append(session, services, task, offset=offset, length=size, sha256=None, running=running)
        offset += size
    finish_if_done(session, services, task)
    return task


def _final(new: NewUpload, total: int) -> NewUpload:
    return NewUpload(
        protocol=Protocol.TUS, file_name=new.file_name, file_size=total, account_id=new.account_id,
        pool_id=new.pool_id, content_type=new.content_type, metadata=new.metadata, concat="final",
    )  # fmt: skip


def find_parts(session: Session, ids: Sequence[str], account: object) -> list[UploadTask]:
    """The partial uploads named by a final concatenation, in order; 404 for any not visible."""
    found = {t.task_id: t for t in session.scalars(select(UploadTask).where(UploadTask.task_id.in_(ids)))}
    parts = []
    for ident in ids:
        task = found.get(ident)
        if (
            task is None
            or task.protocol != Protocol.TUS.value
            or (task.account_id is not None and task.account_id != account)
        ):
            raise NotFound("no such partial upload", code="UPLOAD_NOT_FOUND", details={"taskId": ident})
        parts.append(task)
    return parts


def terminate_upload(session: Session, services: Services, task: UploadTask) -> None:
    """tus termination: an unfinished upload is cancelled; a finished one is hidden and its
    leftover part (a partial upload's bytes) removed. A file made from it stays."""
    if task.status in {s.value for s in OPEN_STATUSES}:
        cancel_upload(session, services, task)
        return
    task.deleted_at = services.clock.now()
    part_store(services.store, task).delete_part(task.task_id)
    session.flush()
