"""Reading upload tasks (lists, statistics, speed) and retiring old ones."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.errors import BadRequest
from hmacfs.models import UploadChunk, UploadTask
from hmacfs.models.status import OPEN_STATUSES, UploadStatus
from hmacfs.storage import BlobStore
from hmacfs.uploads.chunking import progress_percent
from hmacfs.uploads.counting import count_ended
from hmacfs.uploads.notify import publish_failed
from hmacfs.uploads.service import part_store

SORT_COLUMNS: dict[str, ColumnElement[object]] = {
    "filename": UploadTask.file_name,  # type: ignore[dict-item]
    "filesize": UploadTask.file_size,  # type: ignore[dict-item]
    "createdat": UploadTask.created_at,  # type: ignore[dict-item]
    "updatedat": UploadTask.updated_at,  # type: ignore[dict-item]
    "lastactivity": UploadTask.last_activity,  # type: ignore[dict-item]
}
MAX_PAGE = 100
SPEED_WINDOW = 10  # recent chunks used to estimate the speed


@dataclass(frozen=True)
class TaskFilter:
    status: str | None = None
    sort_by: str = "lastActivity"
    descending: bool = True
    offset: int = 0
    limit: int = 50


def _owned(account_id: uuid.UUID) -> ColumnElement[bool]:
    return (UploadTask.account_id == account_id) & UploadTask.deleted_at.is_(None)


def check_filter(query: TaskFilter) -> TaskFilter:
    if query.status is not None and query.status not in {s.value for s in UploadStatus}:
        raise BadRequest("unknown status", code="INVALID_STATUS", details={"field": "status"})
    if query.sort_by.lower() not in SORT_COLUMNS:
        raise BadRequest("unknown sort field", code="INVALID_SORT", details={"field": "sortBy"})
    if query.offset < 0 or not 1 <= query.limit <= MAX_PAGE:
        raise BadRequest(
            f"offset >= 0 and limit 1..{MAX_PAGE}", code="INVALID_PAGE", details={"field": "limit"}
        )
    return query


def list_uploads(session: Session, account_id: uuid.UUID, query: TaskFilter) -> tuple[list[UploadTask], int]:
    """A page of the account's tasks and the total matching the filter."""
    condition = _owned(account_id)
    if query.status is not None:
        condition = condition & (UploadTask.status == query.status)
    total = session.scalar(select(func.count()).select_from(UploadTask).where(condition)) or 0
    column = SORT_COLUMNS[query.sort_by.lower()]
    order = column.desc() if query.descending else column.asc()
    page = (
        select(UploadTask)
        .where(condition)
        .order_by(order, UploadTask.id)
        .offset(query.offset)
        .limit(query.limit)
    )
    return list(session.scalars(page)), int(total)


def recent_uploads(session: Session, account_id: uuid.UUID, limit: int) -> list[UploadTask]:
    return list_uploads(session, account_id, check_filter(TaskFilter(limit=limit)))[0]


def upload_stats(session: Session, account_id: uuid.UUID) -> dict[str, object]:
    """The drive seed's statistics for one account."""
    rows = session.execute(
        select(UploadTask.status, func.count(), func.coalesce(func.sum(UploadTask.bytes_received), 0))
        .where(_owned(account_id))
        .group_by(UploadTask.status)
    ).all()
    counts = {status: int(count) for status, count, _ in rows}
    tasks = list(session.scalars(select(UploadTask).where(_owned(account_id))))
    progress = [progress_percent(t.bytes_received, t.file_size) for t in tasks]
    recent = sorted(tasks, key=lambda t: t.last_activity, reverse=True)[:5]
    return {
        "totalTasks": sum(counts.values()),
        "inProgressTasks": sum(counts.get(s.value, 0) for s in OPEN_STATUSES),
        "completedTasks": counts.get(UploadStatus.COMPLETED.value, 0),
        "failedTasks": counts.get(UploadStatus.FAILED.value, 0),
        "expiredTasks": counts.get(UploadStatus.EXPIRED.value, 0),
        "totalUploadedBytes": sum(int(received) for _, _, received in rows),
        "averageProgress": round(sum(progress) / len(progress), 2) if progress else 0.0,
        "recentActivity": recent,
    }


def upload_speed(session: Session, task: UploadTask) -> float:
    """Bytes per second over the most recent chunks (0 when fewer than two)."""
    rows = session.execute(
        select(UploadChunk.size, UploadChunk.received_at)
        .where(UploadChunk.upload_id == task.id)
        .order_by(UploadChunk.received_at.desc())
        .limit(SPEED_WINDOW)
    ).all()
    if len(rows) < 2:
        return 0.0
    span = (rows[0][1] - rows[-1][1]).total_seconds()
    # The oldest chunk's bytes arrived before the window opened.
    moved = sum(int(size) for size, _ in rows[:-1])
    return moved / span if span > 0 else 0.0


def eta_seconds(task: UploadTask, speed: float) -> float | None:
    if speed <= 0 or task.file_size is None:
        return None
    return round(max(0, task.file_size - task.bytes_received) / speed, 1)


def cleanup_finished(session: Session, store: BlobStore, account_id: uuid.UUID) -> int:
    """Remove the account's failed and expired tasks (rows and any bytes left); return how many."""
    doomed = list(
        session.scalars(
            select(UploadTask).where(
                _owned(account_id),
                UploadTask.status.in_([UploadStatus.FAILED.value, UploadStatus.EXPIRED.value]),
            )
        )
    )
    for task in doomed:
        part_store(store, task).delete_part(task.task_id)
        session.execute(delete(UploadChunk).where(UploadChunk.upload_id == task.id))
        session.delete(task)
    session.flush()
    return len(doomed)


def expire_stale_uploads(session: Session, services: Services, now: datetime, limit: int = 500) -> int:
    """Maintenance step: unfinished uploads idle past ``uploads.max_resumable_age`` become
    Expired and their parts are deleted; finished tus partials past that age lose their parts."""
    cutoff = now - services.settings.uploads.max_resumable_age
    stale = list(
        session.scalars(
            select(UploadTask)
            .where(UploadTask.status.in_([s.value for s in OPEN_STATUSES]), UploadTask.last_activity < cutoff)
            .limit(limit)
        )
    )
    for task in stale:
        task.status = UploadStatus.EXPIRED.value
        task.error_message = "expired after inactivity"
        part_store(services.store, task).delete_part(task.task_id)
        publish_failed(session, task, now, task.error_message)
        count_ended(session, services.metrics, task.protocol, "expired")
    _drop_old_partials(session, services, cutoff, limit)
    session.flush()
    return len(stale)


def _drop_old_partials(session: Session, services: Services, cutoff: datetime, limit: int) -> None:
    partials = session.scalars(
        select(UploadTask)
        .where(UploadTask.concat == "partial", UploadTask.status == UploadStatus.COMPLETED.value)
        .where(UploadTask.last_activity < cutoff)
        .limit(limit)
    )
    for task in partials:
        part_store(services.store, task).delete_part(task.task_id)
        task.status = UploadStatus.EXPIRED.value


def expires_at(task: UploadTask, max_age: timedelta) -> datetime:
    """When an unfinished upload will expire if nothing more arrives (tus ``Upload-Expires``)."""
    return task.last_activity + max_age
