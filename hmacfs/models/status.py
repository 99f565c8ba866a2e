"""Status and kind enumerations stored as readable strings (checked in the schema)."""

from __future__ import annotations

from enum import StrEnum


class UploadStatus(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    PAUSED = "Paused"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"


# Background tasks go through the same lifecycle as uploads.
TaskStatus = UploadStatus

OPEN_STATUSES = (UploadStatus.PENDING, UploadStatus.IN_PROGRESS, UploadStatus.PAUSED)
FINISHED_STATUSES = (
    UploadStatus.COMPLETED,
    UploadStatus.FAILED,
    UploadStatus.CANCELLED,
    UploadStatus.EXPIRED,
)


class Protocol(StrEnum):
    XEP0363 = "xep0363"
    MULTIPART = "multipart"
    CHUNKED = "chunked"
    DRIVE = "drive"
    TUS = "tus"


class TaskType(StrEnum):
    FILE_UPLOAD = "FileUpload"
    FILE_MOVE = "FileMove"
    FILE_COMPRESS = "FileCompress"
    FILE_DECOMPRESS = "FileDecompress"
    FILE_ENCRYPT = "FileEncrypt"
    FILE_DECRYPT = "FileDecrypt"
    BULK_OPERATION = "BulkOperation"
    STORAGE_MIGRATION = "StorageMigration"
    FILE_CONVERSION = "FileConversion"
    CUSTOM = "Custom"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in enum)
