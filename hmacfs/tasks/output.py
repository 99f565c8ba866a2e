"""The files a task's runs write before they become files: their names, and removing what a
stopped, failed or crashed run left behind.

This sits below ``queue``, ``context`` and ``service``, which all name or discard these parts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.files import pool_stores
from hmacfs.models import Task
from hmacfs.models.status import FINISHED_STATUSES
from hmacfs.storage import BlobStore


def part_prefix(task_id: str) -> str:
    """Every part a task writes starts with this, so partial output can be found and removed."""
    return f"task-{task_id}"


def discard_stray_pool_parts(session: Session, services: Services, now: datetime) -> int:
    """Maintenance: remove task parts left in a pool's storage path, once their task has
    finished or is gone; returns how many.

    A finished output part is moved there just before the task's final commit
    (``place_output``); a crash in between strands it where
    ``discard_partial_output``, which looks under the store's root, never looks.
    """
    strays: dict[str, list[tuple[BlobStore, str]]] = {}
    for store in pool_stores(session, services.store):
        for part in store.list_parts("task-"):
            strays.setdefault(part.name.split("-")[1], []).append((store, part.name))
    if not strays:
        return 0
    unfinished = set(
        session.scalars(
            select(Task.task_id).where(Task.task_id.in_(list(strays)), Task.status.not_in(FINISHED_STATUSES))
        )
    )
    removed = 0
    for task_id, parts in strays.items():
        if task_id not in unfinished:
            for store, name in parts:
                store.delete_part(name)
                removed += 1
    return removed


def discard_partial_output(services: Services, task_id: str) -> int:
    """Delete the parts the runs of task ``task_id`` left; returns how many."""
    parts = services.store.list_parts(part_prefix(task_id))
    for part in parts:
        services.store.delete_part(part.name)
    return len(parts)
