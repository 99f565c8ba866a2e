"""Finding stored files that no row accounts for, and removing them.

Two ways they appear. A completion links a part at its blob path before its
transaction commits; when the commit fails (or the process dies first) the
blob file has no ``blobs`` row. When the process dies after the commit but
before the part is dropped, the part of a completed upload stays. Neither
loses anything: a retried completion links again (or finds the link), and a
completed upload no longer needs its part. This pass removes both kinds once
they have been left alone for ``ORPHAN_GRACE``. An object store's multipart
uploads that a process dying mid-promotion left unfinished are aborted then too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.files.service import blob_store, pool_stores
from hmacfs.models import Blob, UploadTask
from hmacfs.models.status import OPEN_STATUSES
from hmacfs.storage import BlobStore, SweepsUploads

# Longer than any transaction between linking a blob and committing its row, and than
# any pause of a one-shot body (those are cut after timeouts.body_idle).
ORPHAN_GRACE = timedelta(hours=1)
_BATCH = 500
# Parts written by background tasks, which may be paused for long: their own cleanup
# (``discard_partial_output``) removes them.
_TASK_PART = "task-"


def collect_orphan_files(session: Session, store: BlobStore, now: datetime) -> int:
    """Delete blob files with no ``blobs`` row and parts with no open upload (also the
    scratch parts of re-sent chunks and one-shot bodies whose request died), untouched
    for ``ORPHAN_GRACE``, under the store's root and every pool's. Returns
    how many files were removed."""
    cutoff = (now - ORPHAN_GRACE).timestamp()
    removed = 0
    for root in (store, *pool_stores(session, store)):
        removed += _remove_orphan_blobs(session, store, root, cutoff)
        removed += _remove_orphan_parts(session, root, cutoff)
        if isinstance(root, SweepsUploads):  # an object store's abandoned multipart uploads
            removed += root.abort_uploads(started_before=cutoff)
    return removed


def _remove_orphan_blobs(session: Session, store: BlobStore, root: BlobStore, cutoff: float) -> int:
    removed = 0
    for batch in _batches(b.storage_key for b in root.list_blobs() if b.changed < cutoff):
        rows = session.execute(select(Blob.storage_key, Blob.storage_root).where(Blob.storage_key.in_(batch)))
        owned = {
            key for key, storage_root in rows if blob_store(store, storage_root).location == root.location
        }
        for key in batch:
            # Checked again last: a completion reusing the blob has just refreshed it.
            if key not in owned and root.delete_blob(key, changed_before=cutoff):
                removed += 1
    return removed


def _remove_orphan_parts(session: Session, root: BlobStore, cutoff: float) -> int:
    candidates = (
        part.name
        for part in root.list_parts()
        if not part.name.startswith(_TASK_PART) and part.modified < cutoff
    )
    removed = 0
    for batch in _batches(candidates):
        open_uploads = set(
            session.scalars(
                select(UploadTask.task_id).where(
                    UploadTask.task_id.in_(batch), UploadTask.status.in_([s.value for s in OPEN_STATUSES])
                )
            )
        )
        for name in batch:
            if name not in open_uploads:
                root.delete_part(name)
                removed += 1
    return removed


def _batches(names: Iterable[str]) -> Iterator[list[str]]:
    iterator = iter(names)
    while batch := list(islice(iterator, _BATCH)):
        yield batch
