"""The ``task.*`` events, in the drive seed's shapes, and the progress throttle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from hmacfs.events import publish
from hmacfs.models import Task, iso_utc


def public_results(results: dict[str, Any]) -> dict[str, Any]:
    """Results without internal checkpoint keys (those start with ``_``)."""
    return {key: value for key, value in results.items() if not key.startswith("_")}


def publish_task_event(session: Session, task: Task, kind: str, now: datetime) -> None:
    """Publish ``task.<kind>`` for ``task`` as it is now (call after changing it)."""
    if kind == "completed":
        publish_task_completed(session, task, task.results or {}, now)
        return
    data: dict[str, Any] = {"taskId": task.task_id, "name": task.name, "type": task.type}
    if kind == "created":
        data["createdAt"] = iso_utc(task.created_at or now)
    elif kind == "progress":
        data.update(progress=round(task.progress, 2), status=task.status, lastActivity=iso_utc(now))
    elif kind == "failed":
        data.update(failedAt=iso_utc(now), errorMessage=task.error_message, attempts=task.attempts)
    else:
        data.update(status=task.status, progress=round(task.progress, 2), at=iso_utc(now))
    publish(session, task.account_id, f"task.{kind}", data)


class _Named(Protocol):
    """Enough of a task (a ``Task`` row or a worker's ``ClaimedTask``) to name it in an event."""

    @property
    def task_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def account_id(self) -> uuid.UUID: ...


def publish_task_completed(session: Session, task: _Named, results: dict[str, Any], now: datetime) -> None:
    """Publish ``task.completed`` with the task's public ``results``."""
    data = {
        "taskId": task.task_id,
        "name": task.name,
        "type": task.type,
        "completedAt": iso_utc(now),
        "results": public_results(results),
    }
    publish(session, task.account_id, "task.completed", data)


def should_publish_progress(
    last_progress: float | None,
    last_at: float | None,
    progress: float,
    now: float,
    *,
    min_step: float,
    min_interval: float,
) -> bool:
    """Throttle like upload progress: when it moved ``min_step`` percent or ``min_interval`` passed."""
    if last_progress is None or last_at is None:
        return True
    if progress == last_progress:
        return False
    return progress - last_progress >= min_step or now - last_at >= min_interval or progress >= 100
