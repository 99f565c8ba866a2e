"""Pool and quota rules an upload must satisfy at creation and again at completion."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hmacfs.config import UploadsSettings
from hmacfs.errors import BadRequest, NotFound, QuotaExceeded
from hmacfs.models import AccountQuota, File, Pool, UploadTask
from hmacfs.models.status import OPEN_STATUSES
from hmacfs.storage import LocalBlobStore
from hmacfs.uploads.chunking import check_file_size, content_type_allowed


def get_pool(session: Session, pool_id: uuid.UUID) -> Pool:
    pool = session.get(Pool, pool_id)
    if pool is None:
        raise NotFound("no such pool", code="POOL_NOT_FOUND", details={"field": "poolId"})
    return pool


def size_limit(pool: Pool, settings: UploadsSettings) -> int:
    """The pool's own limit, never above the global ``uploads.max_upload_size``."""
    if pool.max_file_size is None:
        return settings.max_upload_size
    return min(pool.max_file_size, settings.max_upload_size)


def check_extension(file_name: str, allowed: tuple[str, ...]) -> None:
    """``uploads.allowed_extensions`` (e.g. ".jpg"); empty allows any name."""
    if allowed and not file_name.lower().endswith(tuple(ext.lower() for ext in allowed)):
        raise BadRequest(
            "this file extension is not accepted",
            code="EXTENSION_NOT_ALLOWED",
            details={"field": "fileName", "allowed": list(allowed)},
        )


def check_pool_accepts(pool: Pool, settings: UploadsSettings, size: int | None, content_type: str) -> None:
    if size is not None:
        check_file_size(size, size_limit(pool, settings), allow_empty=True)
    if not content_type_allowed(content_type, pool.allowed_content_types):
        raise BadRequest(
            f"content type {content_type!r} is not accepted by this pool",
            code="CONTENT_TYPE_NOT_ALLOWED",
            details={"field": "contentType", "allowed": pool.allowed_content_types},
        )


def quota_limit(session: Session, account_id: uuid.UUID, default: int) -> int:
    """Bytes the account may hold; 0 means unlimited."""
    row = session.get(AccountQuota, account_id)
    return default if row is None else row.max_bytes


def used_bytes(session: Session, account_id: uuid.UUID, exclude: uuid.UUID | None = None) -> int:
    """Completed files plus bytes reserved by the account's unfinished uploads."""
    files = session.scalar(select(func.coalesce(func.sum(File.size), 0)).where(File.account_id == account_id))
    reserved_query = select(func.coalesce(func.sum(UploadTask.file_size), 0)).where(
        UploadTask.account_id == account_id,
        UploadTask.status.in_([status.value for status in OPEN_STATUSES]),
        UploadTask.deleted_at.is_(None),
    )
    if exclude is not None:
        reserved_query = reserved_query.where(UploadTask.id != exclude)
    return int(files or 0) + int(session.scalar(reserved_query) or 0)


def check_quota(
    session: Session, account_id: uuid.UUID | None, size: int, default: int, exclude: uuid.UUID | None = None
) -> None:
    """Raise QuotaExceeded (403) when ``size`` more bytes would pass the account's quota."""
    if account_id is None or size <= 0:
        return
    limit = quota_limit(session, account_id, default)
    if not limit:
        return
    used = used_bytes(session, account_id, exclude)
    if used + size > limit:
        raise QuotaExceeded(
            "storage quota exceeded",
            details={"quota": limit, "used": used, "requested": size},
        )


def add_pool(session: Session, store: LocalBlobStore, pool: Pool) -> Pool:
    """Add a pool; raises BadRequest when the name is taken or the storage path is not an
    absolute, writable directory (it is created when missing and recorded resolved)."""
    if session.scalar(select(Pool.id).where(Pool.name == pool.name)) is not None:
        raise BadRequest(f"pool {pool.name!r} exists", code="POOL_EXISTS", details={"field": "name"})
    if pool.storage_path is not None:
        try:
            pool.storage_path = str(store.usable_root(pool.storage_path))
        except ValueError as exc:
            raise BadRequest(
                f"storage path: {exc}", code="INVALID_STORAGE_PATH", details={"field": "storagePath"}
            ) from None
    session.add(pool)
    session.flush()
    return pool


def all_pools(session: Session) -> list[Pool]:
    return list(session.scalars(select(Pool).order_by(Pool.name)))
