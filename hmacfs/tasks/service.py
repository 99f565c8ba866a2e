"""Submitting tasks and moving them through their lifecycle on a user's request.

Entry point for other modules: :func:`submit_task` (e.g. a Drive upload created
with ``encryptPassword`` submits ``FileEncrypt`` with ``secret=password`` on
completion). Services flush; the caller commits.

Status changes a user may ask for::

    pause:  Pending -> Paused;  InProgress -> Paused (the worker stops at its next checkpoint)
    resume: Paused -> Pending (or back to InProgress if the worker has not stopped yet)
    cancel: Pending | Paused | InProgress -> Cancelled (the worker removes partial output)

Anything else is a 409 with code ``TASK_INVALID_TRANSITION``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.errors import Conflict, NotFound, ValidationFailed
from hmacfs.models import Task
from hmacfs.models.status import TaskStatus, TaskType
from hmacfs.tasks.counting import count_finished
from hmacfs.tasks.events import publish_task_event
from hmacfs.tasks.output import discard_partial_output

SECRET_PARAMETER = "password"  # noqa: S105 (the name of the parameter, not a password)
_SUBMITTABLE = {t.value for t in TaskType} - {TaskType.FILE_UPLOAD.value}


def new_task_id() -> str:
    return uuid.uuid4().hex


def _invalid(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {problem}", details={"field": field})


def _handler_name(services: Services, type: str, parameters: dict[str, Any]) -> tuple[str, str | None]:
    if type not in _SUBMITTABLE:
        raise _invalid("type", f"unknown task type {type!r}")
    if type != TaskType.CUSTOM.value:
        return type, None
    name = parameters.get("handler")
    if not isinstance(name, str) or not name:
        raise _invalid("parameters.handler", "required for Custom tasks")
    if name in _SUBMITTABLE or services.task_types.display_name(name) is None:
        raise _invalid("parameters.handler", f"no custom handler {name!r} is registered")
    return name, name


def validate_parameters(
    session: Session, services: Services, account_id: uuid.UUID, handler: str, parameters: dict[str, Any]
) -> None:
    """Run the handler's validator; its ``ValueError("field: problem")`` becomes a 400 naming the field."""
    if services.task_types.display_name(handler) is None:
        raise _invalid("type", f"no handler for {handler!r} in this server")
    try:
        services.task_types.validate(handler, parameters, account_id, session)
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise _invalid(f"parameters.{field}", problem or field) from None


def submit_task(
    session: Session,
    services: Services,
    account_id: uuid.UUID,
    type: str,
    parameters: dict[str, Any],
    *,
    name: str | None = None,
    description: str | None = None,
    priority: int = 0,
    secret: str | None = None,
) -> Task:
    """Validate and queue a task; a ``password`` parameter (or ``secret``) is sealed, never stored.

    Raises ValidationFailed (400) naming the bad field. Flushes and publishes ``task.created``.
    """
    if not isinstance(parameters, dict):
        raise _invalid("parameters", "must be an object")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
        raise _invalid("priority", "must be an integer 0..100")
    parameters = dict(parameters)
    password = parameters.pop(SECRET_PARAMETER, None)
    if password is not None and (not isinstance(password, str) or not password):
        raise _invalid(f"parameters.{SECRET_PARAMETER}", "must be a non-empty string")
    secret = secret if secret is not None else password
    handler, custom_type = _handler_name(services, type, parameters)
    check = dict(parameters, **({SECRET_PARAMETER: secret} if secret is not None else {}))
    validate_parameters(session, services, account_id, handler, check)
    display_name = services.task_types.display_name(handler)
    now = services.clock.now()
    task = Task(
        id=uuid.uuid4(),
        task_id=new_task_id(),
        name=(name or display_name or type)[:255],
        description=description,
        type=type,
        custom_type=custom_type,
        status=TaskStatus.PENDING.value,
        account_id=account_id,
        progress=0.0,
        parameters=parameters,
        results={},
        priority=priority,
        attempts=0,
        last_activity=now,
        created_at=now,
        updated_at=now,
    )
    if secret is not None:
        task.sealed_secret = services.sealer.seal(secret, context=task.task_id)
    session.add(task)
    session.flush()
    publish_task_event(session, task, "created", now)
    return task


def get_task(session: Session, account_id: uuid.UUID, task_id: str, *, lock: bool = False) -> Task:
    """The account's task; NotFound (404) for a missing task and for another account's."""
    query = select(Task).where(Task.task_id == task_id, Task.account_id == account_id)
    if lock:
        query = query.with_for_update()
    task = session.scalars(query).first()
    if task is None:
        raise NotFound("task not found", code="TASK_NOT_FOUND")
    return task


def _transition_conflict(task: Task, action: str) -> Conflict:
    return Conflict(
        f"cannot {action} a task that is {task.status}",
        code="TASK_INVALID_TRANSITION",
        details={"status": task.status, "action": action},
    )


def _lease_held(task: Task, now: datetime) -> bool:
    return task.lease_owner is not None and task.lease_expires_at is not None and task.lease_expires_at > now


def pause_task(session: Session, services: Services, account_id: uuid.UUID, task_id: str) -> Task:
    task = get_task(session, account_id, task_id, lock=True)
    if task.status not in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS):
        raise _transition_conflict(task, "pause")
    return _set_status(session, services, task, TaskStatus.PAUSED, "paused")


def resume_task(session: Session, services: Services, account_id: uuid.UUID, task_id: str) -> Task:
    task = get_task(session, account_id, task_id, lock=True)
    if task.status != TaskStatus.PAUSED:
        raise _transition_conflict(task, "resume")
    # A worker that has not reached its checkpoint yet simply carries on.
    running = _lease_held(task, services.clock.now())
    status = TaskStatus.IN_PROGRESS if running else TaskStatus.PENDING
    return _set_status(session, services, task, status, "resumed")


def cancel_task(session: Session, services: Services, account_id: uuid.UUID, task_id: str) -> Task:
    task = get_task(session, account_id, task_id, lock=True)
    if task.status not in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.PAUSED):
        raise _transition_conflict(task, "cancel")
    now = services.clock.now()
    if not _lease_held(task, now):
        # No worker holds it: remove what a paused run left behind right here.
        discard_partial_output(services, task.task_id)
        task.lease_owner = task.lease_expires_at = None
    task.sealed_secret = None
    task.completed_at = now
    ran = None if task.started_at is None else (now - task.started_at).total_seconds()
    count_finished(session, services, task.type, TaskStatus.CANCELLED.value, ran)
    return _set_status(session, services, task, TaskStatus.CANCELLED, "cancelled")


def _set_status(session: Session, services: Services, task: Task, status: str, kind: str) -> Task:
    now = services.clock.now()
    task.status = status
    task.last_activity = now
    session.flush()
    publish_task_event(session, task, kind, now)
    return task
