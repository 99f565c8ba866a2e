"""Parsing and serialising the Drive upload-task API's JSON (camelCase, the seed's shapes)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import request

from hmacfs.errors import BadRequest
from hmacfs.models import File, UploadTask, iso_utc
from hmacfs.models.status import Protocol
from hmacfs.uploads.engine import NewUpload, TaskFilter, check_file_name, progress_data, progress_percent
from hmacfs.web.params import media_type, query_flag, query_int

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _invalid(field: str, message: str) -> BadRequest:
    return BadRequest(f"{field}: {message}", code="VALIDATION_FAILED", details={"field": field})


def _int(body: dict[str, Any], field: str, *, required: bool) -> int | None:
    value = body.get(field)
    if value is None:
        if required:
            raise _invalid(field, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, "must be an integer")
    return value


def _str(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        if required:
            raise _invalid(field, "is required")
        return None
    if not isinstance(value, str):
        raise _invalid(field, "must be a string")
    return value


def _uuid(body: dict[str, Any], field: str) -> uuid.UUID | None:
    value = _str(body, field, required=False)
    try:
        return None if value is None else uuid.UUID(value)
    except ValueError:
        raise _invalid(field, "must be a UUID") from None


def _datetime(body: dict[str, Any], field: str) -> datetime | None:
    value = _str(body, field, required=False)
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(field, "must be an ISO 8601 date-time") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def parse_create(body: dict[str, Any], account: uuid.UUID, default_pool: uuid.UUID) -> NewUpload:
    """The create request as a NewUpload; raises 400 naming the first bad field."""
    size = _int(body, "fileSize", required=True)
    assert size is not None
    if size <= 0:
        raise BadRequest(
            "fileSize: must be positive", code="INVALID_FILE_SIZE", details={"field": "fileSize"}
        )
    sha256 = _str(body, "hash", required=True)
    if not _SHA256.match(sha256 or ""):
        raise _invalid("hash", "must be a SHA-256 hex digest")
    return NewUpload(
        protocol=Protocol.DRIVE,
        file_name=check_file_name(_str(body, "fileName", required=True)),
        file_size=size,
        account_id=account,
        pool_id=_uuid(body, "poolId") or default_pool,
        bundle_id=_uuid(body, "bundleId"),
        content_type=media_type(_str(body, "contentType", required=True) or "", "contentType"),
        chunk_size=_int(body, "chunkSize", required=False),
        sha256=sha256,
        expired_at=_datetime(body, "expiredAt"),
        encrypt_password=_str(body, "encryptPassword", required=False),
    )


def parse_filter() -> TaskFilter:
    return TaskFilter(
        status=request.args.get("status") or None,
        sort_by=request.args.get("sortBy", "lastActivity"),
        descending=query_flag("sortDescending", True),
        offset=query_int("offset", 0),
        limit=query_int("limit", 50),
    )


def recent_limit() -> int:
    return query_int("limit", 10)


def file_json(file: File) -> dict[str, Any]:
    return {
        "id": str(file.id),
        "name": file.name,
        "size": file.size,
        "contentType": file.content_type,
        "hash": file.sha256,
        "poolId": str(file.pool_id),
        "bundleId": None if file.bundle_id is None else str(file.bundle_id),
        "createdAt": iso_utc(file.created_at),
        "expiredAt": iso_utc(file.expired_at),
        "url": f"/download/{file.id}",
    }


def task_json(task: UploadTask) -> dict[str, Any]:
    return {
        "taskId": task.task_id,
        "fileName": task.file_name,
        "fileSize": task.file_size,
        "contentType": task.content_type,
        "chunkSize": task.chunk_size,
        "chunksCount": task.chunks_count,
        "chunksUploaded": task.chunks_uploaded,
        "bytesUploaded": task.bytes_received,
        "progress": progress_percent(task.bytes_received, task.file_size),
        "status": task.status,
        "poolId": str(task.pool_id),
        "bundleId": None if task.bundle_id is None else str(task.bundle_id),
        "hash": task.hash,
        "encryptRequested": task.encrypt_requested,
        "fileId": None if task.file_id is None else str(task.file_id),
        "errorMessage": task.error_message,
        "expiredAt": iso_utc(task.expired_at),
        "lastActivity": iso_utc(task.last_activity),
        "createdAt": iso_utc(task.created_at),
        "updatedAt": iso_utc(task.updated_at),
    }


def progress_json(task: UploadTask) -> dict[str, Any]:
    return {**progress_data(task), "bytesUploaded": task.bytes_received}
