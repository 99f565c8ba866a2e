"""Direct parts on a real SeaweedFS: an upload's slots written as the parts of a multipart
upload started with it, completed into the blob, so each byte is stored once."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hmacfs.storage.blob_store import StoreUnavailable
from hmacfs.storage.copying import IncompleteBody
from hmacfs.storage.s3 import S3BlobStore
from hmacfs.storage.s3_pieces import part_of_direct_key
from hmacfs.storage.s3_slot_copies import SlotCopies
from tests.storage.test_s3_store import PART, blob_bytes, multipart_parts, store, write

__all__ = ["store"]  # the fixture


def uploads(store: S3BlobStore) -> list[str]:
    found = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix).get("Uploads", [])
    return [upload["Key"] for upload in found]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def objects(store: S3BlobStore, under: str) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + under)
    return [item["Key"][len(store.prefix) :] for item in listed.get("Contents", [])]


def test_whole_slots_become_the_blob_without_a_copy(store: S3BlobStore) -> None:
    data = os.urandom(4 * PART + 12345)
    store.create_part("up", len(data), direct=True)
    # Drive-like chunks of 1.5 slots, in parallel and out of order: whole slots are parts,
    # the rest pieces.
    step = PART * 3 // 2
    chunks = [(offset, data[offset : offset + step]) for offset in range(0, len(data), step)]
    random.Random(3).shuffle(chunks)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda chunk: write(store, "up", *chunk), chunks))
    assert len(uploads(store)) == 1
    assert store.part_size("up") == len(data)
    with pytest.raises(ValueError):  # the parts cannot be read before the upload is sealed
        store.feed_range("up", hashlib.sha256(), 0, len(data))
    key = store.promoted_key("up", sha(data))
    assert part_of_direct_key(key) == "up"

    store.seal_part("up")
    hasher = hashlib.sha256()
    store.feed_range("up", hasher, 0, len(data))
    assert hasher.hexdigest() == sha(data)
    assert b"".join(store.read_part("up", PART - 10, 20)) == data[PART - 10 : PART + 10]
    assert not uploads(store)
    assert not [name for name in objects(store, "parts/up/") if "/p/" in name]  # pieces went in

    blob = store.promote_part("up", sha(data), len(data), key=key)
    assert blob.storage_key == key
    assert blob_bytes(store, key) == data
    assert multipart_parts(store, key) == 5
    store.delete_part("up")
    assert blob_bytes(store, key) == data  # deleting the part keeps its completed object
    assert objects(store, "parts/") == []


def test_promotion_seals_and_pieces_newer_than_a_part_win(store: S3BlobStore) -> None:
    data = os.urandom(3 * PART)
    store.create_part("up", len(data), direct=True)
    old = os.urandom(PART)
    write(store, "up", 0, old)  # a failed tus PATCH left slot 0 as a part
    time.sleep(1.1)  # listings' times have seconds
    write(store, "up", 0, data[: PART // 2])  # the resumed upload: smaller PATCHes, pieces
    write(store, "up", PART // 2, data[PART // 2 : PART + 7])
    write(store, "up", PART + 7, data[PART + 7 :])
    key = store.promoted_key("up", sha(data))
    blob = store.promote_part("up", sha(data), len(data), key=key)  # tus: hashed on arrival
    assert blob_bytes(store, blob.storage_key) == data


def test_a_re_sent_slot_replaces_its_part(store: S3BlobStore) -> None:
    data = bytearray(os.urandom(2 * PART + 99))
    store.create_part("up", len(data), direct=True)
    for _ in range(3):  # within a second: SeaweedFS lists every upload of part 1
        write(store, "up", 0, os.urandom(PART))
    for offset in range(0, len(data), PART):
        write(store, "up", offset, bytes(data[offset : offset + PART]))
    store.seal_part("up")
    assert b"".join(store.read_part("up", 0, len(data))) == data


def test_a_write_after_sealing_overlays_the_object(store: S3BlobStore) -> None:
    data = bytearray(os.urandom(3 * PART))
    store.create_part("up", len(data), direct=True)
    other_node = copy.copy(store)
    other_node._directs = {}
    write(other_node, "up", 0, bytes(data[:PART]))  # this node now knows the upload as open
    for offset in range(PART, len(data), PART):
        write(store, "up", offset, bytes(data[offset : offset + PART]))
    store.seal_part("up")  # completion: then a hash mismatch, and the client re-sends slot 0
    data[:PART] = os.urandom(PART)
    with pytest.raises(StoreUnavailable):  # the stale node learns it was sealed; a retry works
        write(other_node, "up", 0, bytes(data[:PART]))
    write(other_node, "up", 0, bytes(data[:PART]))
    assert b"".join(store.read_part("up", 0, len(data))) == data
    key = store.promoted_key("up", sha(data))
    assert part_of_direct_key(key) is None  # the sealed object is not this content
    blob = store.promote_part("up", sha(data), len(data), key=key)
    assert blob_bytes(store, blob.storage_key) == data


def test_dedup_and_deletion_abort_the_upload(store: S3BlobStore) -> None:
    data = os.urandom(2 * PART + 1)
    store.create_part("one", len(data), direct=True)
    write(store, "one", 0, data)
    first = store.promote_part("one", sha(data), len(data), key=store.promoted_key("one", sha(data)))
    store.create_part("two", len(data), direct=True)
    write(store, "two", 0, data)
    again = store.promote_part("two", sha(data), len(data), key=first.storage_key)  # the row's key
    assert not again.created
    assert len(uploads(store)) == 1
    store.delete_part("two")
    store.create_part("three", len(data), direct=True)
    store.delete_part("three")
    assert not uploads(store)
    store.create_part("four", len(data), direct=True)  # Drive: sealed to be hashed, then a hit
    write(store, "four", 0, data)
    store.seal_part("four")
    assert not store.promote_part("four", sha(data), len(data), key=first.storage_key).created
    store.delete_part("four")
    store.delete_part("one")
    assert objects(store, "blobs/") == [first.storage_key]  # the promoted one stays
    assert blob_bytes(store, first.storage_key) == data


def test_the_sweeps_spare_a_live_part_s_upload_and_object(store: S3BlobStore) -> None:
    data = os.urandom(2 * PART)
    store.create_part("live", len(data), direct=True)
    write(store, "live", 0, data[:PART])
    later = time.time() + 3600
    assert store.abort_uploads(started_before=later) == 0
    store.create_part("sealed", len(data), direct=True)
    write(store, "sealed", 0, data)
    store.seal_part("sealed")  # e.g. a hash mismatch: the upload stays open, its object too
    assert [entry for entry in store.list_blobs() if part_of_direct_key(entry.storage_key)] == []
    store.delete_part("live")
    assert not uploads(store)
    gone = [{"Key": store.prefix + key} for key in objects(store, "parts/sealed/")]
    store.client.delete_objects(Bucket=store.bucket, Delete={"Objects": gone})  # the part went
    assert [part_of_direct_key(entry.storage_key) for entry in store.list_blobs()] == ["sealed"]


def test_a_small_part_or_one_not_direct_uses_pieces(store: S3BlobStore) -> None:
    store.create_part("small", PART, direct=True)
    store.create_part("plain", 3 * PART)
    data = os.urandom(PART)
    write(store, "small", 0, data)
    assert not uploads(store)
    assert store.promoted_key("small", sha(data)) == store.blob_key(sha(data))
    write(store, "plain", 0, io.BytesIO(data).read(PART))
    assert not uploads(store)


# -- this node's copies of the slots it stored (hmacfs.storage.s3_slot_copies) ---------


def with_copies(store: S3BlobStore, root: Path, budget: int = 64 * PART) -> S3BlobStore:
    """``store`` as another node would see it: the same bucket, its own slot copies."""
    node = copy.copy(store)
    node.slots = SlotCopies(root, budget)
    return node


def copy_files(root: Path) -> list[str]:
    return sorted(path.name for path in root.rglob("*") if path.is_file())


def test_an_open_direct_part_is_hashed_from_the_node_s_copies(store: S3BlobStore, tmp_path: Path) -> None:
    node = with_copies(store, tmp_path)
    data = os.urandom(4 * PART + 12345)
    node.create_part("up", len(data), direct=True)
    chunks = [(offset, data[offset : offset + PART]) for offset in range(0, len(data), PART)]
    random.Random(5).shuffle(chunks)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda chunk: write(node, "up", *chunk), chunks))
    assert len(copy_files(tmp_path)) == 5
    with pytest.raises(ValueError):  # a node without the copies cannot read the open part
        store.feed_range("up", hashlib.sha256(), 0, PART)

    hasher = hashlib.sha256()
    node.feed_range("up", hasher, 0, 2 * PART + 100)  # before sealing, as the running hash does
    assert copy_files(tmp_path) and len(copy_files(tmp_path)) == 3  # the two slots read are dropped
    node.seal_part("up")  # completion: the rest, from the copies
    node.feed_range("up", hasher, 2 * PART + 100, len(data) - 2 * PART - 100)
    assert hasher.hexdigest() == sha(data)
    assert copy_files(tmp_path) == []
    blob = node.promote_part("up", sha(data), len(data), key=node.promoted_key("up", sha(data)))
    assert blob_bytes(node, blob.storage_key) == data


def test_a_slot_re_sent_elsewhere_is_never_hashed_from_a_stale_copy(
    store: S3BlobStore, tmp_path: Path
) -> None:
    node_a, node_b = with_copies(store, tmp_path / "a"), with_copies(store, tmp_path / "b")
    data = os.urandom(2 * PART + 10)
    node_a.create_part("up", len(data), direct=True)
    write(node_a, "up", 0, os.urandom(PART))  # slot 0 first stored through node A ...
    write(node_b, "up", 0, data[:PART])  # ... then re-sent, other bytes, through node B
    write(node_a, "up", PART, data[PART : 2 * PART])
    write(node_a, "up", 2 * PART, data[2 * PART :])
    with pytest.raises(ValueError):  # A's copy is not what the slot's marker names
        node_a.feed_range("up", hashlib.sha256(), 0, PART)
    hasher = hashlib.sha256()
    node_b.feed_range("up", hasher, 0, PART)  # B's is
    node_a.feed_range("up", hasher, PART, len(data) - PART)
    assert hasher.hexdigest() == sha(data)

    write(node_b, "up", PART, os.urandom(PART))  # slot 1 changes after A's copy was read
    node_a.seal_part("up")
    hasher = hashlib.sha256()
    node_a.feed_range("up", hasher, 0, len(data))  # sealed: what A has no copy of, from the store
    sealed = b"".join(node_a.read_part("up", 0, len(data)))
    assert hasher.hexdigest() == sha(sealed) != sha(data)
    node_a.delete_part("up")
    node_b.delete_part("up")
    assert copy_files(tmp_path) == []


def test_copies_stay_within_their_budget_and_pieces_are_read_from_the_store(
    store: S3BlobStore, tmp_path: Path
) -> None:
    node = with_copies(store, tmp_path, budget=PART + PART // 2)
    data = os.urandom(3 * PART)
    node.create_part("up", len(data), direct=True)
    write(node, "up", 0, data[:PART])
    write(node, "up", PART, data[PART : 2 * PART])  # past the budget: not copied
    assert len(copy_files(tmp_path)) == 1
    write(node, "up", 2 * PART, data[2 * PART : 2 * PART + 100])  # pieces, not a whole slot
    write(node, "up", 2 * PART + 100, data[2 * PART + 100 :])
    with pytest.raises(ValueError):  # slot 1 cannot be read: nothing is, and slot 0's copy stays
        node.feed_range("up", hashlib.sha256(), 0, 2 * PART)
    assert len(copy_files(tmp_path)) == 1
    hasher = hashlib.sha256()
    node.feed_range("up", hasher, 0, PART)
    with pytest.raises(ValueError):
        node.feed_range("up", hashlib.sha256(), PART, PART)
    node.seal_part("up")
    node.feed_range("up", hasher, PART, 2 * PART)
    assert hasher.hexdigest() == sha(data)


def test_a_store_that_lists_other_etags_than_md5s_has_its_markers_read(
    store: S3BlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slot markers are matched by the MD5 a listing gives their objects; where a store
    lists something else (SSE-KMS, some gateways), the markers are read instead."""
    node = with_copies(store, tmp_path)
    listed = node._list
    monkeypatch.setattr(node, "_list", lambda prefix: [x._replace(etag="not-an-md5") for x in listed(prefix)])
    data = os.urandom(2 * PART + 99)
    node.create_part("up", len(data), direct=True)
    write(node, "up", 0, os.urandom(PART))
    write(node, "up", 0, data[:PART])  # re-sent: SeaweedFS lists both uploads of number 1
    write(node, "up", PART, data[PART : 2 * PART])
    write(node, "up", 2 * PART, data[2 * PART :])
    hasher = hashlib.sha256()
    node.feed_range("up", hasher, 0, 2 * PART)  # from the copies, the markers read
    node.seal_part("up")
    node.feed_range("up", hasher, 2 * PART, len(data) - 2 * PART)
    assert hasher.hexdigest() == sha(data)
    assert b"".join(node.read_part("up", 0, len(data))) == data


