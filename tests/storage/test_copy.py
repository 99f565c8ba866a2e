"""The store's body copy: hashing and writing overlapped with reading, exact bytes."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from hmacfs.storage import LocalBlobStore
from hmacfs.storage.copying import IncompleteBody


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 7])
def test_receive_writes_and_hashes_every_block(tmp_path: Path, size: int) -> None:
    store = LocalBlobStore(tmp_path, fsync=False, buffer_size=4096)
    body = os.urandom(size)
    written = store.receive("p1", io.BytesIO(body).read, size)
    assert written.sha256 == hashlib.sha256(body).hexdigest()
    assert store.part_path("p1").read_bytes() == body


def test_short_body_leaves_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, fsync=False, buffer_size=4096)
    with pytest.raises(IncompleteBody):
        store.receive("p2", io.BytesIO(b"x" * 5000).read, 9000)
    assert not store.part_path("p2").exists()
