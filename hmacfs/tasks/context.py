"""What a running handler sees: its parameters, checkpoints, and transactions tied to its lease."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.models import Task
from hmacfs.models.status import TaskStatus
from hmacfs.tasks import queue
from hmacfs.tasks.counting import count_finished
from hmacfs.tasks.events import (
    public_results,
    publish_task_completed,
    publish_task_event,
    should_publish_progress,
)
from hmacfs.tasks.output import part_prefix
from hmacfs.tasks.queue import ClaimedTask
from hmacfs.tasks.sql import skip_wal_wait


class TaskError(Exception):
    """A handler's clear reason for failing the task (shown to the user as ``errorMessage``)."""


class TaskStopped(Exception):
    """The run must stop at this checkpoint: ``reason`` is paused, cancelled, lost or shutdown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class TaskContext:
    services: Services
    row_id: uuid.UUID
    task_id: str
    account_id: uuid.UUID
    name: str
    type: str
    owner: str
    parameters: dict[str, Any]
    state: dict[str, Any]
    sealed_secret: bytes | None
    stop_requested: threading.Event
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    results: dict[str, Any] = field(default_factory=dict)
    completed: bool = False
    # The row's public results as this run last committed them (only the lease holder
    # writes them), so the completion can merge without reading the row first.
    saved_results: dict[str, Any] = field(default_factory=dict)
    # When this run began (monotonic seconds): the completed task's duration is this run's.
    began: float = field(default_factory=time.monotonic)
    _last_write: float = 0.0
    _published: tuple[float, float] | None = None

    @classmethod
    def for_task(
        cls, services: Services, task: ClaimedTask, owner: str, stop: threading.Event
    ) -> TaskContext:
        return cls(
            services=services,
            row_id=task.id,
            task_id=task.task_id,
            account_id=task.account_id,
            name=task.name,
            type=task.type,
            owner=owner,
            parameters=dict(task.parameters or {}),
            state=dict((task.results or {}).get("_checkpoint") or {}),
            sealed_secret=task.sealed_secret,
            stop_requested=stop,
            saved_results=public_results(task.results or {}),
        )

    # -- inputs -------------------------------------------------------------------
    def secret(self) -> str:
        """The task's password, unsealed; TaskError when the task has none."""
        if self.sealed_secret is None:
            raise TaskError("this task has no password")
        return self.services.sealer.unseal(self.sealed_secret, context=self.task_id)

    def part(self, suffix: str) -> str:
        """A part name for this run's output; removed when the task fails or is cancelled.

        Each run writes its own parts: a stalled worker whose lease lapsed may still
        be writing its old part while the new owner writes the new one.
        """
        return f"{part_prefix(self.task_id)}-{self.run_id}-{suffix}"

    # -- checkpoints ----------------------------------------------------------------
    def checkpoint(
        self,
        done: float,
        total: float,
        state: dict[str, Any] | None = None,
        sync: Callable[[], None] | None = None,
        force: bool = False,
    ) -> None:
        """Report progress (``done`` of ``total``) and stop here if asked to.

        At most every ``tasks.checkpoint_interval`` this renews the lease, saves
        ``state`` (what a retried run resumes from; ``sync`` makes the output
        durable first) and checks for pause/cancel. Raises TaskStopped.
        """
        if self.stop_requested.is_set():
            self._save(done, total, state, sync)
            raise TaskStopped("shutdown")
        interval = self.services.settings.tasks.checkpoint_interval.total_seconds()
        if force or time.monotonic() - self._last_write >= interval:
            self._save(done, total, state, sync)

    def _save(
        self, done: float, total: float, state: dict[str, Any] | None, sync: Callable[[], None] | None
    ) -> None:
        if sync is not None:
            sync()
        progress = max(0.0, min(100.0, 100.0 * done / total)) if total > 0 else 0.0
        with self.transaction(state) as (session, task):
            task.progress = max(task.progress, min(progress, 99.99))
            processed = {"done": done, "total": total}
            task.results = {**(task.results or {}), "_processed": processed}
            if state is not None:
                task.results = {**task.results, "_checkpoint": state}
            self._maybe_publish(session, task)
        self._last_write = time.monotonic()

    def _maybe_publish(self, session: Session, task: Task) -> None:
        events = self.services.settings.events
        now = time.monotonic()
        last_progress, last_at = self._published if self._published else (None, None)
        if should_publish_progress(
            last_progress,
            last_at,
            task.progress,
            now,
            min_step=events.progress_min_step,
            min_interval=events.progress_min_interval.total_seconds(),
        ):
            publish_task_event(session, task, "progress", self.services.clock.now())
            self._published = (task.progress, now)

    # -- transactions ---------------------------------------------------------------
    @contextmanager
    def transaction(self, state: dict[str, Any] | None = None) -> Iterator[tuple[Session, Task]]:
        """A transaction holding this task's row; commits the block's work with ``state``.

        Raises TaskStopped (and rolls back) when the task was paused, cancelled
        or handed to another worker, so an effect and its checkpoint commit together or not at all.
        """
        with self.services.db.sessions() as session:
            now, lease = self.services.clock.now(), self.services.settings.tasks.lease_duration
            if not self.services.settings.tasks.durable_commits:
                skip_wal_wait(session)
            task = queue.lock_owned(session, self.row_id, self.owner, now, lease)
            if task is None:
                session.rollback()
                raise TaskStopped(self._why_stopped(session))
            yield session, task
            if state is not None:
                task.results = {**(task.results or {}), "_checkpoint": state}
                self.state = state
            session.commit()
            self.saved_results = public_results(task.results or {})

    @contextmanager
    def finishing(self) -> Iterator[Session]:
        """The final transaction: the block's work and the task's completion commit together.

        The completion is written first, by the statement that checks the lease and
        locks the row (one round trip instead of two), so the block runs under the
        same lock as a ``transaction`` block; results the block adds are written
        after it. Raises TaskStopped (and rolls back) like ``transaction``.
        """
        with self.services.db.sessions() as session:
            now = self.services.clock.now()
            if not self.services.settings.tasks.durable_commits:
                skip_wal_wait(session)
            written = {**self.saved_results, **self.results}
            if not queue.complete_owned(session, self.row_id, self.owner, written, now):
                session.rollback()
                raise TaskStopped(self._why_stopped(session))
            yield session
            final = {**self.saved_results, **self.results}
            if final != written:
                queue.set_results(session, self.row_id, final)
            publish_task_completed(session, self, final, now)
            ran = time.monotonic() - self.began
            count_finished(session, self.services, self.type, TaskStatus.COMPLETED.value, ran)
            session.commit()
            self.completed = True

    def _why_stopped(self, session: Session) -> str:
        status, owner = queue.status_of(session, self.row_id)
        if owner != self.owner:
            return "lost"
        if status == TaskStatus.CANCELLED:
            return "cancelled"
        if status == TaskStatus.PAUSED:
            return "paused"
        return "lost"
