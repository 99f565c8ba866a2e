from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.events import publish
from hmacfs.events.publisher import written_events
from hmacfs.models import Event, Pool, Task, UploadChunk, UploadTask


def upload(**fields: object) -> UploadTask:
    values: dict[str, object] = {
        "task_id": uuid.uuid4().hex,
        "protocol": "drive",
        "pool_id": DEFAULT_POOL_ID,
        "file_name": "a.bin",
        "file_size": 10,
        "chunk_size": 5,
        "chunks_count": 2,
    }
    values.update(fields)
    return UploadTask(**values)


def test_default_pool_exists(session: Session) -> None:
    assert session.get(Pool, DEFAULT_POOL_ID) is not None


def test_timestamps_are_utc_aware(session: Session) -> None:
    task = upload()
    session.add(task)
    session.flush()
    session.expire_all()
    loaded = session.get(UploadTask, task.id)
    assert loaded is not None and loaded.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - loaded.created_at).total_seconds()) < 60


@pytest.mark.parametrize(
    "fields",
    [{"status": "Bogus"}, {"protocol": "ftp"}, {"chunk_size": 0}, {"file_size": None}],
)
def test_upload_constraints(session: Session, fields: dict[str, object]) -> None:
    session.add(upload(**fields))
    with pytest.raises(IntegrityError):
        session.flush()


def test_deferred_size_allowed(session: Session) -> None:
    session.add(upload(file_size=None, size_deferred=True, chunks_count=None, protocol="tus"))
    session.flush()


def test_chunk_primary_key_rejects_duplicates(session: Session) -> None:
    task = upload()
    session.add(task)
    session.flush()
    session.add(UploadChunk(upload_id=task.id, chunk_index=0, offset=0, size=5, sha256="0" * 64))
    session.flush()
    session.add(UploadChunk(upload_id=task.id, chunk_index=0, offset=0, size=5, sha256="0" * 64))
    with pytest.raises(IntegrityError):
        session.flush()


@pytest.mark.parametrize("fields", [{"priority": 101}, {"progress": -1.0}, {"type": "Nope"}])
def test_task_constraints(session: Session, fields: dict[str, object]) -> None:
    values: dict[str, object] = {
        "task_id": uuid.uuid4().hex,
        "name": "t",
        "type": "FileMove",
        "account_id": uuid.uuid4(),
        "parameters": {},
        "results": {},
    }
    values.update(fields)
    session.add(Task(**values))
    with pytest.raises(IntegrityError):
        session.flush()


def test_publish_appends_monotonic_events(session: Session) -> None:
    account = uuid.uuid4()
    publish(session, account, "upload.progress", {"progress": 5.0})
    publish(session, account, "upload.completed", {"fileId": "x"})
    assert session.scalars(select(Event).where(Event.account_id == account)).all() == []  # not before commit
    session.commit()
    first, second = written_events(session)
    assert second.id > first.id
    rows = session.scalars(select(Event).where(Event.account_id == account).order_by(Event.id)).all()
    assert [row.type for row in rows] == ["upload.progress", "upload.completed"]
    assert rows[0].data == {"progress": 5.0}