def test_a_part_hashed_on_arrival_keeps_no_copies_on_any_node(store: S3BlobStore, tmp_path: Path) -> None:
    """tus hashes each PATCH as it streams: no node copies its slots."""
    creator, other = with_copies(store, tmp_path / "a"), with_copies(store, tmp_path / "b")
    data = os.urandom(2 * PART + 5)
    creator.create_part("up", len(data), direct=True, hashed_on_arrival=True)
    write(creator, "up", 0, data[:PART])
    write(other, "up", PART, data[PART : 2 * PART])  # a node that learns of the upload by listing
    write(other, "up", 2 * PART, data[2 * PART :])
    assert copy_files(tmp_path) == []
    assert len(uploads(store)) == 1  # still one multipart upload: each byte stored once
    creator.seal_part("up")
    hasher = hashlib.sha256()
    creator.feed_range("up", hasher, 0, len(data))
    assert hasher.hexdigest() == sha(data)


class SocketLike:
    """A request body as the web layer gives it (``FillingReader``): ``readinto`` returns
    what one recv would, at most ``step`` bytes; calling it for bytes is refused, so the
    store must fill its own buffer."""

    def __init__(self, data: bytes, step: int) -> None:
        self._source, self._step, self.reads = io.BytesIO(data), step, 0

    def readinto(self, view: memoryview) -> int:
        self.reads += 1
        return self._source.readinto(view[: self._step])

    def __call__(self, size: int) -> bytes:
        raise AssertionError("a filling reader is read into the store's buffer")


