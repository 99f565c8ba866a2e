"""Writing numbered chunks (chunked and Drive protocols): idempotent, safe in parallel."""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hmacfs.background import KeyedRunner
from hmacfs.container import Services
from hmacfs.db import BodyTransaction
from hmacfs.errors import BadRequest, Conflict
from hmacfs.files import pool_stores
from hmacfs.metrics import AppMetrics
from hmacfs.models import File, UploadTask
from hmacfs.models.status import OPEN_STATUSES
from hmacfs.ports import Clock
from hmacfs.storage import BlobStore, RangeLock
from hmacfs.storage.copying import Hasher, Reader, blocks_reader
from hmacfs.uploads import sql
from hmacfs.uploads.chunking import check_chunk_length, chunk_bounds
from hmacfs.uploads.completion import complete_upload
from hmacfs.uploads.counting import count_bytes
from hmacfs.uploads.digest import ExpectedDigest
from hmacfs.uploads.handoff import BodyWatch, take_over
from hmacfs.uploads.notify import publish_progress
from hmacfs.uploads.part_locks import held_or_open, keep_until_transaction_end
from hmacfs.uploads.running_hash import bytes_replaced, chunk_recorded
from hmacfs.uploads.service import ChecksumMismatch, check_open, part_store
from hmacfs.uploads.switches import note_client


@dataclass(frozen=True)
class ChunkResult:
    task: UploadTask
    stored: bool  # False when an identical chunk was already there
    file: File | None = None  # the file, when this chunk completed the upload
    committed: bool = False  # its row committed by itself (``BodyTransaction.statements_alone``)


def write_chunk(
    session: Session,
    services: Services,
    task: UploadTask,
    index: int,
    read: Reader,
    *,
    declared_length: int | None,
    body: BodyTransaction,
    digest: ExpectedDigest | None = None,
    auto_complete: bool = False,
    watch: BodyWatch | None = None,
) -> ChunkResult:
    """Store chunk ``index`` (exactly its slot's length) and record it once.

    The chunk's range of the part is locked from before its first write until
    its row commits (``hmacfs.uploads.part_locks``). A request that finds it
    locked, or finds the chunk already recorded, receives the body aside and
    then, under the lock, keeps it only if its bytes differ: a repeated
    identical chunk is not recorded twice (``stored`` False), and a failed
    retry never damages an acknowledged chunk. Raises ChecksumMismatch
    (nothing recorded), IncompleteBody (400) and 409 CHUNK_BUSY when the lock
    stays held past ``timeouts.body_idle``. With the body's ``watch``, a chunk whose
    writer went silent is taken over at once (``hmacfs.uploads.handoff``): the stale
    request ends with WriterPreempted and this one writes in its place.

    ``body``: how the request's transaction spans the body (the request
    boundary's choice). ``auto_complete`` (the chunked API): the request that
    finds every chunk recorded completes the upload. When the chunk's row
    commits by itself (PostgreSQL) it has committed by then, so if completing
    fails (409 UPLOAD_BUSY, 403 QUOTA_EXCEEDED) the chunk stays recorded, and
    re-sending it completes the upload.
    """
    check_open(task)
    writer = _Writer.of(services)
    slot = _Slot.of(services.store, task, index)
    check_chunk_length(declared_length, slot.length)
    body.before_reads(session)  # whether the chunk is recorded is read below
    lock, held = _open_lock(session, writer.store, task, slot)
    try:
        first = _lock_chunk(services, task, slot, lock, watch) and not _recorded(session, slot)
        if first:
            with watch.seated(task.id, index) if watch is not None else nullcontext():
                result = _write_in_place(session, writer, task, slot, body=body, read=read, digest=digest)
        else:
            result = _write_aside(session, writer, task, slot, lock=lock, body=body, read=read, digest=digest)
    except BaseException:
        _let_go(lock, held, slot)
        raise
    if result.stored:
        if not held:
            keep_until_transaction_end(session, slot.part, lock)
        body.after_record(session, result.committed)  # the lock goes, the hash advance may start
        publish_progress(session, services.settings.events, task, writer.clock.now())
        if watch is not None:
            note_client(session, services, task, watch.client)
    else:
        _let_go(lock, held, slot)
        if auto_complete:
            session.refresh(task)  # read before the body; another chunk may have come since
    done = auto_complete and task.chunks_uploaded >= (task.chunks_count or 0)
    return replace(result, file=complete_upload(session, services, task) if done else None)


