"""Publishing the task metrics (``hmacfs_tasks_total``, ``hmacfs_task_duration_seconds``,
declared in ``hmacfs.metrics``) when a task ends: counted once the transaction
that ends it commits. Without metrics (no exporter in this process) nothing happens.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import on_commit


def count_finished(
    session: Session, services: Services, task_type: str, status: str, seconds: float | None
) -> None:
    """A task of ``task_type`` ended with ``status`` (Completed, Failed, Cancelled) after
    running ``seconds`` (None when it never ran)."""
    metrics = services.metrics
    if metrics is None:
        return

    def count() -> None:
        metrics.tasks_total.labels(type=task_type, status=status).inc()
        if seconds is not None:
            metrics.task_duration_seconds.labels(type=task_type).observe(max(seconds, 0.0))

    on_commit(session, count)
