"""Pool rules an upload must satisfy at creation (quotas: ``hmacfs.uploads.quotas``)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.config import UploadsSettings
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.errors import BadRequest, NotFound
from hmacfs.models import Pool
from hmacfs.storage import BlobStore
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


def add_pool(session: Session, store: BlobStore, pool: Pool) -> Pool:
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


def describe_pools(session: Session, settings: UploadsSettings) -> list[dict[str, object]]:
    """Every pool as a client may see it, by name: what it accepts and keeps, and which one
    uploads without a ``poolId`` go to. Where its bytes live (``storage_path``) is the
    operator's business and left out."""
    return [
        {
            "id": str(pool.id),
            "name": pool.name,
            "default": pool.id == DEFAULT_POOL_ID,
            "maxFileSize": size_limit(pool, settings),
            "allowedContentTypes": pool.allowed_content_types,
            "fileTtlSeconds": pool.file_ttl_seconds,
            "public": pool.public,
            "allowAnonymous": pool.allow_anonymous,
        }
        for pool in all_pools(session)
    ]
