"""The BlobStore contract (``hmacfs.storage.blob_store``), one suite for every backend.

A backend joins by adding one entry to ``BACKENDS``: a function that, given the
test's request and a fresh directory, yields a ``Backend`` (its store, a way to
open a second store over the same data as another process would, and a second
root). The store of each test is fresh and empty.
"""

from __future__ import annotations

import copy
import hashlib
import io
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from hmacfs.s3_settings import S3Settings
from hmacfs.storage import BlobStore, IncompleteBody, LocalBlobStore, PathBacked
from hmacfs.storage.copying import Reader
from hmacfs.storage.memory import MemoryBlobStore
from hmacfs.storage.s3 import S3BlobStore
from hmacfs.storage.s3_client import build_client
from hmacfs.storage.shared_range_lock import AdvisoryRangeLock, AdvisorySession, MemoryRangeLocks
from hmacfs.storage.streams import open_blob_file
from hmacfs.storage.transfer import CopyMismatch, copy_blob, move_part
from tests.pg import PgServer
from tests.seaweed import SeaweedS3


@dataclass(frozen=True)
class Backend:
    store: BlobStore
    reopen: Callable[[], BlobStore]  # a second store over the same data (another process)
    other_root: str  # a root ``store.at`` accepts besides its own


@contextmanager
def _local(request: pytest.FixtureRequest, directory: Path) -> Iterator[Backend]:
    root = directory / "storage"
    yield Backend(LocalBlobStore(root), lambda: LocalBlobStore(root), str(directory / "other"))


@contextmanager
def _memory(request: pytest.FixtureRequest, directory: Path) -> Iterator[Backend]:
    store = MemoryBlobStore("root")
    yield Backend(store, lambda: copy.copy(store), "other")


@contextmanager
def _s3(request: pytest.FixtureRequest, directory: Path) -> Iterator[Backend]:
    """The S3 store on the run's real SeaweedFS, under a prefix of its own, with range
    locks in PostgreSQL as in production (in this process without PostgreSQL)."""
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name, value in seaweed.env.items():
        monkeypatch.setenv(name, value)
    settings = S3Settings(**seaweed.settings(f"contract-{uuid.uuid4().hex[:8]}"), part_size="5MiB")
    engine: Engine | None = request.getfixturevalue("lock_engine")
    sessions: list[AdvisorySession] = []

    def open_store() -> S3BlobStore:  # another process: range locks of its own
        local = MemoryRangeLocks()
        if engine is None:
            return S3BlobStore(build_client(settings), settings, locks=local.lock)
        sessions.append(AdvisorySession(engine))
        return S3BlobStore(
            build_client(settings), settings, locks=partial(AdvisoryRangeLock, sessions[-1], local)
        )

    yield Backend(open_store(), open_store, f"{settings.prefix}other")
    seaweed.empty_prefix(settings.prefix)
    for session in sessions:
        session.close()


