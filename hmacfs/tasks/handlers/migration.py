"""StorageMigration: move the blobs of the account's files in a pool to another storage root.

Per blob: copy to the new root and verify its SHA-256 (and fsync), then
switch ``blobs.storage_root`` in a transaction that also records the
checkpoint, and only after ``tasks.migration_grace`` delete the old copy, so
a download that read the row just before the switch still finds its bytes.
At no moment is a file without a complete, verified copy where its row points.
Target roots must be listed in ``tasks.migration_roots`` (an operator's choice;
users cannot make the server write anywhere else).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.models import Blob, File
from hmacfs.tasks.context import TaskContext, TaskError
from hmacfs.tasks.handlers.common import blob_file_path, check_pool, uuid_param
from hmacfs.tasks.registry import task_handler

BLOCK = 1024 * 1024


def allowed_root(services: Services, target: Any) -> Path:
    """The configured migration root ``target`` names; ValueError otherwise."""
    if not isinstance(target, str) or not target:
        raise ValueError("targetStoragePath: required")
    wanted = os.path.realpath(target)
    for root in services.settings.tasks.migration_roots:
        if os.path.realpath(root) == wanted:
            return Path(wanted)
    raise ValueError("targetStoragePath: not one of the configured tasks.migration_roots")


def _validate(parameters: dict[str, Any], account: uuid.UUID, session: Session, services: Services) -> None:
    check_pool(session, "poolId", uuid_param(parameters, "poolId"))
    allowed_root(services, parameters.get("targetStoragePath"))


def _blob_ids(ctx: TaskContext, root: Path) -> list[str]:
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


@task_handler("StorageMigration", validate=_validate, display_name="Storage Migration")
def migrate(ctx: TaskContext) -> None:
    root = allowed_root(ctx.services, ctx.parameters.get("targetStoragePath"))
    state = dict(ctx.state)
    ids: list[str] = state.get("blobs") or _blob_ids(ctx, root)
    done, moved, stale = int(state.get("done", 0)), int(state.get("bytes", 0)), list(state.get("stale", []))
    for index in range(done, len(ids)):
        moved += _move_blob(ctx, root, ids, index=index, moved=moved, stale=stale)
        ctx.checkpoint(index + 1, len(ids) + 1)
    _delete_stale(ctx, stale, len(ids))
    ctx.results.update(blobsMoved=len(ids), bytesMoved=moved)


def _move_blob(
    ctx: TaskContext, root: Path, ids: list[str], *, index: int, moved: int, stale: list[str]
) -> int:
    with ctx.services.db.sessions() as session:
        blob = session.get(Blob, uuid.UUID(ids[index]))
        source = blob_file_path(ctx.services, blob) if blob else None
        key, sha256 = (blob.storage_key, blob.sha256) if blob else ("", "")
    size = 0
    if source is not None and source.resolve() != (root / key).resolve():
        size = copy_verified(source, root / key, sha256, ctx.services.store.fsync)
        stale.append(f"{time.time()}|{source}")
    state = {"blobs": ids, "done": index + 1, "bytes": moved + size, "stale": stale}
    with ctx.transaction(state=state) as (session, _task):
        current = session.get(Blob, uuid.UUID(ids[index]), with_for_update=True)
        if current is not None and size:
            current.storage_root = str(root)
    return size


def _delete_stale(ctx: TaskContext, stale: list[str], total: int) -> None:
    """Remove the old copies once readers that saw the old row have had ``migration_grace``."""
    grace = ctx.services.settings.tasks.migration_grace.total_seconds()
    for entry in stale:
        switched, _, path = entry.partition("|")
        while time.time() < float(switched) + grace:
            ctx.checkpoint(total, total + 1)
            time.sleep(min(0.2, grace))
        Path(path).unlink(missing_ok=True)
