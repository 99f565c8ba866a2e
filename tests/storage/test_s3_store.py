"""The S3 store on a real SeaweedFS: what only an object store has to get right
(pieces, assembly into equal parts, outages, presigned URLs, credentials)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.awsrequest import AWSResponse
from sqlalchemy.orm import Session

from hmacfs.files.orphans import ORPHAN_GRACE, collect_orphan_files
from hmacfs.s3_settings import S3Settings
from hmacfs.storage.blob_store import StoreUnavailable
from hmacfs.storage.copying import IncompleteBody
from hmacfs.storage.s3 import S3BlobStore
from hmacfs.storage.s3_blob_cache import CACHED_AT_MOST, BlobCache
from hmacfs.storage.s3_client import build_client
from hmacfs.storage.shared_range_lock import MemoryRangeLocks
from tests.seaweed import SeaweedS3

MiB = 1024 * 1024
PART = 5 * MiB


def make_store(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> S3BlobStore:
    for name, value in seaweed.env.items():
        monkeypatch.setenv(name, value)
    settings = S3Settings(**{**seaweed.settings(f"t-{uuid.uuid4().hex[:8]}"), "part_size": PART, **extra})
    return S3BlobStore(build_client(settings), settings, locks=MemoryRangeLocks().lock)


@pytest.fixture
def store(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3BlobStore]:
    made = make_store(seaweed, monkeypatch)
    yield made
    seaweed.empty_prefix(made.prefix)


def write(store: S3BlobStore, part: str, offset: int, data: bytes) -> None:
    store.write_part(part, offset, io.BytesIO(data).read, len(data))


def blob_bytes(store: S3BlobStore, key: str) -> bytes:
    with store.open_blob(key) as blob:
        return b"".join(blob.read_range(0, blob.size))


def multipart_parts(store: S3BlobStore, key: str) -> int:
    """How many parts the object was assembled from (its ETag's ``-N``; 1 for a plain PUT)."""
    etag = store.client.head_object(Bucket=store.bucket, Key=store.prefix + key)["ETag"].strip('"')
    return int(etag.partition("-")[2] or 1)


def test_small_chunks_in_parallel_and_out_of_order_make_equal_parts(store: S3BlobStore) -> None:
    data = os.urandom(3 * PART + 12345)
    store.create_part("up", len(data))
    chunks = [(offset, data[offset : offset + MiB]) for offset in range(0, len(data), MiB)]
    random.Random(7).shuffle(chunks)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda chunk: write(store, "up", *chunk), chunks))
    assert store.part_size("up") == len(data)
    hasher = hashlib.sha256()
    store.feed_range("up", hasher, 0, len(data))
    sha = hasher.hexdigest()
    assert sha == hashlib.sha256(data).hexdigest()

    blob = store.promote_part("up", sha, len(data))
    assert blob.created
    assert blob_bytes(store, blob.storage_key) == data
    assert multipart_parts(store, blob.storage_key) == 4  # three of part_size and the rest
    assert not store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads")


def test_chunks_of_the_part_size_are_copied_on_the_store(store: S3BlobStore) -> None:
    data = os.urandom(2 * PART + 10)
    store.create_part("up", len(data))
    write(store, "up", PART, data[PART : 2 * PART])  # out of order
    write(store, "up", 0, data[:PART])
    write(store, "up", 2 * PART, data[2 * PART :])
    sha = hashlib.sha256(data).hexdigest()
    blob = store.promote_part("up", sha, len(data), shared=False)
    assert blob.storage_key.endswith(f"{sha}-up")
    assert blob_bytes(store, blob.storage_key) == data
    assert multipart_parts(store, blob.storage_key) == 3


