"""StorageMigration: move the blobs of the account's files in a pool to another storage root.

Per blob (``hmacfs.tasks.handlers.relocation``): copy to the new root and
verify its SHA-256 (and fsync), then switch ``blobs.storage_root`` in a
transaction that also records the checkpoint, and only after
``tasks.migration_grace`` delete the old copy, so a download that read the
row just before the switch still finds its bytes. At no moment is a file
without a complete, verified copy where its row points. Target roots must be
listed in ``tasks.migration_roots`` (an operator's choice; users cannot make
the server write anywhere else).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.models import Blob, File
from hmacfs.storage import S3_SCHEME, normal_root
from hmacfs.tasks.context import TaskContext
from hmacfs.tasks.handlers.common import check_pool, uuid_param
from hmacfs.tasks.handlers.relocation import copy_blob, delete_stale, switch_root
from hmacfs.tasks.registry import task_handler


def allowed_root(settings: Settings, target: Any) -> str:
    """The configured migration root ``target`` names (a directory, or ``s3://bucket/prefix/``
    for the S3 store); ValueError otherwise."""
    if not isinstance(target, str) or not target:
        raise ValueError("targetStoragePath: required")
    wanted = _normal(target)
    for root in settings.tasks.migration_roots:
        if _normal(root) == wanted:
            return wanted
    raise ValueError("targetStoragePath: not one of the configured tasks.migration_roots")


def _normal(root: str) -> str:
    """A root as rows record it: an S3 root with one trailing slash, a directory resolved."""
    return root.rstrip("/") + "/" if root.startswith(S3_SCHEME) else str(normal_root(root))


def _validate(parameters: dict[str, Any], account: uuid.UUID, session: Session, settings: Settings) -> None:
    check_pool(session, "poolId", uuid_param(parameters, "poolId"))
    allowed_root(settings, parameters.get("targetStoragePath"))


def _blob_ids(ctx: TaskContext, root: str) -> list[str]:
    pool = uuid.UUID(str(ctx.parameters["poolId"]))
    with ctx.services.db.sessions() as session:
        query = (
            select(Blob.id)
            .join(File, File.blob_id == Blob.id)
            .where(File.pool_id == pool, File.account_id == ctx.account_id)
            .where((Blob.storage_root.is_(None)) | (Blob.storage_root != str(root)))
            .distinct()
            .order_by(Blob.id)
        )
        return [str(ident) for ident in session.scalars(query)]


@task_handler("StorageMigration", validate=_validate, display_name="Storage Migration")
def migrate(ctx: TaskContext) -> None:
    root = allowed_root(ctx.services.settings, ctx.parameters.get("targetStoragePath"))
    state = dict(ctx.state)
    ids: list[str] = state.get("blobs") or _blob_ids(ctx, root)
    done, moved, stale = int(state.get("done", 0)), int(state.get("bytes", 0)), list(state.get("stale", []))
    for index in range(done, len(ids)):
        moved += _move_blob(ctx, root, ids, index=index, moved=moved, stale=stale)
        ctx.checkpoint(index + 1, len(ids) + 1)
    delete_stale(ctx, stale, len(ids))
    ctx.results.update(blobsMoved=len(ids), bytesMoved=moved)


def _move_blob(
    ctx: TaskContext, root: str, ids: list[str], *, index: int, moved: int, stale: list[str]
) -> int:
    copied = copy_blob(ctx.services, uuid.UUID(ids[index]), str(root), ctx.part(f"m{index}"))
    size = copied.size if copied else 0
    # The stale entry is added inside the block: the state dict commits as it is at the end.
    state = {"blobs": ids, "done": index + 1, "bytes": moved + size, "stale": stale}
    with ctx.transaction(state=state) as (session, _task):
        if copied is not None:
            stale.append(switch_root(session, ctx.services, copied))
    return size