@pytest.fixture(scope="module")
def lock_engine(pg_server: PgServer | None) -> Iterator[Engine | None]:
    """Where the S3 store's range locks live (None without PostgreSQL)."""
    if pg_server is None:
        yield None
        return
    engine = create_engine(pg_server.create_database(), poolclass=NullPool)
    yield engine
    engine.dispose()


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractContextManager[Backend]]] = {
    "local": _local,
    "memory": _memory,
    "s3": _s3,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with BACKENDS[request.param](request, tmp_path) as made:
        yield made


@pytest.fixture
def store(backend: Backend) -> BlobStore:
    return backend.store


def reader(data: bytes) -> Reader:
    return io.BytesIO(data).read


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def part_bytes(store: BlobStore, part: str, start: int = 0, length: int | None = None) -> bytes:
    size = store.part_size(part)
    assert size is not None, f"no part {part}"
    return b"".join(store.read_part(part, start, size - start if length is None else length))


def blob_bytes(store: BlobStore, key: str) -> bytes:
    with store.open_blob(key) as blob:
        return b"".join(blob.read_range(0, blob.size))


DATA = bytes(range(256)) * 1200  # 300 KiB: more than one read block of any backend


# -- parts --------------------------------------------------------------------------------
def test_chunks_written_out_of_order_at_their_offsets(store: BlobStore) -> None:
    store.create_part("up1", len(DATA))
    chunks = [(offset, DATA[offset : offset + 70_000]) for offset in range(0, len(DATA), 70_000)]
    for offset, chunk in reversed(chunks):
        store.write_part("up1", offset, reader(chunk), len(chunk))
    assert store.part_size("up1") == len(DATA)
    assert part_bytes(store, "up1") == DATA
    assert part_bytes(store, "up1", 1000, 5) == DATA[1000:1005]


def test_a_write_feeds_its_hashers_and_creates_a_missing_part(store: BlobStore) -> None:
    hasher = hashlib.sha256()
    store.write_part("fresh", 0, reader(DATA), len(DATA), hashers=(hasher,))
    assert hasher.hexdigest() == sha(DATA)
    assert part_bytes(store, "fresh") == DATA


def test_a_short_body_is_incomplete(store: BlobStore) -> None:
    store.create_part("short", 10)
    with pytest.raises(IncompleteBody):
        store.write_part("short", 0, reader(b"abc"), 10)


def test_acknowledged_writes_are_seen_by_another_store(backend: Backend) -> None:
    """The durability point: once write_part returns, a second store over the same data
    (another process, after a crash of this one) reads the bytes."""
    store = backend.store
    store.create_part("durable", 8)
    store.write_part("durable", 4, reader(b"5678"), 4)
    store.write_part("durable", 0, reader(b"1234"), 4)
    assert part_bytes(backend.reopen(), "durable") == b"12345678"


def test_writes_made_durable_later_by_sync_part(backend: Backend) -> None:
    store = backend.store
    store.create_part("later", None)
    store.write_part("later", 0, reader(b"abc"), 3, durable=False)
    store.write_part("later", 3, reader(b"def"), 3, durable=False)
    store.sync_part("later")
    assert part_bytes(backend.reopen(), "later") == b"abcdef"


@pytest.mark.parametrize("declared", [True, False])
def test_receive_a_whole_body(store: BlobStore, declared: bool) -> None:
    written = store.receive("whole", reader(DATA), len(DATA) if declared else None)
    assert (written.offset, written.size, written.sha256) == (0, len(DATA), sha(DATA))
    assert part_bytes(store, "whole") == DATA


def test_a_failed_receive_leaves_no_part(store: BlobStore) -> None:
    with pytest.raises(IncompleteBody):
        store.receive("cut", reader(b"abc"), 10)
    assert store.part_size("cut") is None

    def refusing(size: int) -> bytes:
        raise RuntimeError("too large")

    with pytest.raises(RuntimeError):
        store.receive("refused", refusing, None)
    assert store.part_size("refused") is None


def test_hash_and_compare_ranges(store: BlobStore) -> None:
    store.write_part("a", 0, reader(DATA), len(DATA))
    store.write_part("b", 0, reader(DATA[100:200]), 100)
    hasher = hashlib.sha256()
    store.feed_range("a", hasher, 100, 100)
    assert hasher.hexdigest() == sha(DATA[100:200])
    assert store.same_bytes("a", 100, "b", 100)
    assert not store.same_bytes("a", 101, "b", 100)
    with pytest.raises(ValueError):
        store.feed_range("a", hashlib.sha256(), len(DATA) - 10, 20)


def test_discard_and_missing_parts(store: BlobStore) -> None:
    store.write_part("gone", 0, reader(b"x"), 1)
    store.delete_part("gone")
    store.delete_part("gone")  # nothing to do: no error
    assert store.part_size("gone") is None
    with pytest.raises(FileNotFoundError):
        b"".join(store.read_part("gone", 0, 1))
    with pytest.raises(FileNotFoundError):
        store.lock_part("gone")


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 65, "dot.part"])
def test_bad_part_names_are_refused(store: BlobStore, name: str) -> None:
    with pytest.raises(ValueError):
        store.create_part(name, 1)


