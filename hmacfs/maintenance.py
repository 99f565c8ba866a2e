"""Periodic cleanup: expired files, unreferenced blobs, and whatever other
modules register (stale uploads, old events, finished tasks).

Only one process runs a pass at a time, across all machines: the pass holds
the ``hmacfs:cleanup`` lock (a PostgreSQL advisory lock) and a process that
finds it taken skips its turn.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.events.log import purge_events
from hmacfs.files import collect_blobs, expire_files
from hmacfs.ports import LockBusy

log = logging.getLogger(__name__)

CLEANUP_LOCK = "hmacfs:cleanup"


@dataclass(frozen=True)
class CleanupStep:
    name: str
    run: Callable[[Session, Services, datetime], int]


def _expired_files(session: Session, services: Services, now: datetime) -> int:
    return expire_files(session, now)


def _orphan_blobs(session: Session, services: Services, now: datetime) -> int:
    return collect_blobs(session, services.store)


def _expired_events(session: Session, services: Services, now: datetime) -> int:
    return purge_events(session, services.settings.events.retention, now)


# Order matters: files expire before their blobs are collected.
STEPS: list[CleanupStep] = [
    CleanupStep("files.expired", _expired_files),
    CleanupStep("blobs.orphaned", _orphan_blobs),
    CleanupStep("events.expired", _expired_events),
]


def register_step(
    name: str, run: Callable[[Session, Services, datetime], int], *, before: str | None = None
) -> None:
    """Add a cleanup step (idempotent by name); ``before`` places it ahead of another."""
    if any(step.name == name for step in STEPS):
        return
    position = next((i for i, step in enumerate(STEPS) if step.name == before), len(STEPS))
    STEPS.insert(position, CleanupStep(name, run))


# Modules that register cleanup steps when imported; loaded before a pass so
# that `hmacfs cleanup` (which builds no app) runs them too.
STEP_MODULES = ("hmacfs.uploads", "hmacfs.tasks.maintenance")


def _load_steps() -> None:
    for module in STEP_MODULES:
        importlib.import_module(module)


def run_cleanup(services: Services) -> dict[str, int] | None:
    """Run every step once, each in its own transaction; None when another process holds the lock."""
    _load_steps()
    try:
        with services.locker.hold(CLEANUP_LOCK):
            return {step.name: _run_step(services, step) for step in STEPS}
    except LockBusy:
        log.debug("cleanup skipped: another process is running it")
        return None


def _run_step(services: Services, step: CleanupStep) -> int:
    with services.db.sessions() as session:
        try:
            count = step.run(session, services, services.clock.now())
            session.commit()
        except Exception:
            session.rollback()
            log.exception("cleanup step %s failed", step.name)
            return -1
    if count:
        log.info("cleanup %s: %d", step.name, count)
    return count


def cleanup_forever(services: Services, sleep: Callable[[float], None]) -> None:
    """Loop for a server worker greenlet: a pass every ``uploads.cleanup_interval``."""
    interval = services.settings.uploads.cleanup_interval.total_seconds()
    while True:
        sleep(interval)
        try:
            run_cleanup(services)
        except Exception:  # keep the loop alive whatever one pass does
            log.exception("cleanup pass failed")
