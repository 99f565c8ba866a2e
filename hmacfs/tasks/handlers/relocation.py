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

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.files import blob_store, same_root
from hmacfs.models import Blob
from hmacfs.storage.transfer import CopyMismatch
from hmacfs.storage.transfer import copy_blob as copy_through
from hmacfs.tasks.context import TaskContext, TaskError


@dataclass(frozen=True)
class Copied:
    """A verified copy of a blob's bytes under ``root`` (a ``storage_root`` column value),
    not yet referenced by any row; ``own`` when it replaces the blob's bytes (the
    blob's row moves to it), else it is a private copy for one file."""

    blob_id: uuid.UUID
    root: str | None
    storage_key: str
    size: int
    own: bool


def copy_blob(
    services: Services, blob_id: uuid.UUID, root: str | None, part: str, *, own: bool = True
) -> Copied | None:
    """Copy the blob's bytes under ``root`` through part ``part`` (a name of the task's
    run), verified: as the blob's own kind of key (shared or private) when ``own``,
    else as a private copy named by ``part``.

    None when the blob is gone or already under ``root``. Reads the row in a short
    transaction of its own; no connection is held while copying. Raises TaskError
    when the bytes do not match the row's SHA-256.
    """
    with services.db.sessions() as session:
        blob = session.get(Blob, blob_id)
        if blob is None or same_root(services.store, blob.storage_root, root):
            return None
        source, key, sha256, shared = (
            blob_store(services.store, blob.storage_root),
            blob.storage_key,
            blob.sha256,
            blob.shared,
        )
    target = services.store.at(root)
    try:
        stored = copy_through(source, key, target, part, sha256=sha256, shared=shared and own)
    except CopyMismatch as exc:
        raise TaskError(str(exc)) from None
    return Copied(blob_id, root, stored.storage_key, stored.size, own)


def switch_root(session: Session, services: Services, copied: Copied) -> str:
    """Point the blob row at its copy, in the caller's transaction with the row locked;
    returns the stale entry for ``delete_stale``.

    Raises TaskError when the copy vanished meanwhile (a concurrent mover's
    ``delete_stale`` removed it): the row is left pointing at its old bytes.
    """
    blob = session.get(Blob, copied.blob_id, with_for_update=True, populate_existing=True)
    if blob is None:  # deleted meanwhile: the copy is the stray one
        return stale_entry(copied.root, copied.storage_key)
    if not services.store.at(copied.root).has_blob(copied.storage_key, copied.size):
        raise TaskError(f"the copy of blob {blob.id} vanished before it was switched; run the task again")
    old = stale_entry(blob.storage_root, blob.storage_key)
    blob.storage_root, blob.storage_key = copied.root, copied.storage_key
    return old


def stale_entry(root: str | None, storage_key: str) -> str:
    """A blob's old bytes to delete later, as the task's state records it (JSON text):
    when, the root (empty: the store's own) and the key."""
    return f"{time.time()}|{root or ''}|{storage_key}"


def delete_stale(ctx: TaskContext, stale: list[str], total: int) -> None:
    """Remove the old copies once readers that saw the old row have had ``migration_grace``."""
    grace = ctx.services.settings.tasks.migration_grace.total_seconds()
    for entry in stale:
        switched, root, key = _parse_stale(entry)
        while time.time() < switched + grace:
            ctx.checkpoint(total, total + 1)
            time.sleep(min(0.2, grace))
        _delete_unless_referenced(ctx.services, root, key)


def _parse_stale(entry: str) -> tuple[float, str | None, str]:
    """A ``stale_entry``; also the ``time|path`` entries of runs started before the port
    (the path's last four parts were the key: blobs/aa/bb/<name>)."""
    switched, _, rest = entry.partition("|")
    root, separator, key = rest.rpartition("|")
    if not separator:
        parts = rest.rstrip("/").split("/")
        root, key = "/".join(parts[:-4]), "/".join(parts[-4:])
    return float(switched), root or None, key


def _delete_unless_referenced(services: Services, root: str | None, key: str) -> None:
    """Delete blob ``key`` under ``root`` unless a blob row names it (checked and removed
    under the row lock, so a concurrent ``switch_root`` to it either sees it gone or keeps it)."""
    with services.db.sessions() as session:
        blobs = session.scalars(select(Blob).where(Blob.storage_key == key).with_for_update()).all()
        if not any(same_root(services.store, blob.storage_root, root) for blob in blobs):
            services.store.at(root).delete_blob(key)
        session.commit()
