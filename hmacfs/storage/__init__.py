"""Blob storage: the BlobStore port (``blob_store``) and its local-filesystem backend."""

from __future__ import annotations

from hmacfs.storage.blob_store import (
    S3_SCHEME,
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
    SweepsUploads,
    WrittenRange,
)
from hmacfs.storage.copying import IncompleteBody
from hmacfs.storage.local import LocalBlobStore
from hmacfs.storage.local_files import normal_root

__all__ = [
    "S3_SCHEME",
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
    "SweepsUploads",
    "WrittenRange",
    "normal_root",
]
