"""Finding stored files that no row accounts for, and removing them.

Two ways they appear. A completion links a part at its blob path before its
transaction commits; when the commit fails (or the process dies first) the
blob file has no ``blobs`` row. When the process dies after the commit but
before the part is dropped, the part of a completed upload stays. Neither
loses anything: a retried completion links again (or finds the link), and a
completed upload no longer needs its part. This pass removes both kinds once
they have been left alone for ``ORPHAN_GRACE``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.files.service import blob_root, pool_stores
from hmacfs.models import Blob, UploadTask
from hmacfs.models.status import OPEN_STATUSES
from hmacfs.storage import LocalBlobStore

# Longer than any transaction between linking a blob and committing its row, and than
# any pause of a one-shot body (those are cut after timeouts.body_idle).
ORPHAN_GRACE = timedelta(hours=1)
_BATCH = 500
# Parts written by background tasks, which may be paused for long: their own cleanup
# (``discard_partial_output``) removes them.
_TASK_PART = "task-"


def collect_orphan_files(session: Session, store: LocalBlobStore, now: datetime) -> int:
    """Delete blob files with no ``blobs`` row and parts with no open upload (also the
    scratch parts of re-sent chunks and one-shot bodies whose request died), untouched
    for ``ORPHAN_GRACE``, under the store's root and every pool's. Returns
    how many files were removed."""
    cutoff = (now - ORPHAN_GRACE).timestamp()
    removed = 0
    for root in (store, *pool_stores(session, store)):
        removed += _remove_orphan_blobs(session, store, root, cutoff)
        removed += _remove_orphan_parts(session, root, cutoff)
    return removed


def _remove_orphan_blobs(session: Session, store: LocalBlobStore, root: LocalBlobStore, cutoff: float) -> int:
    removed = 0
    for batch in _batches(f for f in root.blob_files() if _changed_before(f, cutoff)):
        keys = {_key(root, path): path for path in batch}
        rows = session.execute(select(Blob.storage_key, Blob.storage_root).where(Blob.storage_key.in_(keys)))
        owned = {key for key, storage_root in rows if blob_root(store, storage_root) == root.root}
        for key, path in keys.items():
            # Checked again last: a completion reusing the file has just changed its ctime.
            if key not in owned and _changed_before(path, cutoff):
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _remove_orphan_parts(session: Session, root: LocalBlobStore, cutoff: float) -> int:
    candidates = (
        path
        for path in root.part_files()
        if not path.name.startswith(_TASK_PART) and _modified_before(path, cutoff)
    )
    removed = 0
    for batch in _batches(candidates):
        names = {path.stem: path for path in batch}
        open_uploads = set(
            session.scalars(
                select(UploadTask.task_id).where(
                    UploadTask.task_id.in_(names), UploadTask.status.in_([s.value for s in OPEN_STATUSES])
                )
            )
        )
        for name, path in names.items():
            if name not in open_uploads:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _key(root: LocalBlobStore, path: Path) -> str:
    return path.relative_to(root.root).as_posix()


def _batches(paths: Iterable[Path]) -> Iterator[list[Path]]:
    iterator = iter(paths)
    while batch := list(islice(iterator, _BATCH)):
        yield batch


def _changed_before(path: Path, cutoff: float) -> bool:
    """Whether the inode last changed (written, linked, renamed) before ``cutoff``."""
    try:
        return os.stat(path).st_ctime < cutoff
    except FileNotFoundError:
        return False


def _modified_before(path: Path, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime < cutoff
    except FileNotFoundError:
        return False
