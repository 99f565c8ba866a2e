"""Which store's I/O goes to gevent's thread pool (hmacfs.storage.offloading)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hmacfs.storage import offloading
from hmacfs.storage.local import LocalBlobStore
from hmacfs.storage.memory import MemoryBlobStore


@pytest.fixture
def offloaded(monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """The functions handed to the thread pool (run here, as outside gevent)."""
    calls: list[Callable[..., Any]] = []

    def offload(function: Callable[..., Any], *args: object) -> Any:
        calls.append(function)
        return function(*args)

    monkeypatch.setattr(offloading, "offload", offload)
    return calls


def test_a_store_of_local_files_reads_in_the_thread_pool(
    offloaded: list[Callable[..., Any]], tmp_path: Path
) -> None:
    store = LocalBlobStore(tmp_path)
    assert offloading.offload_store_io(store, sum, [1, 2]) == 3
    assert offloaded == [sum]


def test_an_object_store_reads_in_the_calling_greenlet(offloaded: list[Callable[..., Any]]) -> None:
    """Its client's pooled gevent sockets belong to the loop's thread: a pool thread
    using one fails (greenlet.error), so nothing of an S3 store is offloaded."""
    assert offloading.offload_store_io(MemoryBlobStore(), sum, [1, 2]) == 3
    assert offloaded == []