def test_range_locks(store: BlobStore) -> None:
    store.create_part("locked", 100)
    first, second = store.lock_part("locked"), store.lock_part("locked")
    try:
        assert first.try_lock(0, 10)
        assert first.try_lock(5, 10), "the ranges of one lock never conflict"
        assert not second.try_lock(8, 4)
        assert second.try_lock(20, 10)
        assert not second.wait_lock(0, 0, timeout=0.05)
        first.unlock(0, 15)
        assert second.try_lock(0, 10)
        assert first.try_lock(50, 10, exclusive=False) and second.try_lock(50, 10, exclusive=False)
        assert not first.try_lock(50, 5)
        second.close()
        assert first.try_lock(0, 0), "closing a lock releases every range"
    finally:
        first.close()
        second.close()


def test_unlocking_releases_exactly_its_bytes(store: BlobStore) -> None:
    store.create_part("split", 100)
    holder, other = store.lock_part("split"), store.lock_part("split")
    try:
        assert holder.try_lock(0, 100)
        holder.unlock(40, 20)
        assert other.try_lock(45, 5), "the released bytes are free"
        assert not other.try_lock(10, 10) and not other.try_lock(70, 10), "the rest stays locked"
    finally:
        holder.close()
        other.close()


def test_list_parts_by_prefix(store: BlobStore) -> None:
    before = time.time() - 1
    for name in ("task-1-a", "task-1-b", "task-2-a", "upload"):
        store.write_part(name, 0, reader(b"1234"), 4)
    assert sorted(p.name for p in store.list_parts("task-1")) == ["task-1-a", "task-1-b"]
    everything = {p.name: p for p in store.list_parts()}
    assert set(everything) == {"task-1-a", "task-1-b", "task-2-a", "upload"}
    assert everything["upload"].size == 4 and everything["upload"].modified >= before


# -- blobs --------------------------------------------------------------------------------
def test_promote_then_dedup(store: BlobStore) -> None:
    store.write_part("first", 0, reader(DATA), len(DATA))
    stored = store.promote_part("first", sha(DATA), len(DATA))
    assert (stored.sha256, stored.size, stored.created) == (sha(DATA), len(DATA), True)
    assert stored.storage_key == store.blob_key(sha(DATA))
    store.delete_part("first")  # a blob never depends on its part
    store.write_part("second", 0, reader(DATA), len(DATA))
    again = store.promote_part("second", sha(DATA), len(DATA))
    assert (again.storage_key, again.created) == (stored.storage_key, False)
    assert blob_bytes(store, stored.storage_key) == DATA
    assert store.has_blob(stored.storage_key, len(DATA))
    assert not store.has_blob(stored.storage_key, len(DATA) - 1)


def test_a_promotion_may_drop_its_part(store: BlobStore) -> None:
    """A one-request upload's part goes as it is promoted, also on a dedup hit; others stay."""
    for part in ("kept", "dropped", "again"):
        store.write_part(part, 0, reader(b"drop"), 4)
    store.promote_part("kept", sha(b"drop"), 4, shared=False)
    stored = store.promote_part("dropped", sha(b"drop"), 4, drop_part=True)
    again = store.promote_part("again", sha(b"drop"), 4, drop_part=True)
    assert (stored.created, again.created) == (True, False)
    assert [p.name for p in store.list_parts()] == ["kept"]
    assert store.part_size("dropped") is None and store.part_size("again") is None
    assert blob_bytes(store, stored.storage_key) == b"drop"


