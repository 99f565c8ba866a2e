"""Blob storage: the BlobStore port (``blob_store``) and its local-filesystem backend."""

from __future__ import annotations

from hmacfs.storage.blob_store import (
    BlobEntry,
    BlobStore,
    OpenBlob,
    PartEntry,
    PathBacked,
    Presignable,
    RangeLock,
    Reserving,
    Space,
    StoredBlob,
    StoreUnavailable,
    WrittenRange,
)
from hmacfs.storage.copying import IncompleteBody
from hmacfs.storage.local import LocalBlobStore
from hmacfs.storage.local_files import normal_root

__all__ = [
    "BlobEntry",
    "BlobStore",
    "IncompleteBody",
    "LocalBlobStore",
    "OpenBlob",
    "PartEntry",
    "PathBacked",
    "Presignable",
    "RangeLock",
    "Reserving",
    "Space",
    "StoreUnavailable",
    "StoredBlob",
    "WrittenRange",
    "normal_root",
]
