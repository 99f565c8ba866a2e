"""The queue side of tasks: claiming with leases, renewing, releasing, finishing, retrying.

PostgreSQL is the broker. A claim is one ``UPDATE .. WHERE id IN (SELECT ..
FOR UPDATE SKIP LOCKED)``: concurrent workers never block on or take the same
row. Every later write by the worker is conditional on ``lease_owner`` still
being this worker, so a worker whose lease lapsed (and whose task was handed
to another) cannot overwrite the new owner's work.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, select, text, update
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.models import Task
from hmacfs.models.status import TaskStatus
from hmacfs.tasks.events import publish_task_event
from hmacfs.tasks.service import discard_partial_output


def _skip_locked(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def skip_wal_wait(session: Session) -> None:
    """Let this transaction's commit return before its WAL is flushed (PostgreSQL only).

    Crash-safe in the sense that matters: PostgreSQL may lose the last such
    commits in a crash of its own, but never applies part of one.
    """
    if _skip_locked(session):
        session.execute(text("SET LOCAL synchronous_commit TO off"))


def claim_tasks(session: Session, owner: str, now: datetime, lease: timedelta, limit: int = 1) -> list[Task]:
    """Take up to ``limit`` runnable tasks: highest priority first, FIFO within a priority.

    Sets the lease, status InProgress and counts the attempt, in one statement
    (one round trip). Commit to make the claim visible.
    """
    pending = (
        select(Task.id)
        .where(Task.status == TaskStatus.PENDING.value)
        .where((Task.run_after.is_(None)) | (Task.run_after <= now))
        .order_by(Task.priority.desc(), Task.created_at)
        .limit(limit)
    )
    if _skip_locked(session):
        pending = pending.with_for_update(skip_locked=True)
        # A claim lost in a database crash only puts the task back to Pending, and every
        # later write of the worker checks its lease: no need to wait for the WAL flush here.
        skip_wal_wait(session)
    claimed = session.scalars(
        update(Task)
        .where(Task.id.in_(pending.scalar_subquery()))
        .values(
            status=TaskStatus.IN_PROGRESS.value,
            lease_owner=owner,
            lease_expires_at=now + lease,
            attempts=Task.attempts + 1,
            started_at=case((Task.started_at.is_(None), now), else_=Task.started_at),
            last_activity=now,
            updated_at=now,
        )
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).all()
    return sorted(claimed, key=lambda t: (-t.priority, t.created_at, t.id))


def lock_owned(
    session: Session,
    row_id: uuid.UUID,
    owner: str,
    now: datetime | None = None,
    lease: timedelta | None = None,
) -> Task | None:
    """The task row, locked until commit, if this worker still holds it and it is still running.

    With ``now`` and ``lease`` the lease is renewed by the same statement (one round trip).
    """
    values: dict[str, Any] = {"lease_owner": owner}
    if now is not None and lease is not None:
        values.update(lease_expires_at=now + lease, last_activity=now)
    statement = (
        update(Task)
        .where(Task.id == row_id, Task.lease_owner == owner, Task.status == TaskStatus.IN_PROGRESS.value)
        .values(**values)
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return session.scalars(statement).first()


def status_of(session: Session, row_id: uuid.UUID) -> tuple[str | None, str | None]:
    """(status, lease_owner) of a task, or (None, None) when it is gone."""
    row = session.execute(select(Task.status, Task.lease_owner).where(Task.id == row_id)).first()
    return (row[0], row[1]) if row else (None, None)


def complete_task(session: Session, task: Task, results: dict[str, Any], now: datetime) -> None:
    merged = {key: value for key, value in (task.results or {}).items() if not key.startswith("_")}
    merged.update(results)
    task.results = merged
    task.status = TaskStatus.COMPLETED.value
    task.progress = 100.0
    _end(task, now)
    session.flush()
    publish_task_event(session, task, "completed", now)


def fail_task(session: Session, services: Services, task: Task, message: str, now: datetime) -> None:
    task.status = TaskStatus.FAILED.value
    task.error_message = message[:2000]
    task.results = {key: value for key, value in (task.results or {}).items() if not key.startswith("_")}
    discard_partial_output(services, task)
    _end(task, now)
    session.flush()
    publish_task_event(session, task, "failed", now)


def _end(task: Task, now: datetime) -> None:
    task.sealed_secret = None  # the password is erased once the task ends
    task.lease_owner = task.lease_expires_at = None
    task.completed_at = task.last_activity = task.updated_at = now


def release_task(session: Session, row_id: uuid.UUID, owner: str, now: datetime) -> bool:
    """Give a task back without counting the attempt (shutdown, pause): running -> Pending.

    A task paused or cancelled meanwhile keeps that status. Returns False when the lease was lost.
    """
    result = session.execute(
        update(Task)
        .where(Task.id == row_id, Task.lease_owner == owner)
        .values(
            status=case(
                (Task.status == TaskStatus.IN_PROGRESS.value, TaskStatus.PENDING.value), else_=Task.status
            ),
            lease_owner=None,
            lease_expires_at=None,
            attempts=case((Task.attempts > 0, Task.attempts - 1), else_=0),
            last_activity=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def finish_cancelled(
    session: Session, services: Services, row_id: uuid.UUID, owner: str, now: datetime
) -> None:
    """After a worker stopped for a cancel: remove partial output and drop the lease."""
    task = session.get(Task, row_id, with_for_update=True, populate_existing=True)
    if task is None or task.lease_owner != owner:
        return
    discard_partial_output(services, task)
    task.lease_owner = task.lease_expires_at = None
    task.sealed_secret = None
    session.flush()


def requeue_lapsed(session: Session, services: Services, now: datetime, limit: int = 100) -> int:
    """Tasks whose worker died: back to Pending, or Failed after ``tasks.max_attempts``."""
    query = (
        select(Task)
        .where(Task.status == TaskStatus.IN_PROGRESS.value, Task.lease_expires_at < now)
        .limit(limit)
    )
    if _skip_locked(session):
        query = query.with_for_update(skip_locked=True)
    lapsed = session.scalars(query).all()
    max_attempts = services.settings.tasks.max_attempts
    for task in lapsed:
        if task.attempts >= max_attempts:
            fail_task(session, services, task, f"worker lost {task.attempts} times (tasks.max_attempts)", now)
            continue
        task.status = TaskStatus.PENDING.value
        task.lease_owner = task.lease_expires_at = None
        task.last_activity = task.updated_at = now
    session.flush()
    return len(lapsed)
