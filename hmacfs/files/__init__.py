"""Files as users see them, and the blobs that hold their bytes."""

from __future__ import annotations

from hmacfs.files.service import (
    NewFile,
    PathTaken,
    adopt_copy,
    blob_location,
    blob_store,
    collect_blobs,
    create_file_from_part,
    deduplicates,
    delete_file,
    expire_files,
    find_duplicate,
    pool_stores,
    same_root,
)

__all__ = [
    "NewFile",
    "PathTaken",
    "adopt_copy",
    "blob_location",
    "blob_store",
    "collect_blobs",
    "create_file_from_part",
    "deduplicates",
    "delete_file",
    "expire_files",
    "find_duplicate",
    "pool_stores",
    "same_root",
]
