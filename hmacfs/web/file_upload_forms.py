"""An upload in the shape of a ``/api/tasks`` task: the seed's ``FileUpload`` type, read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hmacfs.models import UploadTask, iso_utc
from hmacfs.tasks.file_uploads import FILE_UPLOAD
from hmacfs.uploads.engine import progress_percent


def serialize(upload: UploadTask) -> dict[str, Any]:
    """The task fields of ``hmacfs.tasks.queries.serialize``; what was asked for is in
    ``parameters``, what arrived in ``results``; ``readOnly`` says /api/tasks cannot act on it."""
    return {
        "taskId": upload.task_id,
        "name": upload.file_name,
        "description": None,
        "type": FILE_UPLOAD,
        "customType": None,
        "status": upload.status,
        "progress": progress_percent(upload.bytes_received, upload.file_size),
        "priority": 0,
        "parameters": {
            "protocol": upload.protocol,
            "fileName": upload.file_name,
            "fileSize": upload.file_size,
            "contentType": upload.content_type,
            "chunkSize": upload.chunk_size,
            "chunksCount": upload.chunks_count,
            "poolId": str(upload.pool_id),
            "bundleId": None if upload.bundle_id is None else str(upload.bundle_id),
            "hash": upload.hash,
        },
        "results": {
            "chunksUploaded": upload.chunks_uploaded,
            "bytesUploaded": upload.bytes_received,
            "fileId": None if upload.file_id is None else str(upload.file_id),
        },
        "errorMessage": upload.error_message,
        "attempts": 0,
        "createdAt": iso_utc(upload.created_at),
        "updatedAt": iso_utc(upload.updated_at),
        "lastActivity": iso_utc(upload.last_activity),
        "startedAt": iso_utc(upload.created_at),
        "completedAt": iso_utc(upload.completed_at),
        "readOnly": True,
    }


def details(upload: UploadTask, now: datetime) -> dict[str, Any]:
    """``serialize`` plus the fields of a task's details: bytes, speed (bytes/s) and ETA."""
    data = serialize(upload)
    open_ = upload.completed_at is None and upload.status in ("Pending", "InProgress", "Paused")
    end = upload.completed_at or (upload.last_activity if open_ else now)
    elapsed = max(0.0, (end - upload.created_at).total_seconds())
    speed = upload.bytes_received / elapsed if elapsed > 0 and upload.bytes_received else None
    remaining = None if upload.file_size is None else max(0, upload.file_size - upload.bytes_received)
    eta = remaining / speed if speed and remaining is not None and upload.status == "InProgress" else None
    rate = data["progress"] / elapsed if elapsed > 0 and data["progress"] else None
    data.update(
        processed=upload.bytes_received,
        total=upload.file_size,
        elapsedSeconds=round(elapsed, 3),
        speed=round(speed, 3) if speed else None,
        progressPerSecond=round(rate, 4) if rate else None,
        etaSeconds=round(eta, 1) if eta is not None else None,
        leaseExpiresAt=None,
        hasSecret=upload.encrypt_password_sealed is not None,
    )
    return data
