"""Publishing the upload metrics (declared in ``hmacfs.metrics``) from the engine.

Starts, completions and failures count once the transaction recording them
commits (``hmacfs.db.on_commit``), so a request that rolls back counts nothing
and a total equals the rows. Bytes count as they are stored. Each function takes
the metrics, None without an exporter (the CLI, tests building no app): then nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from hmacfs.db import on_commit
from hmacfs.metrics import AppMetrics
from hmacfs.models import UploadTask


def _after_commit(session: Session, metrics: AppMetrics | None, count: Callable[[AppMetrics], None]) -> None:
    if metrics is not None:
        on_commit(session, lambda: count(metrics))


def count_started(session: Session, metrics: AppMetrics | None, protocol: str) -> None:
    _after_commit(session, metrics, lambda m: m.uploads_started_total.labels(protocol=protocol).inc())


def count_completed(
    session: Session, metrics: AppMetrics | None, task: UploadTask, size: int, now: datetime
) -> None:
    """One completed upload of ``size`` bytes that took from the task's creation to ``now``."""
    seconds = max((now - task.created_at).total_seconds(), 0.0)
    count_completed_upload(session, metrics, task.protocol, size, seconds)


def count_completed_upload(
    session: Session, metrics: AppMetrics | None, protocol: str, size: int, seconds: float
) -> None:
    """One completed upload of ``protocol``: ``size`` bytes in ``seconds``."""

    def count(metrics: AppMetrics) -> None:
        metrics.uploads_total.labels(protocol=protocol).inc()
        metrics.upload_size_bytes.labels(protocol=protocol).observe(size)
        metrics.upload_duration_seconds.labels(protocol=protocol).observe(seconds)

    _after_commit(session, metrics, count)


def count_ended(session: Session, metrics: AppMetrics | None, protocol: str, outcome: str) -> None:
    """An upload that ended without a file: ``outcome`` is failed, cancelled or expired."""
    _after_commit(
        session, metrics, lambda m: m.uploads_failed_total.labels(protocol=protocol, outcome=outcome).inc()
    )


def count_bytes(metrics: AppMetrics | None, protocol: str, size: int) -> None:
    """``size`` bytes of an upload received and stored."""
    if metrics is not None and size:
        metrics.upload_bytes_total.labels(protocol=protocol).inc(size)
