"""Periodic cleanup: running the steps the composition root lists
(``hmacfs.composition.cleanup_steps``: expired files, stale uploads, unreferenced
blobs, old events, finished tasks, ...), each in its own transaction.

Only one process runs a pass at a time, across all machines: the pass holds
the ``hmacfs:cleanup`` lock (a PostgreSQL advisory lock) and a process that
finds it taken skips its turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.ports import LockBusy

log = logging.getLogger(__name__)

CLEANUP_LOCK = "hmacfs:cleanup"


@dataclass(frozen=True)
class CleanupStep:
    """One kind of cleanup: ``run(session, services, now)`` flushes its changes and returns how many."""

    name: str
    run: Callable[[Session, Services, datetime], int]


def run_cleanup(services: Services, steps: Sequence[CleanupStep]) -> dict[str, int] | None:
    """Run every step once, in order, each in its own transaction; returns each step's count
    (-1: it failed and was rolled back), or None when another process holds the lock."""
    try:
        with services.locker.hold(CLEANUP_LOCK):
            return {step.name: _run_step(services, step) for step in steps}
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


def cleanup_forever(services: Services, steps: Sequence[CleanupStep], sleep: Callable[[float], None]) -> None:
    """Loop for a server worker greenlet: a pass every ``uploads.cleanup_interval``."""
    interval = services.settings.uploads.cleanup_interval.total_seconds()
    while True:
        sleep(interval)
        try:
            run_cleanup(services, steps)
        except Exception:  # keep the loop alive whatever one pass does
            log.exception("cleanup pass failed")
