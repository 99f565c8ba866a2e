"""Copying bytes between stores (or roots of one store) through the BlobStore port.

Whatever the backends, a copy streams range reads of the source into a part of
the target, hashing on the way; a rename is used only when both sides are
path-backed on one file system.
"""

from __future__ import annotations

import errno
import hashlib
import os

from hmacfs.storage.blob_store import BlobStore, PathBacked, StoredBlob
from hmacfs.storage.copying import blocks_reader


class CopyMismatch(ValueError):
    """The copied bytes do not hash to what the source's row says: the copy is dropped."""


def copy_blob(
    source: BlobStore, storage_key: str, target: BlobStore, part: str, *, sha256: str, shared: bool
) -> StoredBlob:
    """Copy blob ``storage_key`` of ``source`` into ``target`` as the blob of ``sha256`` (its
    key: ``target.blob_key(sha256, None if shared else part)``), through part ``part``,
    which is gone afterwards. Durable when it returns. Raises CopyMismatch when the bytes
    do not hash to ``sha256``, FileNotFoundError when the source blob is gone."""
    hasher = hashlib.sha256()
    try:
        with source.open_blob(storage_key) as blob:
            size = blob.size
            target.create_part(part, size)
            target.write_part(part, 0, blocks_reader(blob.read_range(0, size)), size, hashers=(hasher,))
        if hasher.hexdigest() != sha256:
            raise CopyMismatch(f"{storage_key}: SHA-256 does not match; blob left where it was")
        return target.promote_part(part, sha256, size, shared=shared)
    finally:
        target.delete_part(part)


def move_part(source: BlobStore, target: BlobStore, part: str, *, size: int, sha256: str) -> None:
    """Move part ``part`` (``size`` bytes hashing to ``sha256``) from ``source`` to
    ``target`` (another root): a rename when both are path-backed on one file system,
    else a verified, durable copy, after which the source's part is removed. Raises
    CopyMismatch (the copy is dropped, the source's part kept) when the bytes differ."""
    if isinstance(source, PathBacked) and isinstance(target, PathBacked):
        target.ensure_layout()
        try:
            os.replace(source.part_path(part), target.part_path(part))
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    hasher = hashlib.sha256()
    target.create_part(part, size)
    try:
        target.write_part(part, 0, blocks_reader(source.read_part(part, 0, size)), size, hashers=(hasher,))
        if hasher.hexdigest() != sha256:
            raise CopyMismatch(f"part {part}: SHA-256 does not match; left where it was")
    except BaseException:
        target.delete_part(part)
        raise
    source.delete_part(part)
