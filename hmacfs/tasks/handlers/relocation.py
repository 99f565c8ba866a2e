"""Moving a blob's bytes to another storage root with no moment where a download fails.

Shared by StorageMigration (every blob of a pool) and FileMove (the blobs of
the moved files). Per blob:

1. ``copy_blob``: copy to the new root, fsync, verify the SHA-256 (outside any
   transaction; nothing points at the copy yet);
2. ``switch_root`` in the item's transaction, blob row locked: check the copy
   is still there, point ``blobs.storage_root`` at it, and return the old
   location as a stale entry that commits with the task's checkpoint;
3. ``delete_stale`` once ``tasks.migration_grace`` has passed, so a download
   that resolved the old path just before the switch still finds its bytes;
   an old path that a blob row points at again by then (moved back) is kept.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.files import blob_location, blob_root
from hmacfs.models import Blob
from hmacfs.storage.local import holds
from hmacfs.tasks.context import TaskContext, TaskError

BLOCK = 1024 * 1024


@dataclass(frozen=True)
class Copied:
    """A verified copy of a blob's bytes, not yet referenced by any row."""

    blob_id: uuid.UUID
    target: Path
    storage_key: str
    size: int


def copy_verified(source: Path, target: Path, sha256: str, fsync: bool) -> int:
    """Copy ``source`` to ``target`` (atomically) and check the copy's SHA-256; returns bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest, size = hashlib.sha256(), 0
    try:
        with source.open("rb") as reader, temporary.open("wb") as writer:
            while block := reader.read(BLOCK):
                writer.write(block)
                digest.update(block)
                size += len(block)
            writer.flush()
            if fsync:
                os.fsync(writer.fileno())
        if digest.hexdigest() != sha256:
            raise TaskError(f"{source.name}: SHA-256 does not match; blob left where it was")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return size


def copy_blob(services: Services, blob_id: uuid.UUID, root: Path, key: str | None = None) -> Copied | None:
    """Copy the blob's bytes to ``root``/``key`` (default: its own key), verified.

    None when the blob is gone or its bytes are already there. Reads the row
    in a short transaction of its own; no connection is held while copying.
    """
    with services.db.sessions() as session:
        blob = session.get(Blob, blob_id)
        if blob is None:
            return None
        source, sha256 = blob_location(services.store, blob), blob.sha256
        key = key or blob.storage_key
    target = root / key
    if source.resolve() == target.resolve():
        return None
    size = copy_verified(source, target, sha256, services.store.fsync)
    return Copied(blob_id, target, key, size)


def switch_root(session: Session, services: Services, copied: Copied, storage_root: str | None) -> str:
    """Point the blob row at its copy (``storage_root`` NULL = the store root), in the caller's
    transaction with the row locked; returns the stale entry for ``delete_stale``.

    Raises TaskError when the copy vanished meanwhile (a concurrent mover's
    ``delete_stale`` removed it): the row is left pointing at its old bytes.
    """
    blob = session.get(Blob, copied.blob_id, with_for_update=True, populate_existing=True)
    if blob is None:  # deleted meanwhile: the copy is the stray one
        return stale_entry(copied.target)
    if not holds(copied.target, copied.size):
        raise TaskError(f"the copy of blob {blob.id} vanished before it was switched; run the task again")
    old = blob_location(services.store, blob)
    blob.storage_root = storage_root
    return stale_entry(old)


def stale_entry(path: Path) -> str:
    return f"{time.time()}|{path}"


def delete_stale(ctx: TaskContext, stale: list[str], total: int) -> None:
    """Remove the old copies once readers that saw the old row have had ``migration_grace``."""
    grace = ctx.services.settings.tasks.migration_grace.total_seconds()
    for entry in stale:
        switched, _, path = entry.partition("|")
        while time.time() < float(switched) + grace:
            ctx.checkpoint(total, total + 1)
            time.sleep(min(0.2, grace))
        _delete_unless_referenced(ctx.services, Path(path))


def _delete_unless_referenced(services: Services, path: Path) -> None:
    """Unlink ``path`` unless a blob row resolves to it (checked and removed under the row lock,
    so a concurrent ``switch_root`` to this path either sees it gone or keeps it)."""
    key = "/".join(path.parts[-4:])  # blobs/aa/bb/<name>
    with services.db.sessions() as session:
        blobs = session.scalars(select(Blob).where(Blob.storage_key == key).with_for_update()).all()
        if all(blob_location(services.store, blob).resolve() != path.resolve() for blob in blobs):
            path.unlink(missing_ok=True)
        session.commit()


def same_root(services: Services, first: str | None, second: str | None) -> bool:
    """Whether two ``storage_root`` values (NULL = the store root) name one directory."""
    store = services.store
    return blob_root(store, first).resolve() == blob_root(store, second).resolve()