def test_unshared_blobs_have_keys_of_their_own(store: BlobStore) -> None:
    for part in ("one", "two"):
        store.write_part(part, 0, reader(b"same"), 4)
    one = store.promote_part("one", sha(b"same"), 4, shared=False)
    two = store.promote_part("two", sha(b"same"), 4, shared=False)
    assert one.created and two.created and one.storage_key != two.storage_key
    assert store.blob_key(sha(b"same"), "one") == one.storage_key
    with pytest.raises(ValueError):
        store.blob_key("not-a-digest")


def test_promote_a_prefix_of_a_preallocated_part(store: BlobStore) -> None:
    store.create_part("big", 10)
    store.write_part("big", 0, reader(b"12345"), 5)
    stored = store.promote_part("big", sha(b"12345"), 5)
    assert blob_bytes(store, stored.storage_key) == b"12345"


def test_range_reads_of_an_open_blob(store: BlobStore) -> None:
    store.write_part("ranges", 0, reader(DATA), len(DATA))
    key = store.promote_part("ranges", sha(DATA), len(DATA)).storage_key
    with store.open_blob(key) as blob:
        assert blob.size == len(DATA)
        assert b"".join(blob.read_range(0, 10)) == DATA[:10]
        assert b"".join(blob.read_range(200_000, 90_000)) == DATA[200_000:290_000]
        assert b"".join(blob.read_range(len(DATA) - 3, 3)) == DATA[-3:]
    with pytest.raises(FileNotFoundError):
        store.open_blob(store.blob_key(sha(b"never stored")))


def test_an_open_blob_told_its_first_range(store: BlobStore) -> None:
    store.write_part("first", 0, reader(DATA), len(DATA))
    key = store.promote_part("first", sha(DATA), len(DATA)).storage_key
    with store.open_blob(key, first=(100, 5_000)) as blob:  # read as told
        assert blob.size == len(DATA)
        assert b"".join(blob.read_range(100, 5_000)) == DATA[100:5_100]
        assert b"".join(blob.read_range(0, 10)) == DATA[:10]
    with store.open_blob(key, first=(0, len(DATA))) as blob:  # another range read first
        assert b"".join(blob.read_range(7, 3)) == DATA[7:10]
        assert b"".join(blob.read_range(0, len(DATA))) == DATA
    with store.open_blob(key, first=(len(DATA) - 4, 10)) as blob:  # past the end: clamped
        assert blob.size == len(DATA)
        assert b"".join(blob.read_range(len(DATA) - 4, 10)) == DATA[-4:]
    with store.open_blob(key, first=(len(DATA) + 10, 4)) as blob:  # past the end altogether
        assert blob.size == len(DATA)
    with store.open_blob(key, first=(0, 4)):
        pass  # never read: closed with the blob
    with pytest.raises(FileNotFoundError):
        store.open_blob(store.blob_key(sha(b"never stored")), first=(0, 4))


def test_a_blob_as_a_seekable_file(store: BlobStore) -> None:
    store.write_part("file", 0, reader(DATA), len(DATA))
    key = store.promote_part("file", sha(DATA), len(DATA)).storage_key
    with open_blob_file(store, key) as handle:
        handle.seek(-4, io.SEEK_END)
        assert handle.read() == DATA[-4:]
        handle.seek(70_000)
        assert handle.read(3) == DATA[70_000:70_003]


def test_delete_blobs_and_the_orphan_collectors_last_check(store: BlobStore) -> None:
    store.write_part("doomed", 0, reader(b"bytes"), 5)
    key = store.promote_part("doomed", sha(b"bytes"), 5).storage_key
    assert not store.delete_blob(key, changed_before=time.time() - 60), "promoted just now"
    assert store.delete_blob(key, changed_before=time.time() + 60)
    assert not store.has_blob(key, 5)
    assert not store.delete_blob(key)


