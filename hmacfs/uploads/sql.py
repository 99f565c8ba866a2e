"""The upload aggregate's SQL (``upload_tasks`` and ``upload_chunks``) on the hot path.

Each function hides its dialect: PostgreSQL and SQLite run the same contract,
with fewer round trips where PostgreSQL allows (a data-modifying WITH).
Statements are built once (values are bound at execution): building one costs
more Python than running a cached one.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    CursorResult,
    Executable,
    Row,
    Table,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import ReturningUpdate

from hmacfs.db import built_once, dialect_insert, is_postgresql
from hmacfs.models import UploadChunk, UploadTask
from hmacfs.models.status import OPEN_STATUSES, UploadStatus
from hmacfs.ports import lock_id


def chunk_recorded(session: Session, upload_id: uuid.UUID, index: int) -> bool:
    """Whether chunk ``index`` has a row (a Core read: no ORM object is built for it)."""
    return session.scalar(_IS_RECORDED, {"upload_id": upload_id, "chunk_index": index}) is not None


_IS_RECORDED = select(UploadChunk.chunk_index).where(
    UploadChunk.upload_id == bindparam("upload_id"), UploadChunk.chunk_index == bindparam("chunk_index")
)


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


def record_and_count(session: Session, values: dict[str, Any]) -> Row[Any] | None:
    """Insert a first-written chunk's row (``values``: its columns) only while its upload is
    open, and add it to the upload's counters only if it was inserted. Returns the
    counters (``COUNTS``) as they are now, or None when nothing was recorded (the
    upload is no longer open, or the chunk was recorded meanwhile).

    One statement on PostgreSQL; two on SQLite (no data-modifying WITH)."""
    if is_postgresql(session):
        return session.execute(_RECORD_AND_COUNT, values).first()
    return session.execute(_COUNT_CHUNK, values).first() if record_chunk(session, values) else None


def replace_chunk(
    session: Session, upload_id: uuid.UUID, index: int, sha256: str | None, received_at: datetime
) -> None:
    """A recorded chunk's bytes were replaced: its row takes the new digest and time."""
    session.execute(
        update(UploadChunk)
        .where(UploadChunk.upload_id == upload_id, UploadChunk.chunk_index == index)
        .values(sha256=sha256, received_at=received_at)
    )


def _counted(upload: ColumnElement[Any]) -> ReturningUpdate[Any]:
    """UPDATE of one open upload's counters by one chunk (``size`` bytes, received at
    ``received_at``) returning what a chunk's answer, its progress event and the running
    hash read of the task (Core: loading the whole task through the ORM cost 0.8 ms more
    per chunk here); ``upload`` is its id (a value or an expression). No lost update
    between parallel chunks: the counts are added in SQL."""
    tasks = cast(Table, UploadTask.__table__)
    return (
        update(tasks)
        .where(tasks.c.id == upload, tasks.c.status.in_(_OPEN))
        .values(
            chunks_uploaded=tasks.c.chunks_uploaded + 1,
            bytes_received=tasks.c.bytes_received + bindparam("size"),
            status=UploadStatus.IN_PROGRESS.value,
            last_activity=bindparam("received_at"),
            updated_at=bindparam("received_at"),  # set here: in a WITH, its onupdate default stays None
        )
        .returning(*(tasks.c[name] for name in COUNTS))
    )


COUNTS = (
    "chunks_uploaded", "bytes_received", "status", "last_activity", "updated_at", "hashed_bytes",
    "progress_published", "progress_published_at",
)  # fmt: skip
_OPEN = [s.value for s in OPEN_STATUSES]
_COUNT_CHUNK = _counted(bindparam("upload_id"))  # built once (values bound at execution)


def _record_and_count() -> ReturningUpdate[Any]:
    """PostgreSQL: insert the chunk's row if its upload is open, and count it only if it
    was inserted, in one statement (a data-modifying WITH; SQLite has none)."""
    chunks, tasks = cast(Table, UploadChunk.__table__), cast(Table, UploadTask.__table__)
    names = ("chunk_index", "offset", "size", "sha256", "received_at")
    row = select(tasks.c.id, *(bindparam(name, type_=chunks.c[name].type) for name in names)).where(
        tasks.c.id == bindparam("upload_id"), tasks.c.status.in_(_OPEN)
    )
    added = (
        postgresql.insert(chunks)
        .from_select(["upload_id", *names], row)
        .on_conflict_do_nothing(index_elements=[chunks.c.upload_id, chunks.c.chunk_index])
        .returning(chunks.c.upload_id)
        .cte("added")
    )
    return _counted(select(added.c.upload_id).scalar_subquery()).add_cte(added)


