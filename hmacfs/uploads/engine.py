"""The upload engine's front door: the one surface every protocol adapter calls.

Verbs (each flushes; the request boundary commits or rolls back):
- ``create``: validate against the pool, limits and quota; add the upload and preallocate its part;
- ``write_chunk``: store a numbered chunk (chunked and Drive APIs), idempotent and safe in parallel;
- ``write_at_offset``: append bytes at the upload's offset (tus), one writer at a time;
- ``complete``: verify every byte and the SHA-256, then make the file (idempotent);
- ``cancel``: stop an unfinished upload and delete its bytes;
- ``status``: the upload with its received and missing chunks;
- ``receive_whole``: a whole file in one request body (XEP-0363 PUT, multipart POST).

``write_chunk`` and ``write_at_offset`` take the body's ``BodyWatch`` (made by the
adapter, given to its body reader too): a writer that went silent mid-body (a
client that switched networks) is then taken over by the client's retry at once
(``hmacfs.uploads.handoff``).

Besides them: ``find`` (an upload the caller may see), tus's ``concatenate``,
``terminate`` and ``finish_if_done``, the Drive API's listings and statistics,
and the values and pure helpers adapters build requests and answers from.
Protocol codecs (headers, multipart) stay in the adapters (``hmacfs.web``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hmacfs.errors import NotFound
from hmacfs.files import find_duplicate
from hmacfs.models import Bundle, Pool, UploadTask
from hmacfs.models.status import Protocol
from hmacfs.uploads.chunking import check_file_name, missing_chunks, progress_percent
from hmacfs.uploads.chunks import ChunkResult, write_chunk
from hmacfs.uploads.completion import complete_upload as complete
from hmacfs.uploads.digest import ExpectedDigest
from hmacfs.uploads.handoff import BodyWatch, ClientLink, WriterPreempted
from hmacfs.uploads.notify import progress_data
from hmacfs.uploads.offsets import concatenate, find_parts, finish_if_done, write_at_offset
from hmacfs.uploads.offsets import terminate_upload as terminate
from hmacfs.uploads.policy import describe_pools, get_pool
from hmacfs.uploads.queries import (
    TaskFilter,
    check_filter,
    cleanup_finished,
    eta_seconds,
    expires_at,
    list_uploads,
    recent_uploads,
    upload_speed,
    upload_stats,
)
from hmacfs.uploads.service import ChecksumMismatch, NewUpload, new_task_id, uploaded_indexes
from hmacfs.uploads.service import cancel_upload as cancel
from hmacfs.uploads.service import create_upload as create
from hmacfs.uploads.service import get_upload as find
from hmacfs.uploads.whole import WholeUpload, receive_whole

__all__ = [
    "BodyWatch", "ChecksumMismatch", "ChunkResult", "ClientLink", "ExpectedDigest", "NewUpload",
    "TaskFilter", "UploadDetails", "UploadState", "WholeUpload", "WriterPreempted", "cancel",
    "check_bundle", "check_file_name", "check_filter",
    "cleanup_finished", "complete", "concatenate", "create", "describe_pools", "details", "expires_at",
    "find",
    "find_duplicate", "find_parts", "finish_if_done", "list_uploads", "missing_chunks", "new_task_id",
    "pool_allows_anonymous", "progress_data", "progress_percent", "receive_whole", "recent_uploads",
    "status", "terminate", "upload_stats", "write_at_offset", "write_chunk",
]  # fmt: skip


@dataclass(frozen=True)
class UploadState:
    """An upload and which of its chunks are in."""

    task: UploadTask
    uploaded_chunks: list[int]
    missing_chunks: list[int]


def status(session: Session, task_id: str, account_id: uuid.UUID | None, protocol: Protocol) -> UploadState:
    """The upload ``task_id`` of ``protocol`` as ``account_id`` may see it (404 otherwise),
    with its received and missing chunk indexes."""
    task = find(session, task_id, account_id, protocol)
    uploaded = uploaded_indexes(session, task)
    return UploadState(task, uploaded, missing_chunks(task.chunks_count or 0, uploaded))


@dataclass(frozen=True)
class UploadDetails:
    """What the Drive API's details call adds to a task: speed (bytes/s), the seconds left
    at that speed, and the pool and bundle it goes to."""

    speed: float
    eta: float | None
    pool: Pool | None
    bundle: Bundle | None


def details(session: Session, task: UploadTask) -> UploadDetails:
    speed = upload_speed(session, task)
    pool = session.get(Pool, task.pool_id)
    bundle = None if task.bundle_id is None else session.get(Bundle, task.bundle_id)
    return UploadDetails(speed, eta_seconds(task, speed), pool, bundle)


def check_bundle(session: Session, bundle_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """404 BUNDLE_NOT_FOUND unless ``bundle_id`` is one of the account's bundles."""
    bundle = session.get(Bundle, bundle_id)
    if bundle is None or bundle.account_id != account_id:
        raise NotFound("no such bundle", code="BUNDLE_NOT_FOUND", details={"field": "bundleId"})


def pool_allows_anonymous(session: Session, pool_id: uuid.UUID) -> bool:
    """Whether uploads without an account may go into the pool (404 POOL_NOT_FOUND if none)."""
    return get_pool(session, pool_id).allow_anonymous
