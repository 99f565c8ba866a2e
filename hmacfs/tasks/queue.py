"""The queue side of tasks: claiming with leases, renewing, releasing, finishing, retrying.

PostgreSQL is the broker. A claim is one ``UPDATE .. WHERE id IN (SELECT ..
FOR UPDATE SKIP LOCKED)``: concurrent workers never block on or take the same
row. Every later write by the worker is conditional on ``lease_owner`` still
being this worker, so a worker whose lease lapsed (and whose task was handed
to another) cannot overwrite the new owner's work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Integer, Table, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.models import Task
from hmacfs.models.status import TaskStatus
from hmacfs.tasks.counting import count_finished
from hmacfs.tasks.events import publish_task_event
from hmacfs.tasks.output import discard_partial_output


@dataclass(frozen=True)
class ClaimedTask:
    """What a worker needs of a task it claimed: read once, by the claim itself."""

    id: uuid.UUID
    task_id: str
    account_id: uuid.UUID
    name: str
    type: str
    custom_type: str | None
    parameters: dict[str, Any]
    results: dict[str, Any]
    sealed_secret: bytes | None
    priority: int
    created_at: datetime
    attempts: int


_TASKS = cast(Table, Task.__table__)
_CLAIMED = [_TASKS.c[field.name] for field in fields(ClaimedTask)]
_OWNER = bindparam("owner", type_=_TASKS.c.lease_owner.type)
_NOW = bindparam("now", type_=_TASKS.c.last_activity.type)

# The worker's statements are built once: building and cache-keying a statement
# cost more Python time than running it. SQLite renders no FOR UPDATE (one writer).
_PENDING = (
    select(_TASKS.c.id)
    .where(_TASKS.c.status == TaskStatus.PENDING.value)
    .where(or_(_TASKS.c.run_after.is_(None), _TASKS.c.run_after <= _NOW))
    .order_by(_TASKS.c.priority.desc(), _TASKS.c.created_at)
    .limit(bindparam("limit", type_=Integer()))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(_TASKS)
    .where(_TASKS.c.id.in_(_PENDING.scalar_subquery()))
    .values(
        status=TaskStatus.IN_PROGRESS.value,
        lease_owner=_OWNER,
        lease_expires_at=bindparam("expires", type_=_TASKS.c.lease_expires_at.type),
        attempts=_TASKS.c.attempts + 1,
        started_at=func.coalesce(_TASKS.c.started_at, _NOW),
        last_activity=_NOW,
        updated_at=_NOW,
    )
    .returning(*_CLAIMED)
)
_COMPLETE = (
    update(_TASKS)
    .where(
        _TASKS.c.id == bindparam("row_id", type_=_TASKS.c.id.type),
        _TASKS.c.lease_owner == _OWNER,
        _TASKS.c.status == TaskStatus.IN_PROGRESS.value,
    )
    .values(
        status=TaskStatus.COMPLETED.value,
        progress=100.0,
        results=bindparam("new_results", type_=_TASKS.c.results.type),
        sealed_secret=None,  # the password is erased once the task ends
        lease_owner=None,
        lease_expires_at=None,
        completed_at=_NOW,
        last_activity=_NOW,
        updated_at=_NOW,
    )
)
_SET_RESULTS = (
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("row_id", type_=_TASKS.c.id.type))
    .values(results=bindparam("new_results", type_=_TASKS.c.results.type))
)


def claim_tasks(
    session: Session, owner: str, now: datetime, lease: timedelta, limit: int = 1
) -> list[ClaimedTask]:
    """Take up to ``limit`` runnable tasks: highest priority first, FIFO within a priority.

    Sets the lease, status InProgress and counts the attempt, in one statement
    (one round trip; Core, not the ORM: the worker needs no Task objects). Commit
    to make the claim visible.
    """
    parameters = {"owner": owner, "now": now, "expires": now + lease, "limit": limit}
    claimed = [ClaimedTask(*row) for row in session.execute(_CLAIM, parameters)]
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


def complete_owned(
    session: Session, row_id: uuid.UUID, owner: str, results: dict[str, Any], now: datetime
) -> bool:
    """Mark the task Completed with ``results`` if this worker still holds it and it is still running.

    One conditional UPDATE: it checks the lease and takes the row lock (kept until
    commit), so nothing can pause, cancel or hand the task over before this
    transaction ends. False (nothing changed) when the lease was lost or the task
    was paused or cancelled.
    """
    parameters = {"row_id": row_id, "owner": owner, "new_results": results, "now": now}
    result = session.execute(_COMPLETE, parameters)
    return bool(cast(CursorResult[Any], result).rowcount)


def set_results(session: Session, row_id: uuid.UUID, results: dict[str, Any]) -> None:
    """Overwrite the results of a task this transaction already holds (see ``complete_owned``)."""
    session.execute(_SET_RESULTS, {"row_id": row_id, "new_results": results})


def fail_task(session: Session, services: Services, task: Task, message: str, now: datetime) -> None:
    task.status = TaskStatus.FAILED.value
    task.error_message = message[:2000]
    task.results = {key: value for key, value in (task.results or {}).items() if not key.startswith("_")}
    discard_partial_output(services, task.task_id)
    _end(task, now)
    session.flush()
    publish_task_event(session, task, "failed", now)
    ran = None if task.started_at is None else (now - task.started_at).total_seconds()
    count_finished(session, services, task.type, TaskStatus.FAILED.value, ran)


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
    discard_partial_output(services, task.task_id)
    task.lease_owner = task.lease_expires_at = None
    task.sealed_secret = None
    session.flush()


def requeue_lapsed(session: Session, services: Services, now: datetime, limit: int = 100) -> int:
    """Tasks whose worker died: back to Pending, or Failed after ``tasks.max_attempts``."""
    query = (
        select(Task)
        .where(Task.status == TaskStatus.IN_PROGRESS.value, Task.lease_expires_at < now)
        .limit(limit)
        # The rows as they are now, even if this session holds older copies (the claim is Core).
        .execution_options(populate_existing=True)
        .with_for_update(skip_locked=True)  # SQLite renders none: one writer
    )
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


def claimable_depth(session: Session, now: datetime) -> int:
    """How many Pending tasks a worker could claim at ``now`` (read through ``ix_tasks_pending_priority``)."""
    query = (
        select(func.count())
        .select_from(_TASKS)
        .where(_TASKS.c.status == TaskStatus.PENDING.value)
        .where(or_(_TASKS.c.run_after.is_(None), _TASKS.c.run_after <= now))
    )
    return int(session.scalar(query) or 0)


def lease_owners(session: Session, prefix: str) -> set[str]:
    """The workers (ids starting with ``prefix``) that hold a running task's lease."""
    query = (
        select(_TASKS.c.lease_owner)
        .where(_TASKS.c.status == TaskStatus.IN_PROGRESS.value)
        .where(_TASKS.c.lease_owner.startswith(prefix, autoescape=True))
        .distinct()
    )
    return {owner for owner in session.scalars(query) if owner is not None}