_RECORD_AND_COUNT = _record_and_count()


def lock_quota(session: Session, key: str) -> None:
    """Serialise quota checks on ``key`` (``quota:<account>``, ...) until the transaction ends,
    so that reading the usage and recording the upload that raises it are one step.

    PostgreSQL: a transaction-level advisory lock on the session's own connection,
    waited for (the holder commits within one request); it holds across processes
    and machines. SQLite serves one process, and nothing between a quota check and
    the commit of the insert that follows it yields to another greenlet (the
    database is a local file; see ``hmacfs.db.release_connection``), so the check is
    already serial there.
    """
    if is_postgresql(session):
        session.execute(_TRANSACTION_LOCK, {"k": lock_id(key)})


_TRANSACTION_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def lock_for_append(session: Session, task_id: str, key: int) -> UploadTask | None:
    """The upload ``task_id`` with its advisory lock ``key`` and its row lock, both held until
    the transaction ends, in one round trip: None when there is no such upload or another
    transaction holds ``key`` (the lock is tried, never waited for). PostgreSQL only.

    The try-lock is a condition of the read, so it is decided before the row lock is
    waited for: a second writer never queues behind the first one's row lock."""
    return session.scalars(_LOCKED_UPLOAD, {"task_id": task_id, "k": key}).first()


def read_for_append(session: Session, task_id: str) -> UploadTask | None:
    """The upload ``task_id`` read afresh (SQLite, whose writers the in-process locker serialises)."""
    return session.scalars(_UPLOAD_BY_TASK_ID, {"task_id": task_id}).first()


_UPLOAD_BY_TASK_ID = (
    select(UploadTask)
    .where(UploadTask.task_id == bindparam("task_id"))
    .execution_options(populate_existing=True)
)
_LOCKED_UPLOAD = _UPLOAD_BY_TASK_ID.where(
    func.pg_try_advisory_xact_lock(bindparam("k", type_=BigInteger), type_=Boolean)
).with_for_update()


def record_append(session: Session, task: UploadTask, row: dict[str, Any], values: dict[str, Any]) -> None:
    """Record an offset write: insert its range ``row`` (an ``upload_chunks`` row) and set
    ``values`` on the upload, whose row the caller holds locked; ``task`` takes the values
    as committed (nothing left to flush). One statement on PostgreSQL (a data-modifying
    WITH, as a Drive chunk's), two on SQLite."""
    if is_postgresql(session):
        params = {f"row_{name}": value for name, value in row.items()}
        params.update({f"new_{name}": value for name, value in values.items()})
        session.execute(_RECORD_APPEND, {**params, "upload": task.id})
        for name, value in values.items():
            set_committed_value(task, name, value)
        return
    record_chunk(session, row)
    for name, value in values.items():
        setattr(task, name, value)
    session.flush()


APPENDED = (
    "chunks_uploaded", "upload_offset", "bytes_received", "status", "last_activity", "updated_at",
    "hashed_bytes", "hash_state",
)  # fmt: skip


def _record_append() -> Executable:
    chunks, tasks = cast(Table, UploadChunk.__table__), cast(Table, UploadTask.__table__)
    names = ("upload_id", "chunk_index", "offset", "size", "sha256", "received_at")
    added = (
        postgresql.insert(chunks)
        .values({name: bindparam(f"row_{name}", type_=chunks.c[name].type) for name in names})
        .on_conflict_do_nothing(index_elements=[chunks.c.upload_id, chunks.c.chunk_index])
        .cte("added")
    )
    values = {name: bindparam(f"new_{name}", type_=tasks.c[name].type) for name in APPENDED}
    return update(tasks).where(tasks.c.id == bindparam("upload")).values(values).add_cte(added)


_RECORD_APPEND = _record_append()