def test_a_chunk_spanning_slots_is_cut_at_their_boundaries(store: S3BlobStore) -> None:
    data = os.urandom(PART + 3 * MiB)
    write(store, "up", 0, data[: 2 * MiB])
    write(store, "up", 2 * MiB, data[2 * MiB :])  # crosses the first slot's end
    keys = [piece.key.rpartition("/")[2] for piece in store.listing("up").pieces]
    expected = [(0, 2 * MiB), (2 * MiB, 3 * MiB), (PART, 3 * MiB)]
    assert keys == [f"{offset:016x}-{length:016x}" for offset, length in expected]
    assert b"".join(store.read_part("up", MiB, 5 * MiB)) == data[MiB : 6 * MiB]


def test_rewritten_bytes_win_over_older_pieces(store: S3BlobStore) -> None:
    write(store, "up", 0, b"a" * 100)
    write(store, "up", 40, b"b" * 20)  # a later write over the middle, with other bounds
    assert b"".join(store.read_part("up", 0, 100)) == b"a" * 40 + b"b" * 20 + b"a" * 40
    write(store, "up", 0, b"c" * 100)  # the same bounds again: replaces, and is newest
    assert b"".join(store.read_part("up", 0, 100)) in (b"c" * 100, b"c" * 40 + b"b" * 20 + b"c" * 40)


def test_a_gap_is_refused_and_a_missing_part_is_file_not_found(store: S3BlobStore) -> None:
    write(store, "up", 0, b"x" * 10)
    write(store, "up", 20, b"y" * 10)
    with pytest.raises(ValueError, match="no bytes at 10"):
        store.feed_range("up", hashlib.sha256(), 0, 30)
    with pytest.raises(ValueError):
        store.promote_part("up", "0" * 64, 30)
    assert b"".join(store.read_part("up", 0, 30)) == b"x" * 10  # stops at the gap
    with pytest.raises(FileNotFoundError):
        store.lock_part("nothing")
    with pytest.raises(FileNotFoundError):
        store.open_blob(store.blob_key("1" * 64))
    assert store.part_size("nothing") is None


def test_a_created_parts_lock_lists_its_size_marker_alone_and_a_part_of_pieces_alone_is_found(
    store: S3BlobStore,
) -> None:
    listed: list[dict[str, Any]] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        listed.append(dict(params))

    store.client.meta.events.register("provide-client-params.s3.ListObjectsV2", note)
    store.create_part("made", 3 * PART)
    write(store, "made", 0, b"m" * 10)
    listed.clear()
    store.lock_part("made").close()
    assert [(call["Prefix"], call.get("MaxKeys")) for call in listed] == [
        (f"{store.prefix}parts/made/size-", 1)  # not every piece and marker of the part
    ]
    write(store, "pieces", 0, b"p" * 10)  # no size marker: the whole listing decides
    store.lock_part("pieces").close()
    store.delete_part("made")
    with pytest.raises(FileNotFoundError):
        store.lock_part("made")


def test_a_blob_opened_for_its_first_range_costs_one_get(store: S3BlobStore) -> None:
    data = os.urandom(3 * PART)
    write(store, "get", 0, data)
    key = store.promote_part("get", hashlib.sha256(data).hexdigest(), len(data)).storage_key
    made: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda model, **_: made.append(model.name))
    with store.open_blob(key, first=(10, 4096)) as blob:  # a small download: the GET is the check
        assert blob.size == len(data)
        assert b"".join(blob.read_range(10, 4096)) == data[10:4106]
    assert made == ["GetObject"]
    made.clear()
    with store.open_blob(key, first=(PART, 2 * PART)) as blob:  # a big one: its socket, spliced
        socket_body = blob.open_socket_range(PART, 2 * PART)
        assert socket_body is not None and socket_body.remaining + len(socket_body.buffered) == 2 * PART
        socket_body.close()
    assert made == ["GetObject"]
    made.clear()
    with store.open_blob(key):  # no range told: a HEAD, as before
        pass
    assert made == ["HeadObject"]


