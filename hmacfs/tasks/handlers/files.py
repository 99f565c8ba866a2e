"""FileMove and BulkOperation: one file per transaction, committed with the task's checkpoint.

Each item's effect and the ``done`` counter commit together, so a run that is
killed and retried continues after the last committed item and never applies
an item twice.

FileMove into a pool whose storage root differs from where a file's blob is
also moves the bytes (``relocation``): a blob only this file references is
moved as a whole (copy, verify, switch the row, delete the old copy after
``tasks.migration_grace``); a blob other files share stays where it is for
them and the moved file gets its own verified copy in the target root.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.files import adopt_copy, delete_file, same_root
from hmacfs.models import Blob, File, Pool
from hmacfs.tasks.context import TaskContext, TaskError
from hmacfs.tasks.handlers.common import (
    check_bundle,
    check_owned_files,
    check_pool,
    choice_param,
    id_list_param,
    owned_file,
    uuid_param,
)
from hmacfs.tasks.handlers.relocation import (
    Copied,
    copy_blob,
    delete_stale,
    stale_entry,
    switch_root,
)
from hmacfs.tasks.registry import task_handler

OPERATIONS = ("delete", "move", "copy", "set-expiry")


def _validate_move(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings) -> None:
    check_owned_files(session, account, "fileIds", id_list_param(parameters, "fileIds"))
    check_pool(session, "targetPoolId", uuid_param(parameters, "targetPoolId"))
    check_bundle(session, account, "targetBundleId", uuid_param(parameters, "targetBundleId", required=False))


def _each_file(ctx: TaskContext, ids: list[Any], apply: Any) -> int:
    """Apply ``apply(session, file)`` to each id after the last committed one."""
    start = int(ctx.state.get("done", 0))
    for index in range(start, len(ids)):
        with ctx.transaction(state={"done": index + 1}) as (session, _task):
            apply(session, owned_file(session, ctx, ids[index], lock=True))
        ctx.checkpoint(index + 1, len(ids))
    return len(ids)


def _mover(pool_id: Any, bundle_id: Any) -> Any:
    def move(session: Session, file: File) -> None:
        if pool_id is not None:
            pool = session.get(Pool, uuid.UUID(str(pool_id)))
            if pool is None:
                raise TaskError(f"pool {pool_id} not found")
            if pool.max_file_size is not None and file.size > pool.max_file_size:
                raise TaskError(f"file {file.id} is larger than pool {pool.name} allows")
            file.pool_id = pool.id
        if bundle_id is not None:
            file.bundle_id = uuid.UUID(str(bundle_id))

    return move


@task_handler("FileMove", validate=_validate_move, display_name="Move Files")
def move_files(ctx: TaskContext) -> None:
    params = ctx.parameters
    count = _move_each(ctx, params["fileIds"], params["targetPoolId"], params.get("targetBundleId"))
    ctx.results.update(filesProcessed=count)


def _move_each(ctx: TaskContext, ids: list[Any], pool_id: Any, bundle_id: Any) -> int:
    """Like ``_each_file`` with the mover, plus the bytes of files whose root changes."""
    move, stale = _mover(pool_id, bundle_id), list(ctx.state.get("stale", []))
    for index in range(int(ctx.state.get("done", 0)), len(ids)):
        copied = _copy_for_move(ctx, ids[index], pool_id, index) if pool_id else None
        # The stale entry is added inside the block: the state dict commits as it is at the end.
        with ctx.transaction(state={"done": index + 1, "stale": stale}) as (session, _task):
            file = owned_file(session, ctx, ids[index], lock=True)
            move(session, file)
            if copied is not None and copied.blob_id == file.blob_id:
                stale.extend(_switch(session, ctx.services, file, copied))
            elif copied is not None:  # the file got other bytes meanwhile: drop the copy
                stale.append(stale_entry(copied.root, copied.storage_key))
        ctx.checkpoint(index + 1, len(ids) + 1)
    delete_stale(ctx, stale, len(ids))
    return len(ids)


def _copy_for_move(ctx: TaskContext, file_id: Any, pool_id: Any, index: int) -> Copied | None:
    """Copy the file's bytes into the target pool's root when they live elsewhere (verified;
    nothing points at the copy yet)."""
    services = ctx.services
    with services.db.sessions() as session:
        file = owned_file(session, ctx, file_id)
        pool, blob = session.get(Pool, uuid.UUID(str(pool_id))), session.get(Blob, file.blob_id)
        if pool is None or blob is None or same_root(services.store, blob.storage_root, pool.storage_path):
            return None
        storage_root, blob_id, whole = pool.storage_path, blob.id, blob.ref_count <= 1
    # A shared blob gets a private copy with a key of its own (named after this run's part).
    return copy_blob(services, blob_id, storage_root, ctx.part(f"f{index}"), own=whole)


def _switch(session: Session, services: Services, file: File, copied: Copied) -> list[str]:
    """Point the file at its copy: the blob row itself when the copy replaces the blob's
    bytes (it alone referenced it), else a private blob of its own. Returns stale entries
    to delete."""
    blob = session.get(Blob, file.blob_id)
    if blob is not None and copied.own:
        return [switch_root(session, services, copied)]
    adopt_copy(session, file, storage_key=copied.storage_key, storage_root=copied.root)
    return []


# -- bulk ----------------------------------------------------------------------------------
def _validate_bulk(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings) -> None:
    operation = choice_param(parameters, "operationType", OPERATIONS, "")
    check_owned_files(session, account, "targetIds", id_list_param(parameters, "targetIds"))
    options = parameters.get("operationParameters", {})
    if not isinstance(options, dict):
        raise ValueError("operationParameters: must be an object")
    prefixed = {f"operationParameters.{key}": value for key, value in options.items()}
    if operation == "move":
        pool = uuid_param(prefixed, "operationParameters.targetPoolId", required=False)
        bundle = uuid_param(prefixed, "operationParameters.targetBundleId", required=False)
        if pool is None and bundle is None:
            raise ValueError("operationParameters.targetPoolId: targetPoolId or targetBundleId required")
        check_pool(session, "operationParameters.targetPoolId", pool)
        check_bundle(session, account, "operationParameters.targetBundleId", bundle)
    elif operation == "copy":
        bundle = uuid_param(prefixed, "operationParameters.targetBundleId", required=False)
        check_bundle(session, account, "operationParameters.targetBundleId", bundle)
    elif operation == "set-expiry":
        expiry_from(options, datetime.now().astimezone())


def expiry_from(options: dict[str, Any], now: datetime) -> datetime | None:
    """``expiresAt`` (ISO 8601, or null to keep forever) or ``ttlSeconds``; ValueError otherwise."""
    if "ttlSeconds" in options:
        ttl = options["ttlSeconds"]
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
            raise ValueError("operationParameters.ttlSeconds: a positive integer")
        return now + timedelta(seconds=ttl)
    if "expiresAt" not in options:
        raise ValueError("operationParameters.expiresAt: expiresAt or ttlSeconds required")
    value = options["expiresAt"]
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("operationParameters.expiresAt: an ISO 8601 timestamp") from None
    if stamp.tzinfo is None:
        raise ValueError("operationParameters.expiresAt: needs a time zone")
    return stamp


def _copier(bundle_id: Any) -> Any:
    def copy(session: Session, file: File) -> None:
        session.execute(update(Blob).where(Blob.id == file.blob_id).values(ref_count=Blob.ref_count + 1))
        session.add(
            File(
                account_id=file.account_id,
                pool_id=file.pool_id,
                bundle_id=uuid.UUID(str(bundle_id)) if bundle_id else file.bundle_id,
                name=file.name,
                content_type=file.content_type,
                size=file.size,
                blob_id=file.blob_id,
                sha256=file.sha256,
                encrypted=file.encrypted,
                encryption=file.encryption,
                expired_at=file.expired_at,
            )
        )

    return copy


def _operation(ctx: TaskContext, operation: str, options: dict[str, Any]) -> Any:
    if operation == "delete":
        return delete_file
    if operation == "copy":
        return _copier(options.get("targetBundleId"))
    expiry = expiry_from(options, ctx.services.clock.now())

    def set_expiry(session: Session, file: File) -> None:
        file.expired_at = expiry

    return set_expiry


@task_handler("BulkOperation", validate=_validate_bulk, display_name="Bulk Operation")
def bulk(ctx: TaskContext) -> None:
    params = ctx.parameters
    operation = str(params["operationType"])
    options, ids = dict(params.get("operationParameters") or {}), params["targetIds"]
    if operation == "move":
        count = _move_each(ctx, ids, options.get("targetPoolId"), options.get("targetBundleId"))
    else:
        count = _each_file(ctx, ids, _operation(ctx, operation, options))
    ctx.results.update(operationType=operation, processed=count)
