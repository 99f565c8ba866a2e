"""Which of a store's work leaves the gevent loop for its thread pool.

A store of local files (``PathBacked``) reads with blocking system calls: a
long read or hash there would freeze every other request of the worker, so it
runs in gevent's thread pool. Any other store (S3) talks over gevent's patched
sockets, which already yield, and a patched socket belongs to the thread whose
hub made it: its client's pooled connections, made on the loop's thread, fail
in a pool thread and the other way round (``greenlet.error: Cannot switch to a
different thread``, seen as 500s on completion and as downloads cut short).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hmacfs.storage.blob_store import BlobStore, PathBacked
from hmacfs.storage.blocking import offload

T = TypeVar("T")


def offload_store_io(store: BlobStore, function: Callable[..., T], *args: object) -> T:
    """``function(*args)``, which does ``store``'s I/O: in the thread pool for a store of
    local files (``offload``), in the calling greenlet for any other."""
    if isinstance(store, PathBacked):
        return offload(function, *args)
    return function(*args)
