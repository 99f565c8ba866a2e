"""Releasing the reservations of abandoned uploads: the cleanup step ``uploads.reservations``.

A create reserves its declared size on disk (the part is preallocated) and
against the quotas (``hmacfs.uploads.quotas``). An upload idle for ``[uploads]
reservation_timeout`` gives both back: the unreceived ranges of its part are
punched out (``hmacfs.storage.holes``) and ``reserved`` is cleared, so the quotas
count only the bytes it received. It still resumes; its later writes allocate
again (a full disk then answers 507 and the client retries).

No acknowledged byte may be punched: the part's whole-file range lock is taken
first (a chunk writer holds its chunk's range until its row commits), and tus
uploads' ``upload:<id>`` lock (a PATCH holds it while its body streams); a busy
upload is skipped (it is not idle). Only then is what was received read, from a
fresh snapshot.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import release_connection
from hmacfs.models import UploadTask
from hmacfs.models.status import OPEN_STATUSES, Protocol
from hmacfs.ports import LockBusy
from hmacfs.storage import BlobStore, Reserving
from hmacfs.uploads.offsets import upload_lock_key
from hmacfs.uploads.service import part_store, uploaded_indexes

log = logging.getLogger(__name__)
_OPEN = [status.value for status in OPEN_STATUSES]
BATCH = 200


def release_idle_reservations(session: Session, services: Services, now: datetime) -> int:
    """Cleanup step: release the reservations of uploads idle longer than ``[uploads]
    reservation_timeout``; returns how many were released. Flushes (and commits each
    release before looking at the next upload: ``release_connection``)."""
    cutoff = now - services.settings.uploads.reservation_timeout
    released = 0
    for task_id in list(session.scalars(_idle_ids(cutoff))):
        try:
            released += _release(session, services, task_id, cutoff)
        except LockBusy:
            continue  # being written: not idle after all
    return released


def _idle_ids(cutoff: datetime) -> Select[uuid.UUID]:
    return (
        select(UploadTask.id)
        .where(
            UploadTask.status.in_(_OPEN),
            UploadTask.reserved,
            UploadTask.file_size.is_not(None),
            UploadTask.deleted_at.is_(None),
            UploadTask.last_activity < cutoff,
        )
        .order_by(UploadTask.last_activity)
        .limit(BATCH)
    )


def _release(session: Session, services: Services, task_id: uuid.UUID, cutoff: datetime) -> int:
    """Release one upload's reservation under its locks; 0 when it is no longer idle."""
    task = session.get(UploadTask, task_id)
    if task is None:
        return 0
    store = part_store(services.store, task)
    with services.locker.hold(upload_lock_key(task)), _whole_part_lock(store, task.task_id) as locked:
        if not locked:
            return 0
        release_connection(session)  # what was received is read from a fresh snapshot
        task = _locked_if_idle(session, task_id, cutoff)
        if task is None:
            return 0
        if not _give_back(session, store, task):
            log.warning("storage cannot punch holes: upload %s keeps its disk space", task.task_id)
        task.reserved = False
        session.flush()
    return 1


def _give_back(session: Session, store: BlobStore, task: UploadTask) -> bool:
    """Free the reserved space of the ranges not received yet: True when done or nothing
    was reserved (no part, or a store that reserves nothing), False when the store cannot."""
    if not isinstance(store, Reserving) or store.part_size(task.task_id) is None:
        return True
    try:
        return store.release_ranges(task.task_id, unreceived_ranges(session, task))
    except FileNotFoundError:  # removed meanwhile
        return True


@contextmanager
def _whole_part_lock(store: BlobStore, part: str) -> Iterator[bool]:
    """Whether every byte of the part is locked (no chunk is being written); True for a
    part that does not exist (nothing to protect)."""
    try:
        lock = store.lock_part(part)
    except FileNotFoundError:
        yield True
        return
    try:
        yield lock.try_lock(0, 0)
    finally:
        lock.close()


def _locked_if_idle(session: Session, task_id: uuid.UUID, cutoff: datetime) -> UploadTask | None:
    """The upload, row-locked (PostgreSQL; a row a writer holds is skipped), if still idle.
    SQLite has no row locks: its compiler leaves FOR UPDATE out, and one writer at a time
    needs none."""
    query = select(UploadTask).where(
        UploadTask.id == task_id, UploadTask.status.in_(_OPEN), UploadTask.reserved,
        UploadTask.last_activity < cutoff,
    ).with_for_update(skip_locked=True)  # fmt: skip
    return session.scalars(query.execution_options(populate_existing=True)).first()


def unreceived_ranges(session: Session, task: UploadTask) -> list[tuple[int, int]]:
    """The ``(offset, length)`` ranges of the declared size no write has acknowledged:
    after the offset (tus), else the missing chunks (adjacent ones merged)."""
    size = task.file_size or 0
    if task.protocol == Protocol.TUS.value:
        return [(task.upload_offset, size - task.upload_offset)] if task.upload_offset < size else []
    received = set(uploaded_indexes(session, task))
    ranges: list[tuple[int, int]] = []
    for index in range(task.chunks_count or 0):
        if index in received:
            continue
        start = index * task.chunk_size
        length = min(task.chunk_size, size - start)
        if ranges and ranges[-1][0] + ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + length)
        else:
            ranges.append((start, length))
    return ranges
