"""Quotas: what an account, an uploader and the whole server may hold, checked serially.

What counts (``charged``): completed files, plus for each unfinished upload its
declared size while it is reserved, else the bytes it has received (a deferred
length reserves nothing; a released reservation counts what arrived). Each
check first takes a lock per quota (``hmacfs.uploads.sql.lock_quota``) held
until the transaction ends, so two parallel uploads cannot both pass on the
same reading: the second reads the usage after the first has committed.

Quotas and their answers:
- per account (``account_quotas`` row, else ``[uploads] default_quota``): 403 QUOTA_EXCEEDED;
- reserved by one account in unfinished uploads (``[uploads] max_reserved``): 403 RESERVATION_LIMIT;
- per uploader and rolling 24 h (``[xep0363] daily_quota``): 403 QUOTA_EXCEEDED, ``scope`` "daily";
- stored plus reserved on the whole server (``[storage] global_quota``): 507 STORAGE_QUOTA_EXCEEDED.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.errors import InsufficientStorage, QuotaExceeded, ReservationLimit
from hmacfs.models import AccountQuota, Blob, File, UploadTask
from hmacfs.models.status import OPEN_STATUSES, UploadStatus
from hmacfs.uploads.sql import lock_quota

DAY = timedelta(hours=24)
_OPEN = [status.value for status in OPEN_STATUSES]
_RESERVING = and_(UploadTask.reserved, UploadTask.file_size.is_not(None))
# An unfinished upload's reservation: its declared size while reserved, else nothing.
_RESERVED_BYTES = case((_RESERVING, UploadTask.file_size), else_=0)
# Its received bytes count once its reservation is released (or it never had one).
_RECEIVED_BYTES = case((_RESERVING, 0), else_=UploadTask.bytes_received)


@dataclass(frozen=True)
class Charge:
    """What an upload adds: ``size`` bytes for ``account_id`` (None: no owner) and, for the
    daily quota, ``uploader`` (None: not counted). ``upload``: the upload being checked
    again (at completion), left out of the usage it is compared with."""

    size: int
    account_id: uuid.UUID | None = None
    uploader: str | None = None
    upload: uuid.UUID | None = None


@dataclass(frozen=True)
class Usage:
    """An account's bytes: ``limit`` (0 = unlimited), ``stored`` in files, ``receiving``
    (received by unfinished uploads that reserve nothing) and ``reserved`` (declared by
    reserved unfinished uploads)."""

    limit: int
    stored: int
    receiving: int
    reserved: int

    @property
    def used(self) -> int:
        return self.stored + self.receiving

    @property
    def charged(self) -> int:
        return self.used + self.reserved

    @property
    def available(self) -> int | None:
        """Bytes left, None when unlimited."""
        return None if not self.limit else max(0, self.limit - self.charged)


def check_quotas(
    session: Session, settings: Settings, charge: Charge, now: datetime, *, lock: bool = True
) -> None:
    """Raise when ``charge`` would pass the server's, the account's or the uploader's quota.

    ``lock``: take each quota's lock first (the caller records the upload in this
    transaction); without it the check is advisory (a refusal before a body is read),
    and a locked check must follow before anything is recorded. Locks are taken in
    one order (account, uploader, server) so two checks never wait on each other.
    """
    if charge.size <= 0:
        return
    if charge.account_id is not None:
        check_account(session, settings, charge, lock=lock)
    if charge.uploader is not None and settings.xep0363.daily_quota:
        _check_daily(session, settings.xep0363.daily_quota, charge, now, lock=lock)
    if settings.storage.global_quota:
        _check_global(session, settings.storage.global_quota, charge, lock=lock)


def check_account(session: Session, settings: Settings, charge: Charge, *, lock: bool = True) -> None:
    """403 QUOTA_EXCEEDED past the account's quota (only the account's lock is taken)."""
    assert charge.account_id is not None
    limit = quota_limit(session, charge.account_id, settings.uploads.default_quota)
    if not limit:
        return
    if lock:
        lock_quota(session, f"quota:{charge.account_id}")
    usage = account_usage(session, charge.account_id, limit, exclude=charge.upload)
    if usage.charged + charge.size > limit:
        raise QuotaExceeded(
            "storage quota exceeded",
            details={"quota": limit, "used": usage.charged, "requested": charge.size, "scope": "account"},
        )


def check_reservation(session: Session, settings: Settings, account_id: uuid.UUID | None, size: int) -> None:
    """403 RESERVATION_LIMIT when reserving ``size`` more bytes would pass ``[uploads]
    max_reserved`` for the account. Call after ``check_quotas`` (it holds the account's lock)."""
    bound = settings.uploads.max_reserved
    if account_id is None or not bound or size <= 0:
        return
    reserved = _sum(session, _RESERVED_BYTES, _open_of(account_id))
    if reserved + size > bound:
        raise ReservationLimit(
            "too many bytes reserved by unfinished uploads; finish or cancel some first",
            details={"maxReserved": bound, "reserved": reserved, "requested": size},
        )


def check_unreserved_append(
    session: Session, settings: Settings, task: UploadTask, end: int, now: datetime
) -> None:
    """Before a body is read: refuse bytes up to ``end`` of an upload that reserves nothing
    (a deferred length, a released reservation) when they would pass a quota. Advisory
    (no lock: a body may stream for long); completion checks again under the locks."""
    if task.reserved and not task.size_deferred:
        return  # its declared size is already charged
    charge = Charge(end, task.account_id, task.uploader, upload=task.id)
    check_quotas(session, settings, charge, now, lock=False)


def quota_limit(session: Session, account_id: uuid.UUID, default: int) -> int:
    """Bytes the account may hold; 0 means unlimited."""
    row = session.get(AccountQuota, account_id)
    return default if row is None else row.max_bytes


def account_usage(
    session: Session, account_id: uuid.UUID, limit: int, exclude: uuid.UUID | None = None
) -> Usage:
    """The account's usage, leaving out the upload ``exclude``."""
    stored = _files_of(session, account_id)
    condition = _open_of(account_id)
    if exclude is not None:
        condition = and_(condition, UploadTask.id != exclude)
    sums = select(func.coalesce(func.sum(_RECEIVED_BYTES), 0), func.coalesce(func.sum(_RESERVED_BYTES), 0))
    receiving, reserved = session.execute(sums.where(condition)).one()
    return Usage(limit, stored, int(receiving), int(reserved))


def _files_of(session: Session, account_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.sum(File.size), 0)).where(File.account_id == account_id)
    return int(session.scalar(query) or 0)


