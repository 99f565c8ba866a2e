"""Completing an upload: every byte present, SHA-256 verified by streaming, then a file."""

from __future__ import annotations

import hmac

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.errors import Conflict, Gone, HashMismatch
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.models import File, UploadChunk, UploadTask
from hmacfs.models.status import Protocol, TaskType, UploadStatus
from hmacfs.tasks.service import submit_task
from hmacfs.uploads import running_hash
from hmacfs.uploads.counting import count_completed
from hmacfs.uploads.notify import publish_completed
from hmacfs.uploads.part_locks import held_or_new
from hmacfs.uploads.quotas import Charge, check_quotas
from hmacfs.uploads.service import check_open, lock_task, part_store


def _lock_whole_part(session: Session, services: Services, task: UploadTask) -> None:
    """Lock every byte of the part until this transaction ends, so no chunk is rewritten
    while it is hashed and promoted; 409 UPLOAD_BUSY while a re-sent chunk is being copied in."""
    lock = held_or_new(session, part_store(services.store, task), task.task_id)
    if not lock.try_lock(0, 0):
        raise Conflict("a chunk of this upload is being written; retry", code="UPLOAD_BUSY")


def received_totals(session: Session, task: UploadTask) -> tuple[int, int]:
    """(chunks, bytes) recorded for ``task``, recomputed from ``upload_chunks``."""
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(UploadChunk.size), 0)).where(
            UploadChunk.upload_id == task.id
        )
    ).one()
    return int(row[0]), int(row[1])


def _check_received(session: Session, task: UploadTask) -> int:
    """The file size once every byte is there; raise 409 UPLOAD_INCOMPLETE otherwise."""
    if task.size_deferred or task.file_size is None:
        raise Conflict("the upload length is not known yet", code="UPLOAD_INCOMPLETE")
    if task.protocol == Protocol.TUS.value:
        received, expected = task.upload_offset, task.file_size
        complete = received == expected
    else:
        chunks, received = received_totals(session, task)
        expected = task.file_size
        complete = chunks == task.chunks_count and received == expected
    if not complete:
        raise Conflict(
            f"{received} of {expected} bytes received",
            code="UPLOAD_INCOMPLETE",
            details={"received": received, "expected": expected},
        )
    return expected


def complete_upload(session: Session, services: Services, task: UploadTask) -> File:
    """Verify and turn a fully received upload into a file; completing twice returns the same file.

    Raises 409 UPLOAD_INCOMPLETE, 403 QUOTA_EXCEEDED (507 past the server's quota), or 422 HASH_MISMATCH
    (the task stays open: the client re-sends the wrong chunks and completes again).
    """
    if task.file_id is not None:
        return _file_of(session, task)
    check_open(task)
    size = _check_received(session, task)
    charge = Charge(size, task.account_id, task.uploader, upload=task.id)
    check_quotas(session, services.settings, charge, services.clock.now())
    if task.protocol != Protocol.TUS.value:  # tus writes are serialised by the upload lock
        _lock_whole_part(session, services, task)
    sha256 = running_hash.finish(session, services, task, size)
    if task.hash and not hmac.compare_digest(sha256, task.hash):
        raise HashMismatch(
            "the uploaded bytes do not match the declared SHA-256",
            details={"expected": task.hash, "actual": sha256},
        )
    task = lock_task(session, task)
    if task.file_id is not None:  # a concurrent completion won
        return _file_of(session, task)
    file = create_file_from_part(
        session, services.store, services.settings.deduplication, part=task.task_id, sha256=sha256, size=size,
        root=task.storage_root,
        new=NewFile(
            name=task.file_name, content_type=task.content_type, pool_id=task.pool_id,
            account_id=task.account_id, bundle_id=task.bundle_id, expired_at=task.expired_at,
        ),
    )  # fmt: skip
    _mark_completed(session, services, task, file)
    return file


def _file_of(session: Session, task: UploadTask) -> File:
    file = session.get(File, task.file_id)
    if file is None:
        raise Gone("the file of this upload was deleted", code="FILE_GONE")
    return file


def _mark_completed(session: Session, services: Services, task: UploadTask, file: File) -> None:
    now = services.clock.now()
    task.status = UploadStatus.COMPLETED.value
    task.file_id = file.id
    task.completed_at = task.last_activity = now
    task.progress_published, task.progress_published_at = 100.0, now
    session.flush()
    hand_over_encryption(session, services, task, file)
    publish_completed(session, task, file)
    count_completed(session, services.metrics, task, file.size, now)


def hand_over_encryption(session: Session, services: Services, task: UploadTask, file: File) -> bool:
    """Queue the FileEncrypt background task for an upload created with ``encryptPassword``.

    The password moves from the upload row (sealed) to the task row (sealed
    again, bound to the task) and is erased from the upload row; it is never
    in clear in the database. Returns True when a task was queued.
    """
    if not task.encrypt_requested or task.encrypt_password_sealed is None or task.account_id is None:
        return False
    password = services.sealer.unseal(task.encrypt_password_sealed, context=str(task.id))
    submit_task(
        session, services, task.account_id, TaskType.FILE_ENCRYPT.value, {"fileId": str(file.id)},
        name=f"Encrypt {file.name}", secret=password,
    )  # fmt: skip
    task.encrypt_password_sealed = None
    session.flush()
    return True


def finish_partial(session: Session, services: Services, task: UploadTask) -> None:
    """A tus partial upload is complete once its bytes are in; it becomes no file by itself."""
    now = services.clock.now()
    task.status = UploadStatus.COMPLETED.value
    task.completed_at = task.last_activity = now
    session.flush()
    count_completed(session, services.metrics, task, task.bytes_received, now)