@pytest.mark.parametrize("size", [4096, PART], ids=["in-memory", "spooled-to-disk"])
def test_a_body_of_one_slot_received_whole_is_one_put_at_its_blob(store: S3BlobStore, size: int) -> None:
    made: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda model, **_: made.append(model.name))
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    written = store.receive("chat", io.BytesIO(data).read, len(data))
    assert (written.size, written.sha256) == (len(data), sha)
    assert made == []  # held: nothing stored before promotion decides where
    stored = store.promote_part("chat", sha, len(data), drop_part=True)
    assert made == ["PutObject"] and stored.created  # If-None-Match: * (no HEAD first)
    assert blob_bytes(store, stored.storage_key) == data
    made.clear()
    store.receive("again", io.BytesIO(data).read, len(data))  # the same picture, resent
    assert not store.promote_part("again", sha, len(data), drop_part=True).created
    assert made == ["PutObject", "HeadObject", "PutObject"]  # 412, its size checked, the touch
    made.clear()
    store.receive("refused", io.BytesIO(data).read, len(data))
    assert [entry.name for entry in store.list_parts()] == ["refused"]
    made.clear()
    store.delete_part("refused")  # a quota refused it: nothing was stored, nothing to delete
    assert made == [] and store.list_parts() == []
    with pytest.raises(IncompleteBody):
        store.receive("short", io.BytesIO(data[:100]).read, len(data))
    assert store.list_parts() == []
    made.clear()
    bigger = os.urandom(PART + 1)
    store.receive("bigger", io.BytesIO(bigger).read, len(bigger))  # past a slot: stored as it comes
    assert made and "PutObject" in made


@pytest.mark.parametrize("status", [501, 400])
def test_a_store_refusing_conditional_writes_gets_a_head_first(store: S3BlobStore, status: int) -> None:
    """A store without ``If-None-Match`` on PutObject (some answer 501, some 400): the held
    body is stored after a HEAD, and this store is not asked conditionally again."""
    refused: list[str] = []

    def refuse(request: Any, **_: Any) -> AWSResponse | None:
        if "If-None-Match" not in request.headers:
            return None
        refused.append(request.url)
        body = b"<Error><Code>NotImplemented</Code><Message>no conditions</Message></Error>"
        return AWSResponse(request.url, status, {}, _Raw(body))

    store.client.meta.events.register_first("before-send.s3.PutObject", refuse)
    for name in ("first", "second"):
        data = os.urandom(3000)
        store.receive(name, io.BytesIO(data).read, len(data))
        stored = store.promote_part(name, hashlib.sha256(data).hexdigest(), len(data), drop_part=True)
        assert stored.created and blob_bytes(store, stored.storage_key) == data
    assert len(refused) == 1


