"""Files from parts: deduplication, reference counts, deletion, expiry, visibility."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import (
    NewFile,
    PathTaken,
    collect_blobs,
    create_file_from_part,
    delete_file,
    expire_files,
    find_duplicate,
)
from hmacfs.models import Blob, File, Pool
from hmacfs.storage import LocalBlobStore

DEDUP = DeduplicationSettings()


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store", fsync=False)


def add(
    session: Session,
    store: LocalBlobStore,
    data: bytes,
    *,
    account: uuid.UUID | None = None,
    dedup: DeduplicationSettings = DEDUP,
    pool_id: uuid.UUID = DEFAULT_POOL_ID,
    **fields: object,
) -> File:
    part = uuid.uuid4().hex
    written = store.receive(part, io.BytesIO(data).read, len(data))
    new = NewFile(
        name="f.bin",
        content_type="application/octet-stream",
        pool_id=pool_id,
        account_id=account,
        **fields,  # type: ignore[arg-type]
    )
    return create_file_from_part(
        session, store, dedup, part=part, sha256=written.sha256, size=len(data), new=new
    )


def test_same_content_is_stored_once(session: Session, store: LocalBlobStore) -> None:
    first = add(session, store, b"hello world")
    second = add(session, store, b"hello world")
    assert first.blob_id == second.blob_id
    blob = session.get(Blob, first.blob_id)
    assert blob is not None and blob.ref_count == 2
    assert store.blob_path(blob.storage_key).read_bytes() == b"hello world"
    session.commit()  # the parts go once the rows holding their bytes have committed
    assert list((store.root / "parts").iterdir()) == []


def test_taken_path_is_refused_before_the_part_moves(session: Session, store: LocalBlobStore) -> None:
    add(session, store, b"first", path="slot/a.txt")
    part = uuid.uuid4().hex
    written = store.receive(part, io.BytesIO(b"second").read, 6)
    new = NewFile(name="a.txt", content_type="text/plain", pool_id=DEFAULT_POOL_ID, path="slot/a.txt")
    with pytest.raises(PathTaken) as refused, session.begin_nested():
        create_file_from_part(session, store, DEDUP, part=part, sha256=written.sha256, size=6, new=new)
    assert refused.value.status == 409 and refused.value.code == "SLOT_TAKEN"
    assert store.part_path(part).exists()  # left for the caller to delete
    assert not store.blob_path(store.blob_key(written.sha256)).exists()
    assert session.scalars(select(Blob).where(Blob.sha256 == written.sha256)).first() is None


def test_dedup_disabled_or_over_maxsize_keeps_copies(session: Session, store: LocalBlobStore) -> None:
    off = DeduplicationSettings(enabled=False)
    small = DeduplicationSettings(maxsize=4)
    a = add(session, store, b"same bytes", dedup=off)
    b = add(session, store, b"same bytes", dedup=small)
    assert a.blob_id != b.blob_id
    keys = session.scalars(select(Blob.storage_key).where(Blob.sha256 == a.sha256)).all()
    assert len(set(keys)) == 2 and all(store.blob_path(k).exists() for k in keys)


def test_delete_then_collect_removes_bytes_only_when_unreferenced(
    session: Session, store: LocalBlobStore
) -> None:
    first = add(session, store, b"payload")
    second = add(session, store, b"payload")
    blob = session.get(Blob, first.blob_id)
    assert blob is not None
    path = store.blob_path(blob.storage_key)
    delete_file(session, first)
    assert collect_blobs(session, store) == 0 and path.exists()
    delete_file(session, second)
    assert collect_blobs(session, store) == 1 and not path.exists()


def test_expire_files(session: Session, store: LocalBlobStore) -> None:
    now = datetime.now(UTC)
    add(session, store, b"old", expired_at=now - timedelta(seconds=1))
    keep = add(session, store, b"new", expired_at=now + timedelta(hours=1))
    assert expire_files(session, now) == 1
    assert collect_blobs(session, store) == 1
    assert session.get(type(keep), keep.id) is not None


def test_duplicates_never_cross_accounts_unless_public(session: Session, store: LocalBlobStore) -> None:
    now = datetime.now(UTC)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    mine = add(session, store, b"private", account=alice)
    assert find_duplicate(session, mine.sha256, alice, now) is not None
    assert find_duplicate(session, mine.sha256, bob, now) is None
    public = Pool(name=f"public-{uuid.uuid4().hex[:6]}", public=True)
    session.add(public)
    session.flush()
    shared = add(session, store, b"for everyone", account=alice, pool_id=public.id)
    assert find_duplicate(session, shared.sha256, bob, now) is not None
