"""Blobs under pool storage roots: where new content lands, dedup across roots, collection."""

from __future__ import annotations

import hashlib
import io
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, blob_location, collect_blobs, create_file_from_part, delete_file
from hmacfs.models import Blob, File
from hmacfs.storage import LocalBlobStore

DEDUP = DeduplicationSettings()


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store", fsync=False)


@pytest.fixture
def pool_root(tmp_path: Path) -> str:
    return str(tmp_path / "pool-root")


def add(
    session: Session,
    store: LocalBlobStore,
    data: bytes,
    root: str | None,
    dedup: DeduplicationSettings = DEDUP,
) -> File:
    """A file whose part was written under ``root`` (None: the store root), as uploads do."""
    part = uuid.uuid4().hex
    store.at(root).receive(part, io.BytesIO(data).read, len(data))
    new = NewFile(name="f.bin", content_type="application/octet-stream", pool_id=DEFAULT_POOL_ID)
    sha256 = hashlib.sha256(data).hexdigest()
    return create_file_from_part(
        session, store, dedup, part=part, sha256=sha256, size=len(data), new=new, root=root
    )


def blob_of(session: Session, file: File) -> Blob:
    blob = session.get(Blob, file.blob_id, populate_existing=True)
    assert blob is not None
    return blob


def test_new_content_lands_under_the_pool_root(
    session: Session, store: LocalBlobStore, pool_root: str
) -> None:
    file = add(session, store, b"pool bytes", pool_root)
    blob = blob_of(session, file)
    assert blob.storage_root == pool_root
    location = blob_location(store, blob)
    assert location == Path(pool_root) / blob.storage_key and location.read_bytes() == b"pool bytes"
    assert not (store.root / blob.storage_key).exists()
    session.commit()  # the part goes once the rows holding its bytes have committed
    assert list((Path(pool_root) / "parts").iterdir()) == []  # the part was linked, not copied


def test_private_blobs_land_under_the_pool_root_too(
    session: Session, store: LocalBlobStore, pool_root: str
) -> None:
    file = add(session, store, b"not shared", pool_root, DeduplicationSettings(enabled=False))
    blob = blob_of(session, file)
    assert not blob.shared and blob.storage_root == pool_root
    assert blob_location(store, blob).read_bytes() == b"not shared"


def test_a_dedup_hit_under_another_root_is_referenced_where_it_is(
    session: Session, store: LocalBlobStore, pool_root: str
) -> None:
    first = add(session, store, b"same content", None)
    second = add(session, store, b"same content", pool_root)
    assert second.blob_id == first.blob_id
    blob = blob_of(session, first)
    assert blob.ref_count == 2 and blob.storage_root is None
    assert blob_location(store, blob).read_bytes() == b"same content"
    assert not (Path(pool_root) / blob.storage_key).exists()
    session.commit()
    assert list((Path(pool_root) / "parts").iterdir()) == []  # the duplicate part was dropped


def test_a_blob_whose_bytes_went_missing_is_rehomed_under_the_new_root(
    session: Session, store: LocalBlobStore, pool_root: str
) -> None:
    first = add(session, store, b"lost bytes", None)
    blob_location(store, blob_of(session, first)).unlink()
    second = add(session, store, b"lost bytes", pool_root)
    blob = blob_of(session, second)
    assert second.blob_id == first.blob_id and blob.storage_root == pool_root
    assert blob_location(store, blob).read_bytes() == b"lost bytes"


def test_collector_removes_orphans_under_a_pool_root(
    session: Session, store: LocalBlobStore, pool_root: str
) -> None:
    file = add(session, store, b"short-lived", pool_root)
    location = blob_location(store, blob_of(session, file))
    delete_file(session, file)
    assert location.exists()
    assert collect_blobs(session, store) >= 1
    assert not location.exists()


def test_at_gives_a_store_over_another_root(store: LocalBlobStore, tmp_path: Path) -> None:
    other = store.at(str(tmp_path / "x"))
    assert other.root == tmp_path / "x" and store.root == tmp_path / "store"
    assert (other.fsync, other.buffer_size) == (store.fsync, store.buffer_size)
    assert store.at(None) is store


def test_usable_root_wants_an_absolute_writable_directory(store: LocalBlobStore, tmp_path: Path) -> None:
    assert store.usable_root(str(tmp_path / "new" / ".." / "made")) == (tmp_path / "made").resolve()
    assert (tmp_path / "made" / "parts").is_dir()
    with pytest.raises(ValueError, match="absolute"):
        store.usable_root("relative/dir")
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(ValueError, match="not writable"):
        store.usable_root(str(blocked))
