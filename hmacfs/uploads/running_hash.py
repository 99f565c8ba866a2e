"""Each Drive/chunked upload's running SHA-256, advanced in the background as chunks commit.

Completion must verify the SHA-256 of the whole file. Hashing the part from
the start after the last chunk cost 0.9 s per GiB, after the client had sent
everything. Instead, once a chunk's row commits, the worker that took it
hashes the committed chunks that continue the hashed prefix, reading them
back from the page cache in a thread (from an object store: in the greenlet,
hmacfs.storage.offloading), and stores the SHA-256 state (OpenSSL's
``SHA256_CTX``, ``hmacfs.storage.sha256_state``) on the upload row with the
number of bytes it covers. Any worker or node continues it; completion
hashes only what is left.

Why the bytes it reads are the bytes that stay:
- a chunk's first write holds an exclusive range lock on the part
  (``hmacfs.uploads.part_locks``) until its row commits, and every other
  write of that range waits for the lock, so a committed chunk's bytes change
  only through a re-send with other bytes;
- that re-send replaces them under the lock and then, in the transaction
  that updates the chunk row, bumps ``hash_generation`` and drops a state
  that covered the chunk. A state computed from the old bytes (or from a mix
  read during the copy) is stored only if the generation it started from is
  still current, so it is either refused or dropped afterwards.

One advancer per upload at a time (an advisory lock, taken without waiting);
the others skip, and completion picks up whatever they left. PostgreSQL only:
on SQLite (one worker) completion hashes the whole part as before.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import case, event, select, update
from sqlalchemy.orm import Session

from hmacfs.background import KeyedRunner
from hmacfs.container import Services
from hmacfs.models import UploadChunk, UploadTask
from hmacfs.models.status import OPEN_STATUSES
from hmacfs.ports import LockBusy
from hmacfs.storage.offloading import offload_store_io
from hmacfs.storage.sha256_state import ResumableSha256, available

_SCHEDULED = "hmacfs.uploads.running_hash.scheduled"
_STEP = 256 * 1024 * 1024  # bytes hashed per transaction (bounds how long one holds a connection)
_BATCH = 16 * 1024 * 1024  # bytes that wait past the hashed prefix before an advance starts
_OPEN = [status.value for status in OPEN_STATUSES]
# The uploads whose next bytes an advance in this process found unreadable (a direct part
# on S3 until completion seals it, ``hmacfs.storage.s3_direct``): their later advances are
# skipped, each of which cost a part listing, an advisory lock and two queries only to
# fail again (~15 % of a worker's CPU in a Drive upload on S3). Skipping is always safe:
# an advance is optional, completion hashes whatever is left.
_UNREADABLE: set[uuid.UUID] = set()
_UNREADABLE_LIMIT = 4096  # uploads finish; forget them all now and then


def start_advancing(services: Services, spawn: Callable[..., Any]) -> None:
    """Advance hashes in this process's background from now on (a web worker on PostgreSQL)."""
    if services.db.is_postgresql and available():
        services.hash_advancer.start(spawn, lambda upload_id: _advance_and_more(services, upload_id))


def _advance_and_more(services: Services, upload_id: uuid.UUID) -> bool:
    """One advance; whether to run another at once: only when it stopped at ``_STEP``.

    An advance that hashed up to the end of the committed chunks has nothing left:
    the next batch's chunk requests the next advance (a request while one runs
    makes it run again). Running again at once found nothing in every second
    transaction of a Drive upload's advancer (strace, 512 MiB in 5 MiB chunks)."""
    return (advance(services, upload_id) or 0) >= _STEP


def chunk_recorded(session: Session, advancer: KeyedRunner, task: UploadTask, end: int) -> None:
    """A chunk ending at byte ``end`` is recorded (``task`` freshly read with it): advance the
    hash once this transaction commits, if that many bytes wait past the hashed prefix.

    Advancing in batches of ``_BATCH`` bytes rather than after every chunk saves most
    of the advances' transactions; completion hashes the rest (at most about a batch
    when the chunks came in order)."""
    if end - task.hashed_bytes >= _BATCH:
        _schedule(session, advancer, task.id)


def _schedule(session: Session, advancer: KeyedRunner, upload_id: uuid.UUID) -> None:
    """Advance ``upload_id``'s hash once ``session`` commits (nothing if it rolls back)."""
    session.info.setdefault(_SCHEDULED, {})[upload_id] = advancer


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    for upload_id, advancer in session.info.pop(_SCHEDULED, {}).items():
        advancer.request(upload_id)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_SCHEDULED, None)


