"""An S3 blob's range handed over as the socket it arrives on (``open_socket_range``), on a
real SeaweedFS: the bytes are the range's, and the store's connections keep working."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator

import pytest

from hmacfs.storage.s3 import S3BlobStore
from hmacfs.storage.s3_reading import S3SocketBody
from tests.seaweed import SeaweedS3
from tests.storage.test_s3_store import blob_bytes, make_store

MiB = 1024 * 1024


@pytest.fixture
def store(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3BlobStore]:
    made = make_store(seaweed, monkeypatch, max_connections=2)
    yield made
    seaweed.empty_prefix(made.prefix)


def put_blob(store: S3BlobStore, data: bytes) -> str:
    key = store.blob_key(hashlib.sha256(data).hexdigest())
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=data)
    return key


def taken(body: S3SocketBody) -> bytes:
    """``body``'s bytes: the buffered ones, then the rest from its socket (blocking reads)."""
    received = bytearray(body.buffered)
    with socket.socket(fileno=os.dup(body.fileno)) as sock:
        sock.setblocking(True)
        while len(received) < len(body.buffered) + body.remaining:
            block = sock.recv(MiB)
            assert block, "the store closed the connection early"
            received += block
    return bytes(received)


def test_a_socket_range_holds_the_range_and_the_pool_keeps_serving(store: S3BlobStore) -> None:
    data = os.urandom(3 * MiB + 17)
    key = put_blob(store, data)
    with store.open_blob(key) as blob:
        # More rounds than the pool has connections: each closed connection goes back to it.
        for start, length in [(0, len(data)), (MiB - 3, MiB + 9), (len(data) - 100, 1000)] * 2:
            body = blob.open_socket_range(start, length)
            assert body is not None
            assert body.timeout == 60  # the store's read_timeout, which waits for its bytes
            try:
                assert taken(body) == data[start : start + length]
            finally:
                body.close()
            assert b"".join(blob.read_range(5, 10)) == data[5:15]
    assert blob_bytes(store, key) == data


def test_a_range_past_the_end_is_none(store: S3BlobStore) -> None:
    key = put_blob(store, b"short")
    with store.open_blob(key) as blob:
        assert blob.open_socket_range(5, 10) is None
