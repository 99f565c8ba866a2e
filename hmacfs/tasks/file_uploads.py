"""Uploads as the seed's ``FileUpload`` tasks: a read-only projection of ``upload_tasks``
into ``/api/tasks`` (list, show, details, stats).

This is the one module outside ``uploads/`` that reads ``upload_tasks``: one
page of an account's tasks interleaves both tables by the requested sort, so
the two are merged in one ``UNION ALL`` query rather than in Python. It never
writes: uploads move through their own protocol (Drive, chunked, tus, ...),
and asking ``/api/tasks`` to pause, resume or cancel one is refused with
``FILE_UPLOAD_READ_ONLY`` (409).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from hmacfs.errors import Conflict
from hmacfs.models import Task, UploadTask
from hmacfs.models.status import TaskType

FILE_UPLOAD = TaskType.FILE_UPLOAD.value

# Sort keys of an upload, by the API's sortBy names (see hmacfs.tasks.queries.SORT_COLUMNS).
_PROGRESS = case(
    (UploadTask.file_size.is_(None) | (UploadTask.file_size == 0), 0.0),
    (UploadTask.bytes_received >= UploadTask.file_size, 100.0),
    else_=UploadTask.bytes_received * 100.0 / UploadTask.file_size,
)
UPLOAD_SORT_KEYS: dict[str, Any] = {
    "createdAt": UploadTask.created_at,
    "lastActivity": UploadTask.last_activity,
    "priority": literal(0),
    "progress": _PROGRESS,
    "name": UploadTask.file_name,
    "status": UploadTask.status,
    "type": literal(FILE_UPLOAD),
}


def _visible(account_id: uuid.UUID, status: str | None) -> list[ColumnElement[bool]]:
    conditions = [UploadTask.account_id == account_id, UploadTask.deleted_at.is_(None)]
    if status is not None:
        conditions.append(UploadTask.status == status)
    return conditions


def upload_keys(account_id: uuid.UUID, status: str | None, sort_by: str) -> Select[Any, Any, Any]:
    """(kind, id, sort key) of the account's visible uploads, to union with the tasks' own."""
    return select(
        literal("upload").label("kind"), UploadTask.id.label("id"), UPLOAD_SORT_KEYS[sort_by].label("key")
    ).where(*_visible(account_id, status))


def page_of_both(
    session: Session,
    task_keys: Select[Any, Any, Any],
    upload_query: Select[Any, Any, Any],
    *,
    descending: bool,
    offset: int,
    limit: int,
) -> tuple[list[Task | UploadTask], int]:
    """One page of tasks and uploads merged by their sort key (id breaks ties), and the total."""
    merged = union_all(task_keys, upload_query).subquery()
    total = session.scalar(select(func.count()).select_from(merged)) or 0
    order = merged.c.key.desc() if descending else merged.c.key.asc()
    rows = session.execute(
        select(merged.c.kind, merged.c.id).order_by(order, merged.c.id).offset(offset).limit(limit)
    ).all()
    tasks = {
        t.id: t for t in session.scalars(select(Task).where(Task.id.in_([i for k, i in rows if k == "task"])))
    }
    uploads = {
        u.id: u
        for u in session.scalars(
            select(UploadTask).where(UploadTask.id.in_([i for k, i in rows if k == "upload"]))
        )
    }
    return [tasks[i] if kind == "task" else uploads[i] for kind, i in rows], total


def find_upload(session: Session, account_id: uuid.UUID, task_id: str) -> UploadTask | None:
    """The account's (not deleted) upload with public id ``task_id``, if any."""
    return session.scalars(
        select(UploadTask).where(UploadTask.task_id == task_id, *_visible(account_id, None))
    ).first()


def upload_counts(session: Session, account_id: uuid.UUID) -> dict[str, int]:
    """The account's visible uploads by status."""
    rows = session.execute(
        select(UploadTask.status, func.count()).where(*_visible(account_id, None)).group_by(UploadTask.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def read_only(upload: UploadTask, action: str) -> Conflict:
    """The refusal of ``action`` (pause, resume, cancel) on an upload through /api/tasks."""
    return Conflict(
        f"cannot {action} a FileUpload through /api/tasks; uploads move through their own API",
        code="FILE_UPLOAD_READ_ONLY",
        details={"action": action, "type": FILE_UPLOAD, "protocol": upload.protocol, "status": upload.status},
    )