def _lock_chunk(
    services: Services, task: UploadTask, slot: _Slot, lock: RangeLock, watch: BodyWatch | None
) -> bool:
    """Lock the chunk's range now, or once its silent writer has stood down for this
    request (``hmacfs.uploads.handoff``); False while another writer keeps it."""

    def acquire() -> bool:
        return lock.try_lock(slot.offset, slot.length)

    if acquire():
        return True
    return watch is not None and take_over(
        services, slot.upload_id, slot.index, watch.client, acquire, protocol=task.protocol, patient=True
    )


@dataclass(frozen=True)
class _Writer:
    """What writing a chunk needs besides the request: the store, the clock, the running
    hash's advancer, and how long to wait for a chunk's lock (seconds: its holder either
    finishes or its body read gives up after ``timeouts.body_idle``)."""

    store: BlobStore
    clock: Clock
    advancer: KeyedRunner
    lock_wait: float
    metrics: AppMetrics | None

    @classmethod
    def of(cls, services: Services) -> _Writer:
        wait = services.settings.timeouts.body_idle.total_seconds() + _LOCK_MARGIN
        return cls(services.store, services.clock, services.hash_advancer, wait, services.metrics)


def _open_lock(session: Session, store: BlobStore, task: UploadTask, slot: _Slot) -> tuple[RangeLock, bool]:
    try:
        return held_or_open(session, slot.store, slot.part)
    except FileNotFoundError:  # completed, cancelled or expired since the task was read
        check_still_open(session, store, task, slot.part)
        raise


def _recorded(session: Session, slot: _Slot) -> bool:
    return sql.chunk_recorded(session, slot.upload_id, slot.index)


def _let_go(lock: RangeLock, held: bool, slot: _Slot) -> None:
    """Release the chunk's range: a lock this transaction keeps for other chunks stays open."""
    if held:
        lock.unlock(slot.offset, slot.length)
    else:
        lock.close()


@dataclass(frozen=True)
class _Slot:
    """Where chunk ``index`` goes, read from the task before its connection is given back
    (reading an expired task afterwards would reload the whole row)."""

    upload_id: uuid.UUID
    part: str
    store: BlobStore
    index: int
    offset: int
    length: int

    @classmethod
    def of(cls, store: BlobStore, task: UploadTask, index: int) -> _Slot:
        assert task.file_size is not None
        offset, length = chunk_bounds(index, task.file_size, task.chunk_size)
        return cls(task.id, task.task_id, part_store(store, task), index, offset, length)

    def row(self, sha256: str | None) -> dict[str, Any]:
        return {
            "upload_id": self.upload_id, "chunk_index": self.index, "offset": self.offset,
            "size": self.length, "sha256": sha256,
        }  # fmt: skip


def _write_in_place(
    session: Session,
    writer: _Writer,
    task: UploadTask,
    slot: _Slot,
    *,
    body: BodyTransaction,
    read: Reader,
    digest: ExpectedDigest | None,
) -> ChunkResult:
    """A first write, under the chunk's lock: straight into the part, then its row (on
    PostgreSQL in one statement that commits by itself)."""
    body.before_body(session)
    sha256 = write_checked(slot.store, slot.part, slot.offset, read, slot.length, digest=digest)
    alone = body.before_record(session)
    _record_new(session, writer, task, slot.row(sha256))
    return ChunkResult(task, stored=True, committed=alone)


def _record_new(session: Session, writer: _Writer, task: UploadTask, row: dict[str, Any]) -> None:
    """Insert a first-written chunk's row and count it, reloading ``task`` with the counts
    (the lock makes this the only writer of the chunk). Only while the upload is open:
    if it was completed, cancelled or expired while this chunk streamed in, the request
    fails and the stray part file the write re-created is removed.

    One statement on PostgreSQL, two on SQLite (``sql.record_and_count``)."""
    values = {**row, "received_at": writer.clock.now()}
    counts = sql.record_and_count(session, values)
    if counts is None:
        check_still_open(session, writer.store, task, task.task_id)
        raise Conflict("this chunk was recorded by another request meanwhile; retry", code="CHUNK_BUSY")
    for name, value in counts._mapping.items():
        set_committed_value(task, name, value)  # as read from the database: nothing to flush
    chunk_recorded(session, writer.advancer, task, row["offset"] + row["size"])
    count_bytes(writer.metrics, task.protocol, row["size"])


