"""Readiness checks behind ``GET /health/uploads``."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hmacfs.models import Pool, Task, UploadTask
from hmacfs.storage import LocalBlobStore


def check_uploads(session: Session, store: LocalBlobStore) -> tuple[bool, dict[str, Any]]:
    """Probe the database, the storage and every pool's own storage path; return
    (healthy, report).

    Each failed probe is named in the report with its error (a pool by name,
    ``pool:<name>``; its path is not shown); nothing raises.
    """
    report: dict[str, Any] = {"database": _database(session), "storage": _storage(store)}
    failed = [name for name in ("database", "storage") if not report[name]["ok"]]
    if report["database"]["ok"]:
        report["uploads"] = _counts(session, UploadTask.status)
        report["tasks"] = _counts(session, Task.status)
        report["pools"] = _pool_storage(session, store)
        failed += [f"pool:{name}" for name, probe in report["pools"].items() if not probe["ok"]]
    report["status"] = "ok" if not failed else "unavailable"
    if failed:
        report["failed"] = failed
    return not failed, report


def _database(session: Session) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "unreachable"
        session.rollback()
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


def _pool_storage(session: Session, store: LocalBlobStore) -> dict[str, dict[str, Any]]:
    """The storage probe of each pool that keeps its uploads under a path of its own."""
    rows = session.execute(select(Pool.name, Pool.storage_path).where(Pool.storage_path.is_not(None))).all()
    return {name: _storage(store.at(path)) for name, path in rows}


def _storage(store: LocalBlobStore) -> dict[str, Any]:
    try:
        store.check_writable()
        return {"ok": True, "free_bytes": store.free_bytes()}
    except OSError as exc:
        return {"ok": False, "error": exc.strerror or type(exc).__name__}


def _counts(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column)).all()
    return {str(status): int(count) for status, count in rows}
