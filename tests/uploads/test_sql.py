"""The upload aggregate's SQL module: one contract on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.models import UploadChunk, UploadTask
from hmacfs.models.status import Protocol, UploadStatus
from hmacfs.uploads import sql

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _upload(session: Session, status: UploadStatus = UploadStatus.PENDING) -> UploadTask:
    task = UploadTask(
        id=uuid.uuid4(), task_id=uuid.uuid4().hex, protocol=Protocol.DRIVE.value, status=status.value,
        pool_id=DEFAULT_POOL_ID, file_name="f.bin", file_size=300, content_type="application/octet-stream",
        chunk_size=100, chunks_count=3, last_activity=NOW, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(task)
    session.flush()
    return task


def _row(task: UploadTask, index: int) -> dict[str, Any]:
    return {
        "upload_id": task.id, "chunk_index": index, "offset": index * 100, "size": 100, "sha256": None,
        "received_at": NOW,
    }  # fmt: skip


def _chunk_rows(session: Session, task: UploadTask) -> int:
    return int(session.scalar(select(func.count()).where(UploadChunk.upload_id == task.id)) or 0)


def test_record_and_count_inserts_once_and_counts_once(session: Session) -> None:
    task = _upload(session)
    counts = sql.record_and_count(session, _row(task, 1))
    assert counts is not None
    assert counts.chunks_uploaded == 1 and counts.bytes_received == 100
    assert counts.status == UploadStatus.IN_PROGRESS.value
    assert set(counts._mapping) == set(sql.COUNTS)
    assert sql.chunk_recorded(session, task.id, 1) and not sql.chunk_recorded(session, task.id, 0)

    assert sql.record_and_count(session, _row(task, 1)) is None  # recorded already: not counted again
    session.expire_all()
    assert session.get(UploadTask, task.id).chunks_uploaded == 1  # type: ignore[union-attr]
    assert _chunk_rows(session, task) == 1


def test_record_and_count_refuses_a_closed_upload(session: Session) -> None:
    task = _upload(session, UploadStatus.CANCELLED)
    assert sql.record_and_count(session, _row(task, 0)) is None
    session.expire_all()
    assert session.get(UploadTask, task.id).chunks_uploaded == 0  # type: ignore[union-attr]


def test_record_chunk_is_idempotent_and_replace_updates_the_row(session: Session) -> None:
    task = _upload(session)
    assert sql.record_chunk(session, _row(task, 2))
    assert not sql.record_chunk(session, _row(task, 2))
    later = datetime(2026, 1, 2, tzinfo=UTC)
    sql.replace_chunk(session, task.id, 2, "ab" * 32, later)
    row = session.scalars(select(UploadChunk).where(UploadChunk.upload_id == task.id)).one()
    session.refresh(row)
    assert row.sha256 == "ab" * 32 and row.received_at == later