def write_checked(
    store: BlobStore,
    part: str,
    offset: int,
    read: Reader,
    length: int,
    *,
    digest: ExpectedDigest | None,
    also: Hasher | None = None,
) -> str | None:
    """Write and fsync ``length`` bytes at ``offset`` (fed to ``also`` on the way); verify the
    declared digest and the end of the body. Returns the bytes' SHA-256 (hex) when the
    digest was a SHA-256 (the chunk row records it), else None: nothing else hashes a chunk
    by itself, the upload's running hash covers its bytes."""
    checking = digest.new_hasher() if digest is not None else None
    hashers = tuple(h for h in (checking, also) if h is not None)
    store.write_part(part, offset, read, length, hashers=hashers)
    if read(1):
        raise BadRequest(
            f"body is longer than {length} bytes", code="BODY_TOO_LONG", details={"expected": length}
        )
    if checking is None or digest is None:  # one is None only with the other
        return None
    actual = checking.digest()
    if not hmac.compare_digest(actual, digest.digest):
        raise ChecksumMismatch(
            f"{digest.header} does not match the body; the chunk was discarded",
            details={"field": digest.header, "algorithm": digest.algorithm},
        )
    return actual.hex() if digest.algorithm == "sha256" else None


def check_still_open(session: Session, store: BlobStore, task: UploadTask, part: str) -> None:
    """After a body has streamed in: the upload may have been completed, cancelled or
    expired meanwhile. Then its part is gone (or became a blob) and the write just
    re-created a stray file at the part path: remove it and refuse (409/410)."""
    session.refresh(task)
    if task.status not in OPEN_STATUSES:
        part_store(store, task).delete_part(part)
        check_open(task)


def _write_aside(
    session: Session,
    writer: _Writer,
    task: UploadTask,
    slot: _Slot,
    *,
    lock: RangeLock,
    body: BodyTransaction,
    read: Reader,
    digest: ExpectedDigest | None,
) -> ChunkResult:
    """The chunk is recorded already, or another request is writing it: receive the body
    into a scratch part, then, holding the chunk's lock, keep it only if it differs."""
    store, scratch = slot.store, f"{slot.part}-r{slot.index}-{secrets.token_hex(4)}"  # see _SCRATCH
    body.before_body(session)
    store.create_part(scratch, slot.length)
    try:
        sha256 = write_checked(store, scratch, 0, read, slot.length, digest=digest)
        if not lock.wait_lock(slot.offset, slot.length, timeout=writer.lock_wait):
            raise Conflict("another request keeps writing this chunk; retry", code="CHUNK_BUSY")
        existing = _recorded(session, slot)
        if existing and store.same_bytes(slot.part, slot.offset, scratch, slot.length):
            return ChunkResult(task, stored=False)
        check_still_open(session, writer.store, task, slot.part)
        blocks = store.read_part(scratch, 0, slot.length)
        store.write_part(slot.part, slot.offset, blocks_reader(iter(blocks)), slot.length)
    finally:
        store.delete_part(scratch)
    if not existing:  # the request that held the lock failed before recording it
        _record_new(session, writer, task, slot.row(sha256))
        return ChunkResult(task, stored=True)
    now = writer.clock.now()
    sql.replace_chunk(session, slot.upload_id, slot.index, sha256, now)
    bytes_replaced(session, writer.advancer, slot.upload_id, slot.offset)
    task.last_activity = now
    session.flush()
    return ChunkResult(task, stored=True)


# A scratch part: the upload's part name, the chunk index, a random tag.
_SCRATCH = re.compile(r"-r[0-9]+-[0-9a-f]{8}$")


def remove_stale_scratch(session: Session, services: Services, now: datetime) -> int:
    """Maintenance step: delete scratch parts of re-sent chunks that a process dying
    mid-request left behind: untouched for ``uploads.max_resumable_age``, under the
    default root and every pool's. Returns how many."""
    cutoff = (now - services.settings.uploads.max_resumable_age).timestamp()
    removed = 0
    for store in (services.store, *pool_stores(session, services.store)):
        for part in store.list_parts():
            if _SCRATCH.search(part.name) and part.modified < cutoff:
                store.delete_part(part.name)
                removed += 1
    return removed


# Waiting for a chunk's lock: its holder either finishes or its body read gives up
# after timeouts.body_idle; the margin covers its fsync and commit.
_LOCK_MARGIN = 5.0