def advance(services: Services, upload_id: uuid.UUID) -> int | None:
    """Hash the committed chunks that continue the stored prefix (at most ``_STEP`` bytes);
    the bytes added, or None when another advancer holds this upload. A background
    job's boundary: it owns its session and commits it."""
    if upload_id in _UNREADABLE:
        return 0
    with services.db.sessions() as session:
        try:
            with services.locker.hold_in(session, f"upload-hash:{upload_id}"):
                added = _advance(session, services, upload_id)
                session.commit()
                return added
        except LockBusy:
            return None
        except FileNotFoundError:  # the upload was cancelled or completed meanwhile
            return 0


def _advance(session: Session, services: Services, upload_id: uuid.UUID) -> int:
    row = session.execute(
        select(
            UploadTask.task_id, UploadTask.storage_root, UploadTask.hashed_bytes,
            UploadTask.hash_state, UploadTask.hash_generation,
        ).where(UploadTask.id == upload_id, UploadTask.status.in_(_OPEN))
    ).one_or_none()  # fmt: skip
    if row is None:
        return 0
    part, root, start, state, generation = row
    start = start if state is not None else 0
    end = min(_contiguous_end(session, upload_id, start), start + _STEP)
    if end == start:
        return 0
    hasher = ResumableSha256(state if start else None)
    store = services.store.at(root)
    try:
        offload_store_io(store, store.feed_range, part, hasher, start, end - start)
    except ValueError:  # not readable until sealed (a direct part on S3): completion hashes it
        if len(_UNREADABLE) >= _UNREADABLE_LIMIT:
            _UNREADABLE.clear()
        _UNREADABLE.add(upload_id)
        return 0
    stored = session.execute(
        update(UploadTask)
        .where(
            UploadTask.id == upload_id,
            UploadTask.status.in_(_OPEN),
            UploadTask.hash_generation == generation,
            UploadTask.hashed_bytes == row.hashed_bytes,
        )
        .values(hashed_bytes=end, hash_state=hasher.state())
        .execution_options(synchronize_session=False)
    )
    return end - start if stored.rowcount == 1 else 0  # type: ignore[attr-defined]


def _contiguous_end(session: Session, upload_id: uuid.UUID, start: int) -> int:
    """Where the committed chunks that begin at ``start`` and follow each other end."""
    rows = session.execute(
        select(UploadChunk.offset, UploadChunk.size)
        .where(UploadChunk.upload_id == upload_id, UploadChunk.offset >= start)
        .order_by(UploadChunk.offset)
    )
    end = start
    for offset, size in rows:
        if offset != end:
            break
        end += size
    return end


def bytes_replaced(session: Session, advancer: KeyedRunner, upload_id: uuid.UUID, offset: int) -> None:
    """Committed bytes at ``offset`` were replaced: a state covering them is dropped, and
    any advance that started before is refused (the generation moves on); the hash
    starts again once this transaction commits."""
    covered = UploadTask.hashed_bytes > offset
    session.execute(
        update(UploadTask)
        .where(UploadTask.id == upload_id)
        .values(
            hash_generation=UploadTask.hash_generation + 1,
            hashed_bytes=case((covered, 0), else_=UploadTask.hashed_bytes),
            hash_state=case((covered, None), else_=UploadTask.hash_state),
        )
        .execution_options(synchronize_session=False)
    )
    _schedule(session, advancer, upload_id)


def finish(session: Session, services: Services, task: UploadTask, size: int) -> str:
    """The SHA-256 of the part's first ``size`` bytes: the stored state continued over the rest.

    The caller holds the whole part's range lock, so no chunk changes meanwhile.
    In the thread pool on PostgreSQL so other requests run; on SQLite the
    request may hold the database's write lock, so it must not yield.
    """
    hasher: ResumableSha256 | hashlib._Hash
    if available():
        row = session.execute(
            select(UploadTask.hashed_bytes, UploadTask.hash_state).where(UploadTask.id == task.id)
        ).one()
        start = row.hashed_bytes if row.hash_state is not None and row.hashed_bytes <= size else 0
        hasher = ResumableSha256(row.hash_state if start else None)
    else:
        start, hasher = 0, hashlib.sha256()
    if start < size:
        store = services.store.at(task.storage_root)
        if services.db.is_postgresql:
            offload_store_io(store, store.seal_part, task.task_id)  # the whole part is locked
            offload_store_io(store, store.feed_range, task.task_id, hasher, start, size - start)
        else:
            store.seal_part(task.task_id)
            store.feed_range(task.task_id, hasher, start, size - start)
    return hasher.hexdigest()