def test_list_blobs(store: BlobStore) -> None:
    keys = set()
    for index in range(3):
        data = f"blob {index}".encode()
        store.write_part(f"p{index}", 0, reader(data), len(data))
        keys.add(store.promote_part(f"p{index}", sha(data), len(data)).storage_key)
    listed = {b.storage_key: b for b in store.list_blobs()}
    assert set(listed) == keys
    assert all(b.size == 6 and b.changed > time.time() - 60 for b in listed.values())


# -- roots and health ---------------------------------------------------------------------
def test_roots_keep_their_own_parts_and_blobs(backend: Backend) -> None:
    store = backend.store
    other = store.at(backend.other_root)
    assert other.location != store.location
    assert store.at(None).location == store.location
    other.write_part("there", 0, reader(b"abc"), 3)
    key = other.promote_part("there", sha(b"abc"), 3).storage_key
    assert store.part_size("there") is None and not store.has_blob(key, 3)
    assert other.at(backend.other_root).has_blob(key, 3)


def test_healthy_store(store: BlobStore) -> None:
    store.ensure_layout()
    store.check_writable()
    space = store.space()
    assert space is None or 0 <= space.free <= space.total


# -- copying between roots (storage/transfer.py) ------------------------------------------
def test_copy_a_blob_to_another_root(backend: Backend) -> None:
    store = backend.store
    store.write_part("src", 0, reader(DATA), len(DATA))
    key = store.promote_part("src", sha(DATA), len(DATA)).storage_key
    target = store.at(backend.other_root)
    copied = copy_blob(store, key, target, "copy1", sha256=sha(DATA), shared=True)
    assert blob_bytes(target, copied.storage_key) == DATA and target.part_size("copy1") is None
    with pytest.raises(CopyMismatch):
        copy_blob(store, key, target, "copy2", sha256=sha(b"other"), shared=False)
    assert target.part_size("copy2") is None


def test_move_a_part_to_another_root(backend: Backend) -> None:
    store = backend.store
    store.write_part("out", 0, reader(DATA), len(DATA))
    target = store.at(backend.other_root)
    move_part(store, target, "out", size=len(DATA), sha256=sha(DATA))
    assert part_bytes(target, "out") == DATA and store.part_size("out") is None


def test_the_local_store_is_path_backed(tmp_path: Path) -> None:
    local = LocalBlobStore(tmp_path)
    assert isinstance(local, PathBacked) and not isinstance(MemoryBlobStore(), PathBacked)


# -- direct parts -------------------------------------------------------------------------
def test_a_direct_part_is_promoted_to_the_key_the_store_names(backend: Backend) -> None:
    """An upload's part: written by another process in slots of 5 MiB out of order, sealed
    under the caller's lock, hashed, promoted to ``promoted_key``; a second part of the
    same content is a dedup hit on the row's key, and deleting both parts keeps the blob."""
    store, other = backend.store, backend.reopen()
    data = bytes(range(256)) * (4096 * 11) + b"tail"  # 11 MiB and 4 bytes: three slots of S3
    slot = 5 * 1024 * 1024
    store.create_part("direct1", len(data), direct=True)
    for offset in reversed(range(0, len(data), slot)):
        other.write_part(
            "direct1", offset, reader(data[offset : offset + slot]), len(data[offset : offset + slot])
        )
    assert store.part_size("direct1") == len(data)
    store.seal_part("direct1")
    hasher = hashlib.sha256()
    store.feed_range("direct1", hasher, 0, len(data))
    assert hasher.hexdigest() == sha(data)
    key = store.promoted_key("direct1", sha(data))
    blob = store.promote_part("direct1", sha(data), len(data), key=key)
    assert blob.storage_key == key and blob_bytes(store, key) == data
    store.create_part("direct2", len(data), direct=True)
    store.write_part("direct2", 0, reader(data), len(data))
    assert not store.promote_part("direct2", sha(data), len(data), key=key).created
    store.delete_part("direct1")
    store.delete_part("direct2")
    assert blob_bytes(store, key) == data
    assert store.part_size("direct1") is None
