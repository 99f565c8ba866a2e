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

import pytest

from hmacfs.storage.blob_store import StoreUnavailable
from hmacfs.storage.s3 import S3BlobStore
from hmacfs.storage.s3_pieces import part_of_direct_key
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