class _Raw:
    """A urllib3 response's body as botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self) -> Iterator[bytes]:
        yield self._body


def test_a_held_body_used_as_a_part_is_stored_as_its_piece_first(store: S3BlobStore) -> None:
    data = os.urandom(10_000)
    store.receive("held", io.BytesIO(data).read, len(data))
    assert b"".join(store.read_part("held", 5, 10)) == data[5:15]
    assert store.part_size("held") == len(data)
    store.write_part("held", len(data), io.BytesIO(b"more").read, 4)
    assert b"".join(store.read_part("held", 0, len(data) + 4)) == data + b"more"
    store.delete_part("held")
    assert store.list_parts() == []


def test_small_blobs_are_downloaded_again_from_memory_but_never_checked_there(store: S3BlobStore) -> None:
    store.cache = BlobCache(1024 * 1024)
    made: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda model, **_: made.append(model.name))
    picture, voice = os.urandom(4096), os.urandom(200_000)
    store.receive("pic", io.BytesIO(picture).read, len(picture))
    stored = store.promote_part("pic", hashlib.sha256(picture).hexdigest(), len(picture), drop_part=True)
    write(store, "voice", 0, voice)
    spoken = store.promote_part("voice", hashlib.sha256(voice).hexdigest(), len(voice))
    made.clear()
    with store.open_blob(stored.storage_key, first=(0, 4096)) as blob:  # kept when it was stored
        assert b"".join(blob.read_range(0, 4096)) == picture
    assert made == []
    with store.open_blob(spoken.storage_key, first=(0, len(voice))) as blob:  # kept when first served
        assert b"".join(blob.read_range(0, len(voice))) == voice
    with store.open_blob(spoken.storage_key, first=(10, 100)) as blob:
        assert b"".join(blob.read_range(10, 100)) == voice[10:110]
    assert made == ["GetObject"]
    made.clear()
    assert store.has_blob(stored.storage_key, 4096)  # an existence check asks the store
    assert made == ["HeadObject"]
    assert store.delete_blob(spoken.storage_key)
    with pytest.raises(FileNotFoundError):  # dropped by the process that deleted it
        store.open_blob(spoken.storage_key, first=(0, len(voice)))


def test_the_blob_cache_keeps_small_blobs_within_its_budget() -> None:
    cache = BlobCache(600 * 1024)
    for name in "abc":
        cache.put(name, name.encode() * 250 * 1024)
    assert cache.get("a") is None and cache.get("b") is not None  # the least recently used went
    cache.put("d", b"d" * 250 * 1024)
    assert cache.get("c") is None and cache.get("b") is not None and cache.get("d") is not None
    cache.put("big", b"x" * (CACHED_AT_MOST + 1))
    assert cache.get("big") is None
    cache.drop("b")
    assert cache.get("b") is None
    assert not BlobCache(1000).keeps(1001)


def test_dedup_promotes_once_and_parts_are_listed_and_deleted(store: S3BlobStore) -> None:
    data = b"same content" * 1000
    sha = hashlib.sha256(data).hexdigest()
    first = store.receive("one", io.BytesIO(data).read, len(data))
    second = store.receive("two", io.BytesIO(data).read, len(data))
    assert first.sha256 == second.sha256 == sha
    assert store.promote_part("one", sha, len(data)).created
    assert not store.promote_part("two", sha, len(data)).created
    assert {entry.name: entry.size for entry in store.list_parts()} == {"one": len(data), "two": len(data)}
    store.delete_part("one")
    store.delete_part("two")
    assert store.list_parts() == []
    assert [entry.storage_key for entry in store.list_blobs()] == [store.blob_key(sha)]
    assert blob_bytes(store, store.blob_key(sha)) == data


def test_a_short_body_leaves_nothing(store: S3BlobStore) -> None:
    with pytest.raises(IncompleteBody):
        store.receive("short", io.BytesIO(b"only this").read, 100)
    assert store.part_size("short") is None


def test_a_piece_is_streamed_and_a_failing_client_read_is_raised_as_it_was(store: S3BlobStore) -> None:
    data = os.urandom(2 * MiB + 7)
    source, asked = io.BytesIO(data), []

    def read(size: int) -> bytes:
        asked.append(size)
        return source.read(size)

    hasher = hashlib.sha256()
    store.write_part("up", 0, read, len(data), hashers=(hasher,))
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    assert b"".join(store.read_part("up", 0, len(data))) == data
    assert asked == [MiB, MiB, 7]  # blocks of buffer_size, though the HTTP client asks 16 KiB

    cut = io.BytesIO(data)

    def silent(size: int) -> bytes:
        if cut.tell() >= MiB:  # an OSError, which the HTTP client would wrap and retry
            raise TimeoutError("the client went silent")
        return cut.read(size)

    with pytest.raises(TimeoutError, match="went silent"):
        store.write_part("up", PART, silent, 2 * MiB)
    with pytest.raises(IncompleteBody):
        store.write_part("up", PART, io.BytesIO(b"short").read, 100)
    assert [(piece.offset, piece.length) for piece in store.listing("up").pieces] == [(0, len(data))]


def test_presigned_urls_serve_ranges_and_only_when_signed(store: S3BlobStore) -> None:
    data = os.urandom(1000)
    sha = hashlib.sha256(data).hexdigest()
    store.receive("up", io.BytesIO(data).read, len(data))
    key = store.promote_part("up", sha, len(data)).storage_key
    url = store.presigned_url(key, expires_in=60, filename='attachment; filename="a.bin"')
    answer = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert answer.status_code == 206 and answer.content == data[10:20]
    assert requests.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=10).status_code == 403


def test_an_unreachable_store_is_store_unavailable(
    own_seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(own_seaweed, monkeypatch, connect_timeout="1s")
    write(store, "up", 0, b"kept")
    own_seaweed.stop()
    for attempt in (
        lambda: write(store, "up", 4, b"more"),
        lambda: store.part_size("up"),
        lambda: b"".join(store.read_part("up", 0, 4)),
        lambda: store.open_blob(store.blob_key("2" * 64)),
    ):
        with pytest.raises(StoreUnavailable):
            attempt()
    own_seaweed.start()
    write(store, "up", 4, b"more")
    assert b"".join(store.read_part("up", 0, 8)) == b"keptmore"


def test_settings_hold_no_credentials_and_need_some(
    seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(seaweed, monkeypatch)
    settings = S3Settings(**seaweed.settings())
    assert seaweed.secret_key not in repr(settings) + repr(store)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(ValueError, match="no S3 credentials") as caught:
        build_client(settings)
    assert seaweed.secret_key not in str(caught.value)


def test_a_credentials_file_is_read(
    seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "credentials"
    path.write_text(
        f"[default]\naws_access_key_id = {seaweed.access_key}\naws_secret_access_key = {seaweed.secret_key}\n"
    )
    settings = S3Settings(**seaweed.settings("creds"), credentials_file=str(path))
    store = S3BlobStore(build_client(settings), settings, locks=MemoryRangeLocks().lock)
    store.check_writable()


def test_abandoned_multipart_uploads_are_aborted(store: S3BlobStore) -> None:
    """A promotion that died mid-way leaves a multipart upload; the sweep aborts it once
    it is older than the cutoff (the orphan collector's grace)."""
    key = store.prefix + store.blob_key("3" * 64)
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 10)
    assert store.abort_uploads(started_before=time.time() - 3600) == 0  # too young yet
    assert store.abort_uploads(started_before=time.time() + 60) == 1
    assert not store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads")


