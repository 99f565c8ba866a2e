"""Readiness checks behind ``GET /health/uploads``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hmacfs.models import Pool, Task, UploadTask
from hmacfs.models.status import OPEN_STATUSES, TaskStatus
from hmacfs.storage import BlobStore, Space, StoreUnavailable


def check_uploads(session: Session, store: BlobStore, min_free: int) -> tuple[bool, dict[str, Any]]:
    """Probe the database, the storage and every pool's own storage path; return
    (healthy, report).

    Each failed probe is named in the report with its error (a pool by name,
    ``pool:<name>``; its path is not shown); nothing raises. A storage root with
    less than ``min_free`` bytes free is healthy but named under ``degraded``
    (status "degraded"): uploads still work until it is full.
    """
    report: dict[str, Any] = {"database": _database(session), "storage": _storage(store, min_free)}
    failed = [name for name in ("database", "storage") if not report[name]["ok"]]
    probes = {"storage": report["storage"]}
    if report["database"]["ok"]:
        report["uploads"] = _counts(session, UploadTask.status)
        report["tasks"] = _counts(session, Task.status)
        report["pools"] = _pool_storage(session, store, min_free)
        failed += [f"pool:{name}" for name, probe in report["pools"].items() if not probe["ok"]]
        probes.update({f"pool:{name}": probe for name, probe in report["pools"].items()})
    degraded = [name for name, probe in probes.items() if probe.get("low_space")]
    report["status"] = "unavailable" if failed else "degraded" if degraded else "ok"
    if failed:
        report["failed"] = failed
    if degraded:
        report["degraded"] = degraded
    return not failed, report


def _database(session: Session) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "unreachable"
        session.rollback()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


def _pool_storage(session: Session, store: BlobStore, min_free: int) -> dict[str, dict[str, Any]]:
    """The storage probe of each pool that keeps its uploads under a path of its own."""
    rows = session.execute(select(Pool.name, Pool.storage_path).where(Pool.storage_path.is_not(None))).all()
    return {name: _storage(store.at(path), min_free) for name, path in rows}


def _storage(store: BlobStore, min_free: int) -> dict[str, Any]:
    try:
        store.check_writable()
        space = store.space()
    except OSError as exc:
        return {"ok": False, "error": exc.strerror or type(exc).__name__}
    except StoreUnavailable:
        return {"ok": False, "error": "StoreUnavailable"}
    if space is None:  # an object store: no free space to run out of
        return {"ok": True}
    return {"ok": True, "free_bytes": space.free, **({"low_space": True} if space.free < min_free else {})}


def _counts(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).all()
    return {str(status): int(count) for status, count in rows}


# An open upload idle this long counts as stale in ``hmacfs_uploads_stale`` (alerted on in
# etc/prometheus/hmacfs-alerts.yml); expiry itself follows uploads.max_resumable_age.
STALE_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class OperatingState:
    """What ``/metrics`` reports at each scrape besides the counters: the storage of this
    node, and from the database the claimable task queue and the stale uploads."""

    storage: Space | None  # None: the store has no free-space limit
    tasks_pending: int
    uploads_stale: int


def operating_state(session: Session, store: BlobStore, now: datetime) -> OperatingState:
    """Sample the state (two indexed counts and the store's space: a statvfs); raises what
    the database and the store raise."""
    space = store.space()
    stale = session.scalar(
        select(func.count())
        .select_from(UploadTask)
        .where(UploadTask.status.in_([s.value for s in OPEN_STATUSES]))
        .where(UploadTask.last_activity < now - STALE_AFTER)
    )
    pending = session.scalar(
        select(func.count()).select_from(Task).where(Task.status == TaskStatus.PENDING.value)
    )
    return OperatingState(space, int(pending or 0), int(stale or 0))
