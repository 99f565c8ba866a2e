"""The files aggregate's SQL, and a one-request upload's rows: one contract on PostgreSQL and SQLite."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, sql
from hmacfs.files.one_shot import OneShot, record_whole_file
from hmacfs.models import Blob, File, Pool, UploadTask
from hmacfs.models.status import Protocol, UploadStatus
from hmacfs.storage import LocalBlobStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _stored(store: LocalBlobStore, data: bytes) -> OneShot:
    """``data`` received into a new part, as a one-request upload would be."""
    part = uuid.uuid4().hex
    written = store.receive(part, io.BytesIO(data).read, len(data))
    return OneShot(
        Protocol.XEP0363, part, written.sha256, written.size, shared=True, now=NOW,
        fallback_expiry=NOW + timedelta(days=1),
    )  # fmt: skip


def test_a_whole_file_gets_its_blob_file_and_completed_task(session: Session, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    upload = _stored(store, b"hello whole")
    new = NewFile(name="a.txt", content_type="text/plain", pool_id=DEFAULT_POOL_ID, path="slot/a.txt")
    file = record_whole_file(session, store, DeduplicationSettings(), upload, new)
    assert file.sha256 == upload.sha256 and file.size == upload.size and file.path == "slot/a.txt"
    assert file.expired_at == upload.fallback_expiry  # the default pool sets no lifetime
    task = session.scalars(select(UploadTask).where(UploadTask.file_id == file.id)).one()
    assert task.status == UploadStatus.COMPLETED.value and task.protocol == Protocol.XEP0363.value
    assert task.bytes_received == task.upload_offset == upload.size
    blob = session.get(Blob, file.blob_id)
    assert blob is not None and blob.ref_count == 1
    session.commit()  # the part goes once the rows holding its bytes have committed
    assert not store.part_path(upload.part).exists()


def test_the_pools_lifetime_wins_over_the_fallback(session: Session, tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    session.execute(update(Pool).where(Pool.id == DEFAULT_POOL_ID).values(file_ttl_seconds=60))
    new = NewFile(name="b.txt", content_type="text/plain", pool_id=DEFAULT_POOL_ID)
    file = record_whole_file(session, store, DeduplicationSettings(), _stored(store, b"b"), new)
    assert file.expired_at == NOW + timedelta(seconds=60)


def test_orphan_blobs_are_the_unreferenced_ones(session: Session) -> None:
    kept = Blob(sha256="1" * 64, size=1, shared=True, storage_key="k1", ref_count=1)
    orphan = Blob(sha256="2" * 64, size=1, shared=True, storage_key="k2", ref_count=0)
    session.add_all([kept, orphan])
    session.flush()
    assert [blob.id for blob in sql.orphan_blobs(session, 10)] == [orphan.id]
    assert isinstance(sql.statements(session), sql.Statements)
    assert session.scalar(select(File.id).limit(1)) is None
