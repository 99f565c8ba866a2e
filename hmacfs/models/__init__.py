"""SQLAlchemy models. Importing this package registers every table on Base.metadata."""

from __future__ import annotations

from hmacfs.models.accounts import AccountQuota, ClientProfile
from hmacfs.models.base import Base, iso_utc, utcnow
from hmacfs.models.events import Event, EventLogState, WebhookCursor
from hmacfs.models.files import Blob, Bundle, File, Pool
from hmacfs.models.handoff import UploadWriter
from hmacfs.models.ratelimit import RateLimitBucket
from hmacfs.models.status import Protocol, TaskStatus, TaskType, UploadStatus
from hmacfs.models.tasks import Task
from hmacfs.models.uploads import UploadChunk, UploadTask

__all__ = [
    "AccountQuota",
    "Base",
    "Blob",
    "Bundle",
    "ClientProfile",
    "Event",
    "EventLogState",
    "File",
    "Pool",
    "Protocol",
    "RateLimitBucket",
    "Task",
    "TaskStatus",
    "TaskType",
    "UploadChunk",
    "UploadStatus",
    "UploadTask",
    "UploadWriter",
    "WebhookCursor",
    "iso_utc",
    "utcnow",
]