def test_a_reused_blob_counts_as_changed_for_the_collector(store: S3BlobStore) -> None:
    data = b"reused" * 100
    sha = hashlib.sha256(data).hexdigest()
    store.receive("one", io.BytesIO(data).read, len(data))
    store.promote_part("one", sha, len(data))
    time.sleep(1.1)  # S3 times have whole seconds
    between = time.time()
    time.sleep(1.1)
    store.receive("two", io.BytesIO(data).read, len(data))
    assert not store.promote_part("two", sha, len(data)).created  # reused: touched
    assert [entry.changed >= between for entry in store.list_blobs()] == [True]
    assert not store.delete_blob(store.blob_key(sha), changed_before=between)
    assert store.delete_blob(store.blob_key(sha), changed_before=time.time() + 60)
    assert list(store.list_blobs()) == []
    assert not store.delete_blob(store.blob_key(sha))


def test_the_orphan_collector_clears_the_bucket(store: S3BlobStore, session: Session) -> None:
    """The cleanup step on S3: a blob object no row names, the pieces of a part no upload
    owns and a multipart upload a dying promotion left are all gone after the grace."""
    data = b"orphan" * 100
    store.receive("stray", io.BytesIO(data).read, len(data))
    orphan = store.promote_part("stray", hashlib.sha256(data).hexdigest(), len(data)).storage_key
    key = store.prefix + store.blob_key("4" * 64)
    store.client.create_multipart_upload(Bucket=store.bucket, Key=key)
    assert collect_orphan_files(session, store, datetime.now(UTC)) == 0  # all within the grace
    later = datetime.now(UTC) + ORPHAN_GRACE + timedelta(minutes=1)
    assert collect_orphan_files(session, store, later) == 3
    assert not store.has_blob(orphan, len(data)) and store.part_size("stray") is None
    assert not store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads")
