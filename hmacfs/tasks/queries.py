"""Reading tasks for their owner: lists, details, statistics; and deleting finished ones."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, false, func, literal, select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.errors import ValidationFailed
from hmacfs.models import Task, UploadTask, iso_utc
from hmacfs.models.status import FINISHED_STATUSES, TaskStatus, TaskType, values
from hmacfs.tasks import file_uploads
from hmacfs.tasks.events import public_results
from hmacfs.tasks.output import discard_partial_output

SORT_COLUMNS = {
    "createdAt": Task.created_at,
    "lastActivity": Task.last_activity,
    "priority": Task.priority,
    "progress": Task.progress,
    "name": Task.name,
    "status": Task.status,
    "type": Task.type,
}
MAX_LIMIT = 100


def list_tasks(
    session: Session,
    account_id: uuid.UUID,
    *,
    type: str | None = None,
    status: str | None = None,
    sort_by: str = "lastActivity",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Task | UploadTask], int]:
    """One page of the account's tasks, its uploads (as ``FileUpload``) among them, and the
    total count; ValidationFailed for bad arguments."""
    if type is not None and type not in values(TaskType):
        raise ValidationFailed(f"type: unknown task type {type!r}", details={"field": "type"})
    if status is not None and status not in values(TaskStatus):
        raise ValidationFailed(f"status: unknown status {status!r}", details={"field": "status"})
    if sort_by not in SORT_COLUMNS:
        raise ValidationFailed(f"sortBy: one of {', '.join(SORT_COLUMNS)}", details={"field": "sortBy"})
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise ValidationFailed(f"limit: 1..{MAX_LIMIT}, offset >= 0", details={"field": "limit"})
    tasks = select(literal("task").label("kind"), Task.id.label("id"), SORT_COLUMNS[sort_by].label("key"))
    tasks = tasks.where(Task.account_id == account_id)
    if type is not None:
        tasks = tasks.where(Task.type == type)
    if status is not None:
        tasks = tasks.where(Task.status == status)
    uploads = file_uploads.upload_keys(account_id, status, sort_by)
    if type is not None and type != file_uploads.FILE_UPLOAD:
        uploads = uploads.where(false())
    return file_uploads.page_of_both(
        session, tasks, uploads, descending=descending, offset=offset, limit=limit
    )


def serialize(task: Task) -> dict[str, Any]:
    """The API shape of a task (never the sealed secret or internal checkpoints)."""
    return {
        "taskId": task.task_id,
        "name": task.name,
        "description": task.description,
        "type": task.type,
        "customType": task.custom_type,
        "status": task.status,
        "progress": round(task.progress, 2),
        "priority": task.priority,
        "parameters": task.parameters,
        "results": public_results(task.results or {}),
        "errorMessage": task.error_message,
        "attempts": task.attempts,
        "createdAt": iso_utc(task.created_at),
        "updatedAt": iso_utc(task.updated_at),
        "lastActivity": iso_utc(task.last_activity),
        "startedAt": iso_utc(task.started_at),
        "completedAt": iso_utc(task.completed_at),
    }


def details(task: Task, now: datetime) -> dict[str, Any]:
    """``serialize`` plus speed (units of work per second, and percent per second) and ETA."""
    data = serialize(task)
    processed = (task.results or {}).get("_processed") or {}
    end = task.completed_at or (task.last_activity if task.status == TaskStatus.IN_PROGRESS else now)
    elapsed = (end - task.started_at).total_seconds() if task.started_at else 0.0
    percent_rate = task.progress / elapsed if elapsed > 0 else None
    remaining = 100.0 - task.progress
    eta = remaining / percent_rate if percent_rate and task.status == TaskStatus.IN_PROGRESS else None
    data.update(
        processed=processed.get("done"),
        total=processed.get("total"),
        elapsedSeconds=round(elapsed, 3),
        speed=round(processed["done"] / elapsed, 3) if elapsed > 0 and processed.get("done") else None,
        progressPerSecond=round(percent_rate, 4) if percent_rate else None,
        etaSeconds=round(eta, 1) if eta is not None else None,
        leaseExpiresAt=iso_utc(task.lease_expires_at),
        hasSecret=task.sealed_secret is not None,
    )
    return data


def task_stats(session: Session, account_id: uuid.UUID) -> dict[str, Any]:
    """Counts of the account's tasks by status and type, its uploads counted as ``FileUpload``."""
    rows: list[tuple[str, str, int]] = [
        (status, type, count)
        for status, type, count in session.execute(
            select(Task.status, Task.type, func.count())
            .where(Task.account_id == account_id)
            .group_by(Task.status, Task.type)
        )
    ]
    uploads = file_uploads.upload_counts(session, account_id)
    rows += [(status, file_uploads.FILE_UPLOAD, count) for status, count in uploads.items()]
    by_status = dict.fromkeys(values(TaskStatus), 0)
    by_type: dict[str, int] = {}
    for status, type, count in rows:
        by_status[status] = by_status.get(status, 0) + count
        by_type[type] = by_type.get(type, 0) + count
    return {"total": sum(by_status.values()), "byStatus": by_status, "byType": by_type}


def delete_finished(
    session: Session, services: Services, account_id: uuid.UUID | None, before: datetime | None
) -> int:
    """Delete finished tasks (of one account, or all), optionally only those finished before ``before``."""
    query = select(Task).where(Task.status.in_([s.value for s in FINISHED_STATUSES]))
    if account_id is not None:
        query = query.where(Task.account_id == account_id)
    if before is not None:
        query = query.where(Task.last_activity < before)
    doomed = session.scalars(query.limit(10_000)).all()
    for task in doomed:
        discard_partial_output(services, task.task_id)
    if doomed:
        session.execute(delete(Task).where(Task.id.in_([task.id for task in doomed])))
    session.flush()
    return len(doomed)


def cleanup_step(session: Session, services: Services, now: datetime) -> int:
    """Maintenance: finished tasks older than ``tasks.retention`` go."""
    return delete_finished(session, services, None, now - services.settings.tasks.retention)
