"""The upload events (the drive seed's shapes), published through ``hmacfs.events.publish``.

Anonymous uploads (tus into an anonymous pool, X-Signature chunked sessions)
have no account to notify, so they publish nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from hmacfs.config import EventsSettings
from hmacfs.events import publish
from hmacfs.models import File, UploadTask, iso_utc
from hmacfs.uploads.chunking import progress_percent, should_publish


def progress_data(task: UploadTask) -> dict[str, object]:
    return {
        "taskId": task.task_id,
        "fileName": task.file_name,
        "fileSize": task.file_size,
        "chunksUploaded": task.chunks_uploaded,
        "chunksTotal": task.chunks_count,
        "progress": progress_percent(task.bytes_received, task.file_size),
        "status": task.status,
        "lastActivity": iso_utc(task.last_activity),
    }


def publish_progress(session: Session, settings: EventsSettings, task: UploadTask, now: datetime) -> bool:
    """Publish ``upload.progress`` unless one went out within the last step or interval.

    The last published progress lives on the task row, and this publication
    is recorded there only if no other one was since ``task`` was read (a
    compare-and-set): concurrent chunks of one upload, even on other
    processes, never both publish, also on PostgreSQL where each chunk's
    counts commit before this runs.
    """
    if task.account_id is None:
        return False
    progress = progress_percent(task.bytes_received, task.file_size)
    last_at = task.progress_published_at
    elapsed = None if last_at is None else (now - last_at).total_seconds()
    interval = settings.progress_min_interval.total_seconds()
    if not should_publish(progress, task.progress_published, elapsed, settings.progress_min_step, interval):
        return False
    if not _claim(session, task, progress, now):
        return False  # another request published meanwhile
    publish(session, task.account_id, "upload.progress", progress_data(task))
    return True


def _claim(session: Session, task: UploadTask, progress: float, now: datetime) -> bool:
    """Record a publication of ``progress`` on the row if the last one recorded is still
    the one ``task`` holds; then on ``task`` too, as committed (nothing to flush)."""
    claimed = session.execute(
        update(UploadTask)
        .where(
            UploadTask.id == task.id,
            UploadTask.progress_published.is_not_distinct_from(task.progress_published),
            UploadTask.progress_published_at.is_not_distinct_from(task.progress_published_at),
        )
        .values(progress_published=progress, progress_published_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    set_committed_value(task, "progress_published", progress)
    set_committed_value(task, "progress_published_at", now)
    return True


def publish_completed(session: Session, task: UploadTask, file: File) -> None:
    if task.account_id is None:
        return
    data = {
        "taskId": task.task_id,
        "fileId": str(file.id),
        "fileName": task.file_name,
        "fileSize": task.file_size,
        "completedAt": iso_utc(task.completed_at),
    }
    publish(session, task.account_id, "upload.completed", data)


def publish_failed(session: Session, task: UploadTask, now: datetime, message: str) -> None:
    if task.account_id is None:
        return
    data = {
        "taskId": task.task_id,
        "fileName": task.file_name,
        "fileSize": task.file_size,
        "failedAt": iso_utc(now),
        "errorMessage": message,
    }
    publish(session, task.account_id, "upload.failed", data)
