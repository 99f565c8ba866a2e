"""The admin views of migration 0007 answer from real rows, on both databases, and are read-only."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.models import Blob, File, Pool, Task, UploadTask, utcnow

VIEWS = ("admin_upload_progress", "admin_stale_uploads", "admin_task_queue", "admin_storage_by_account_pool")


def _upload(session: Session, account: uuid.UUID, *, status: str, idle: timedelta, **row: Any) -> UploadTask:
    now = utcnow()
    upload = UploadTask(
        task_id=uuid.uuid4().hex,
        protocol="drive",
        status=status,
        account_id=account,
        pool_id=DEFAULT_POOL_ID,
        file_name="f.bin",
        chunk_size=1024,
        created_at=now - idle - timedelta(seconds=10),
        last_activity=now - idle,
        **row,
    )
    session.add(upload)
    session.flush()
    return upload


def _rows(session: Session, view: str, account: uuid.UUID) -> list[dict[str, Any]]:
    result = session.execute(sa.text(f"SELECT * FROM {view}"))
    rows = [dict(row._mapping) for row in result]
    # A UUID column reads back as a uuid on PostgreSQL and as 32 hex digits on SQLite.
    return [row for row in rows if str(row["account_id"]).replace("-", "") == account.hex]


def test_upload_progress_and_speed(session: Session, account: uuid.UUID) -> None:
    upload = _upload(
        session, account, status="InProgress", idle=timedelta(0), file_size=4096, bytes_received=1024
    )
    (row,) = _rows(session, "admin_upload_progress", account)
    assert row["task_id"] == upload.task_id and row["pool_name"] == "default"
    assert float(row["progress_percent"]) == 25.0
    assert row["active_seconds"] == pytest.approx(10, abs=0.5)
    assert row["bytes_per_second"] == pytest.approx(102.4, rel=0.05)


def test_stale_uploads_are_the_open_ones_idle_over_an_hour(session: Session, account: uuid.UUID) -> None:
    stale = _upload(session, account, status="Paused", idle=timedelta(hours=2), file_size=10)
    _upload(session, account, status="InProgress", idle=timedelta(minutes=5), file_size=10)
    _upload(session, account, status="Completed", idle=timedelta(hours=5), file_size=10, bytes_received=10)
    rows = _rows(session, "admin_stale_uploads", account)
    assert [row["task_id"] for row in rows] == [stale.task_id]
    assert rows[0]["idle_seconds"] == pytest.approx(7200, abs=5)


def test_task_queue_by_status_and_priority(session: Session) -> None:
    account = uuid.uuid4()
    before = {(r.status, r.priority): r for r in session.execute(sa.text("SELECT * FROM admin_task_queue"))}
    later = utcnow() + timedelta(hours=1)
    for priority, run_after in ((7, None), (7, None), (7, later), (90, None)):
        session.add(
            Task(task_id=uuid.uuid4().hex, name="t", type="FileMove", account_id=account,
                 priority=priority, run_after=run_after, parameters={}, results={})
        )  # fmt: skip
    session.flush()
    rows = {(r.status, r.priority): r for r in session.execute(sa.text("SELECT * FROM admin_task_queue"))}

    def grew(key: tuple[str, int], column: str) -> int:
        old = before.get(key)
        return int(getattr(rows[key], column)) - (int(getattr(old, column)) if old else 0)

    assert grew(("Pending", 7), "tasks") == 3 and grew(("Pending", 7), "claimable") == 2
    assert grew(("Pending", 90), "tasks") == 1 and grew(("Pending", 90), "leased") == 0


def test_storage_by_account_and_pool(session: Session, account: uuid.UUID) -> None:
    other = Pool(name=f"views-{uuid.uuid4().hex[:8]}")
    session.add(other)
    session.flush()
    for size, pool_id in ((100, DEFAULT_POOL_ID), (50, DEFAULT_POOL_ID), (7, other.id)):
        blob = Blob(sha256=uuid.uuid4().hex * 2, size=size, shared=False, storage_key=uuid.uuid4().hex)
        session.add(blob)
        session.flush()
        session.add(
            File(account_id=account, pool_id=pool_id, name="f", content_type="x/y", size=size,
                 blob_id=blob.id, sha256=blob.sha256)
        )  # fmt: skip
    session.flush()
    rows = {row["pool_name"]: row for row in _rows(session, "admin_storage_by_account_pool", account)}
    assert {name: (r["files"], int(r["bytes"])) for name, r in rows.items()} == {
        "default": (2, 150),
        other.name: (1, 7),
    }


@pytest.mark.parametrize("view", VIEWS)
def test_views_are_read_only(session: Session, view: str) -> None:
    with pytest.raises(DatabaseError), session.begin_nested():
        session.execute(sa.text(f"DELETE FROM {view}"))