def _open_of(account_id: uuid.UUID | None) -> ColumnElement[bool]:
    condition = and_(UploadTask.status.in_(_OPEN), UploadTask.deleted_at.is_(None))
    return condition if account_id is None else and_(condition, UploadTask.account_id == account_id)


def _sum(session: Session, expression: ColumnElement[int], condition: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(expression), 0)).where(condition)) or 0)


def daily_usage(session: Session, uploader: str, now: datetime, exclude: uuid.UUID | None = None) -> int:
    """Bytes ``uploader`` sent in the 24 hours before ``now``: completed uploads and
    unfinished ones as they are charged (cancelled, failed and expired ones are not)."""
    counted = case(
        (and_(UploadTask.file_size.is_not(None), UploadTask.status == UploadStatus.COMPLETED.value),
         UploadTask.file_size),
        else_=_RESERVED_BYTES + _RECEIVED_BYTES,
    )  # fmt: skip
    condition = and_(
        UploadTask.uploader == uploader,
        UploadTask.created_at > now - DAY,
        UploadTask.status.in_([*_OPEN, UploadStatus.COMPLETED.value]),
    )
    if exclude is not None:
        condition = and_(condition, UploadTask.id != exclude)
    return _sum(session, counted, condition)


def _check_daily(session: Session, limit: int, charge: Charge, now: datetime, *, lock: bool) -> None:
    assert charge.uploader is not None
    if lock:
        lock_quota(session, f"quota:uploader:{charge.uploader}")
    used = daily_usage(session, charge.uploader, now, exclude=charge.upload)
    if used + charge.size > limit:
        raise QuotaExceeded(
            "daily upload quota exceeded",
            details={"quota": limit, "used": used, "requested": charge.size, "scope": "daily"},
        )


def server_usage(session: Session, exclude: uuid.UUID | None = None) -> int:
    """Bytes stored in blobs plus what every unfinished upload is charged."""
    stored = int(session.scalar(select(func.coalesce(func.sum(Blob.size), 0))) or 0)
    condition = _open_of(None)
    if exclude is not None:
        condition = and_(condition, UploadTask.id != exclude)
    return stored + _sum(session, _RESERVED_BYTES + _RECEIVED_BYTES, condition)


def _check_global(session: Session, limit: int, charge: Charge, *, lock: bool) -> None:
    if lock:
        lock_quota(session, "quota:global")
    used = server_usage(session, exclude=charge.upload)
    if used + charge.size > limit:
        raise InsufficientStorage(
            "the server's storage quota is used up; retry later",
            code="STORAGE_QUOTA_EXCEEDED",
            details={"requested": charge.size},
        )


def quota_report(session: Session, settings: Settings, account_id: uuid.UUID) -> Usage:
    """The account's quota (its row, else ``[uploads] default_quota``) and usage."""
    limit = quota_limit(session, account_id, settings.uploads.default_quota)
    return account_usage(session, account_id, limit)


def usage_json(account_id: uuid.UUID, usage: Usage) -> dict[str, object]:
    """The usage as ``GET /api/quota`` and ``hmacfs quota show`` print it (bytes)."""
    return {
        "accountId": str(account_id), "limit": usage.limit, "used": usage.used,
        "reserved": usage.reserved, "available": usage.available,
    }  # fmt: skip


def set_quota(session: Session, account_id: uuid.UUID, max_bytes: int) -> AccountQuota:
    """Set the account's quota (0 = unlimited); flushes. Raises ValueError below 0."""
    if max_bytes < 0:
        raise ValueError("a quota cannot be negative")
    row = session.get(AccountQuota, account_id)
    if row is None:
        row = AccountQuota(account_id=account_id, max_bytes=max_bytes)
        session.add(row)
    else:
        row.max_bytes = max_bytes
    session.flush()
    return row
