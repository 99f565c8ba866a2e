"""Blob storage: the BlobStore port and its local-filesystem backend."""

from __future__ import annotations

from hmacfs.storage.copying import IncompleteBody
from hmacfs.storage.local import LocalBlobStore, StoredBlob, WrittenRange

__all__ = ["IncompleteBody", "LocalBlobStore", "StoredBlob", "WrittenRange"]