def test_a_socket_body_streams_through_one_reused_buffer_into_slots_and_pieces(
    store: S3BlobStore, tmp_path: Path
) -> None:
    node = with_copies(store, tmp_path)
    data = os.urandom(2 * PART + 777)
    node.create_part("up", len(data), direct=True)
    checked = hashlib.sha256()
    # An odd recv size, so reads never line up with the buffer or the slots.
    body = SocketLike(data, 300_007)
    node.write_part("up", 0, body, len(data), hashers=(checked,))
    assert checked.hexdigest() == sha(data)
    assert body.reads >= len(data) // 300_007
    assert len(copy_files(tmp_path)) == 3  # each slot (the last one short) an UploadPart, copied
    hasher = hashlib.sha256()
    node.feed_range("up", hasher, 0, len(data))  # from the copies: the bytes that were sent
    assert hasher.hexdigest() == sha(data)
    node.seal_part("up")
    blob = node.promote_part("up", sha(data), len(data), key=node.promoted_key("up", sha(data)))
    assert blob_bytes(node, blob.storage_key) == data


def test_a_socket_body_that_ends_early_stores_nothing_it_sent(store: S3BlobStore, tmp_path: Path) -> None:
    node = with_copies(store, tmp_path)
    node.create_part("up", 2 * PART, direct=True)
    with pytest.raises(IncompleteBody):
        node.write_part("up", 0, SocketLike(os.urandom(PART - 5), 65_536), PART)
    assert copy_files(tmp_path) == []
    assert store.listing("up").slots == {}
