"""Test helpers: real files through the file service, tasks through the task service."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.files.service import blob_store
from hmacfs.models import Blob, Bundle, File, Task
from hmacfs.models.status import FINISHED_STATUSES
from hmacfs.tasks import submit_task


def add_file(
    session: Session, services: Services, account: uuid.UUID, data: bytes, name: str = "f.bin", **new: Any
) -> File:
    """Store ``data`` as a real file of ``account`` (part written, promoted, row created)."""
    part = f"test-{uuid.uuid4().hex}"
    services.store.create_part(part, len(data))
    services.store.write_part(part, 0, _reader(data), len(data))
    new.setdefault("pool_id", DEFAULT_POOL_ID)
    return create_file_from_part(
        session,
        services.store,
        services.settings.deduplication,
        part=part,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        new=NewFile(name=name, content_type="application/octet-stream", account_id=account, **new),
    )


def _reader(data: bytes) -> Any:
    view = memoryview(data)
    position = 0

    def read(size: int) -> bytes:
        nonlocal position
        chunk = bytes(view[position : position + size])
        position += len(chunk)
        return chunk

    return read


def add_bundle(session: Session, account: uuid.UUID) -> Bundle:
    bundle = Bundle(account_id=account, name="b")
    session.add(bundle)
    session.flush()
    return bundle


def file_bytes(session: Session, services: Services, file_id: Any) -> bytes:
    file = session.get(File, uuid.UUID(str(file_id)), populate_existing=True)
    assert file is not None
    blob = session.get(Blob, file.blob_id, populate_existing=True)
    assert blob is not None
    with blob_store(services.store, blob.storage_root).open_blob(blob.storage_key) as opened:
        return b"".join(opened.read_range(0, opened.size))


def submit(session: Session, services: Services, account: uuid.UUID, type: str, **parameters: Any) -> str:
    task = submit_task(session, services, account, type, parameters)
    session.commit()
    return task.task_id


def wait_finished(services: Services, task_id: str, timeout: float = 60, statuses: Any = None) -> Task:
    """Poll (with fresh sessions) until the task reaches one of ``statuses`` (default: finished)."""
    wanted = tuple(statuses or FINISHED_STATUSES)
    deadline = time.monotonic() + timeout
    while True:
        with services.db.sessions() as session:
            task = session.query(Task).filter_by(task_id=task_id).one()
            if task.status in wanted:
                return task
        if time.monotonic() > deadline:
            raise AssertionError(
                f"task {task_id} still {task.status} after {timeout}s ({task.error_message})"
            )
        time.sleep(0.05)


def storage_path(path: Path) -> str:
    return str(path)
