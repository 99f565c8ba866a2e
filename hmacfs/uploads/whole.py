"""Receiving a whole file in one request (XEP-0363 PUT, multipart POST): ``receive_whole``.

The body streams into a fresh part before any database row exists, and no
database connection is held while it streams (a slow client must not pin a
pooled connection). A short or refused body leaves nothing behind: the part
is removed and no row is written. The file is recorded with a completed
``upload_tasks`` row, so listings and statistics see every upload.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID, on_rollback
from hmacfs.errors import Conflict, PayloadTooLarge
from hmacfs.files import NewFile, deduplicates
from hmacfs.files.one_shot import OneShot, record_whole_file
from hmacfs.models import File
from hmacfs.models.status import Protocol
from hmacfs.storage.blob_store import WrittenRange
from hmacfs.storage.copying import Reader
from hmacfs.uploads.counting import count_bytes, count_completed_upload, count_started
from hmacfs.uploads.quotas import Charge, check_quotas

# Above this size a taken slot path is refused before the body is read; below it the
# extra database round trips cost more than reading the body would (the
# authoritative check runs before the file is recorded in any case).
EARLY_CHECK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class WholeUpload:
    """A file sent whole in one request body, into the default pool."""

    protocol: Protocol
    name: str
    content_type: str
    size: int | None = None  # the body's exact length; None: read to its end, at most ``limit``
    limit: int | None = None  # with ``size`` None: bytes allowed (None: ``uploads.max_upload_size``)
    account_id: uuid.UUID | None = None  # the owner; None for a signed (ownerless) upload
    path: str | None = None  # an XEP-0363 slot path, unique among files
    check_first: bool = False  # the client has sent no body yet (Expect: 100-continue): check the path first
    uploader: str | None = None  # who the daily quota charges; None: nobody (a signed v/v2/v3 slot)
    expires: datetime | None = None  # the latest the file may expire (a file-share token's ``expires``)

    @property
    def charge(self) -> Charge:
        return Charge(self.size or 0, self.account_id, self.uploader)


def receive_whole(session: Session, services: Services, upload: WholeUpload, read: Reader) -> File:
    """Stream ``read`` into a new part and record it as a file and a completed upload task.

    Raises Conflict (409 SLOT_TAKEN) when ``upload.path`` is taken (also when a
    concurrent upload to it won), IncompleteBody (400) when a body of known size
    ends early, PayloadTooLarge (413) past the limit of a body of unknown size,
    a quota's refusal (``hmacfs.uploads.quotas``: before the body when its size is
    known, in any case after it and before anything is recorded), and whatever
    ``read`` raises (a codec's 400). Flushes; the caller commits.
    """
    early = upload.check_first or (upload.size is not None and upload.size > EARLY_CHECK_SIZE)
    if upload.path is not None and early:
        ensure_slot_free(services.db.sessions, upload.path)
    if upload.size and _may_be_limited(services.settings, upload):
        with services.db.sessions() as short:  # no connection is kept while the body streams
            check_quotas(short, services.settings, upload.charge, services.clock.now(), lock=False)
    part = uuid.uuid4().hex
    if upload.size is not None:
        written = services.store.receive(part, read, upload.size)
    else:
        limit = services.settings.uploads.max_upload_size if upload.limit is None else upload.limit
        written = services.store.receive(part, _limited(read, limit), None)
    return record_one_shot_upload(session, services, upload, part, written)


def _may_be_limited(settings: Settings, upload: WholeUpload) -> bool:
    """Whether a quota may refuse ``upload`` (an account's quota is in the database)."""
    daily = upload.uploader is not None and settings.xep0363.daily_quota
    return upload.account_id is not None or bool(daily) or bool(settings.storage.global_quota)


def ensure_slot_free(sessions: sessionmaker[Session], path: str) -> None:
    """Raise Conflict (409) when a file already lives at ``path``.

    Uses its own short session so no connection stays checked out while the
    body streams afterwards.
    """
    with sessions() as session:
        if session.scalar(select(File.id).where(File.path == path)) is not None:
            raise Conflict("a file already exists at this path", code="SLOT_TAKEN")


def _limited(read: Reader, limit: int) -> Reader:
    """``read``, raising PayloadTooLarge (413) once more than ``limit`` bytes came (the
    store then removes the part it was receiving)."""
    received = 0

    def limited(size: int) -> bytes:
        nonlocal received
        data = read(size)
        received += len(data)
        if received > limit:
            raise PayloadTooLarge("file too large", details={"maxSize": limit})
        return data

    return limited


def record_one_shot_upload(
    session: Session, services: Services, upload: WholeUpload, part: str, written: WrittenRange
) -> File:
    """Record a part received in one request as a file of the default pool and a completed
    upload task (``hmacfs.files.one_shot``: one statement on PostgreSQL); the part is
    deleted if that fails. The quotas are checked first, under their locks.

    Raises Conflict (409 SLOT_TAKEN) when ``upload.path`` is taken, and a quota's
    refusal. Flushes.
    """
    settings = services.settings
    # A commit that fails after this returns must not strand the part: nobody resumes it.
    on_rollback(session, partial(services.store.delete_part, part))
    try:
        now = services.clock.now()
        charge = replace(upload.charge, size=written.size)
        check_quotas(session, settings, charge, now)
        new = NewFile(
            name=upload.name, content_type=upload.content_type, pool_id=DEFAULT_POOL_ID,
            account_id=upload.account_id, path=upload.path,
        )  # fmt: skip
        one_shot = OneShot(
            upload.protocol, part, written.sha256, written.size,
            shared=deduplicates(settings.deduplication, written.size),
            now=now, fallback_expiry=fallback_expiry(settings.xep0363.file_ttl, now),
            expiry_cap=slot_expiry(upload.expires, settings.xep0363.file_ttl, now), uploader=upload.uploader,
        )  # fmt: skip
        file = record_whole_file(session, services.store, settings.deduplication, one_shot, new)
    except BaseException:
        services.store.delete_part(part)
        raise
    count_started(session, services.metrics, upload.protocol.value)
    count_bytes(services.metrics, upload.protocol.value, written.size)
    seconds = (services.clock.now() - now).total_seconds()
    count_completed_upload(session, services.metrics, upload.protocol.value, written.size, seconds)
    return file


def fallback_expiry(file_ttl: timedelta, now: datetime) -> datetime | None:
    """When a one-request file expires if its pool sets no lifetime: ``[xep0363] file_ttl``
    from now; None (never) for a zero TTL."""
    return now + file_ttl if file_ttl > timedelta(0) else None


def slot_expiry(expires: datetime | None, file_ttl: timedelta, now: datetime) -> datetime | None:
    """The latest a slot file may expire: a file-share token's ``expires``, capped by
    ``[xep0363] file_ttl`` from now (the pool's lifetime caps it too, where the file is
    recorded); None without a token's ``expires``."""
    if expires is None:
        return None
    return min(expires, now + file_ttl) if file_ttl > timedelta(0) else expires
