"""Many uploads of the same new content finishing at once (PostgreSQL, real connections)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, PathTaken, create_file_from_part
from hmacfs.files.one_shot import OneShot, record_one_shot
from hmacfs.models import Blob, File, UploadTask
from hmacfs.models.base import utcnow
from hmacfs.models.status import Protocol
from hmacfs.storage import LocalBlobStore

UPLOADERS = 16
CONTENTS = 20


def _step_by_step(session: Session, store: LocalBlobStore, part: str, content: bytes, new: NewFile) -> None:
    create_file_from_part(
        session, store, DeduplicationSettings(), part=part, sha256=hashlib.sha256(content).hexdigest(),
        size=len(content), new=new,
    )  # fmt: skip


def _one_statement(session: Session, store: LocalBlobStore, part: str, content: bytes, new: NewFile) -> None:
    upload = OneShot(
        Protocol.XEP0363, part, hashlib.sha256(content).hexdigest(), len(content), shared=True,
        now=utcnow(), fallback_expiry=None,
    )  # fmt: skip
    record_one_shot(session, store, upload, new)


def _run_together(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


@pytest.mark.parametrize("record", [_step_by_step, _one_statement], ids=["step-by-step", "one-statement"])
def test_simultaneous_first_uploads_of_one_content_share_one_blob(
    backend: str, engine: Engine, tmp_path: Path, record: Any
) -> None:
    """Every uploader passes the dedup upsert's conflict check at the same moment; all
    must end up referencing one blob (a second unique constraint made some fail)."""
    if backend != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    store = LocalBlobStore(tmp_path / "store", fsync=False)
    failures: list[BaseException] = []
    for _ in range(CONTENTS):
        content = os.urandom(64)
        start = threading.Barrier(UPLOADERS)

        def upload(content: bytes = content, start: threading.Barrier = start) -> None:
            part = uuid.uuid4().hex
            store.receive(part, io.BytesIO(content).read, len(content))
            new = NewFile(name="same.bin", content_type="application/octet-stream", pool_id=DEFAULT_POOL_ID)
            try:
                with Session(engine) as session:
                    session.connection()
                    start.wait()
                    record(session, store, part, content, new)
                    session.commit()
            except BaseException as exc:
                failures.append(exc)

        _run_together([threading.Thread(target=upload) for _ in range(UPLOADERS)])
        assert failures == []
        with Session(engine) as session:
            sha256 = hashlib.sha256(content).hexdigest()
            blob = session.scalars(select(Blob).where(Blob.sha256 == sha256)).one()
            files = session.scalar(select(func.count()).select_from(File).where(File.blob_id == blob.id))
            assert blob.ref_count == files == UPLOADERS
            assert store.blob_path(blob.storage_key).read_bytes() == content
            file_ids = select(File.id).where(File.blob_id == blob.id)
            session.execute(delete(UploadTask).where(UploadTask.file_id.in_(file_ids)))
            session.execute(delete(File).where(File.blob_id == blob.id))  # the engine is shared
            session.execute(delete(Blob).where(Blob.id == blob.id))
            session.commit()


def test_simultaneous_uploads_to_one_path_record_one_file(
    backend: str, engine: Engine, tmp_path: Path
) -> None:
    """One statement per upload: of uploads racing for one slot path exactly one is
    recorded; the others raise PathTaken and leave no reference, file or task behind."""
    if backend != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    store = LocalBlobStore(tmp_path / "store", fsync=False)
    slot = f"race-{uuid.uuid4().hex}/f.bin"
    start = threading.Barrier(UPLOADERS)
    outcomes: list[str] = []

    def upload(number: int) -> None:
        part, content = uuid.uuid4().hex, f"content {number}".encode()
        store.receive(part, io.BytesIO(content).read, len(content))
        new = NewFile(name="f.bin", content_type="text/plain", pool_id=DEFAULT_POOL_ID, path=slot)
        with Session(engine) as session:
            session.connection()
            start.wait()
            try:
                _one_statement(session, store, part, content, new)
                session.commit()
                outcomes.append("recorded")
            except PathTaken:
                session.rollback()
                store.delete_part(part)
                outcomes.append("taken")

    _run_together([threading.Thread(target=upload, args=(number,)) for number in range(UPLOADERS)])
    assert sorted(outcomes) == ["recorded"] + ["taken"] * (UPLOADERS - 1)
    with Session(engine) as session:
        file = session.scalars(select(File).where(File.path == slot)).one()
        task = session.scalars(select(UploadTask).where(UploadTask.file_id == file.id)).one()
        blob = session.get(Blob, file.blob_id)
        assert blob is not None and blob.ref_count == 1
        assert (task.status, task.bytes_received, task.hash) == ("Completed", file.size, file.sha256)
        assert hashlib.sha256(store.blob_path(blob.storage_key).read_bytes()).hexdigest() == file.sha256
        names = {f"content {number}" for number in range(UPLOADERS)}
        orphans = session.scalars(
            select(Blob).where(Blob.sha256.in_([hashlib.sha256(n.encode()).hexdigest() for n in names]))
        ).all()
        assert [orphan.id for orphan in orphans] == [blob.id]  # the losers' blob rows rolled back
        assert list((tmp_path / "store" / "parts").iterdir()) == []
        session.execute(delete(UploadTask).where(UploadTask.id == task.id))
        session.execute(delete(File).where(File.id == file.id))
        session.execute(delete(Blob).where(Blob.id == blob.id))
        session.commit()
