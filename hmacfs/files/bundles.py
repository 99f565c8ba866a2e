"""Bundles: an account's named groups of files (``bundles``; ``files.bundle_id``).

A bundle groups files; it does not own them. Deleting a bundle leaves its files
(and any upload still headed for it) in place, outside any bundle. Every
function sees only the given account's bundles: another account's bundle is
"not found", never "forbidden". Services flush; the caller commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hmacfs.errors import NotFound, ValidationFailed
from hmacfs.models import Bundle, File, UploadTask, iso_utc, utcnow

MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 10_000
MAX_LIMIT = 100
# The files listed with one bundle; a larger bundle says how many there are in all.
MAX_LISTED_FILES = 1000


@dataclass(frozen=True)
class BundleSummary:
    bundle: Bundle
    file_count: int
    total_size: int


def _invalid(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {problem}", details={"field": field})


def _text(value: Any, field: str, limit: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _invalid(field, "must be a non-empty string" if required else "must be a string")
    if len(value) > limit:
        raise _invalid(field, f"at most {limit} characters")
    return value.strip() if required else value


def create_bundle(session: Session, account_id: uuid.UUID, name: Any, description: Any = None) -> Bundle:
    """A new, empty bundle of the account; ValidationFailed (400) naming a bad ``name``/``description``."""
    bundle = Bundle(
        id=uuid.uuid4(),
        account_id=account_id,
        name=_text(name, "name", MAX_NAME_LENGTH, required=True),
        description=_text(description, "description", MAX_DESCRIPTION_LENGTH, required=False),
    )
    session.add(bundle)
    session.flush()
    return bundle


def get_bundle(session: Session, account_id: uuid.UUID, bundle_id: str) -> Bundle:
    """The account's bundle ``bundle_id`` (a UUID string); NotFound (404 BUNDLE_NOT_FOUND) otherwise."""
    try:
        key = uuid.UUID(bundle_id)
    except ValueError:
        key = None
    bundle = session.get(Bundle, key) if key is not None else None
    if bundle is None or bundle.account_id != account_id:
        raise NotFound("bundle not found", code="BUNDLE_NOT_FOUND")
    return bundle


def list_bundles(
    session: Session, account_id: uuid.UUID, *, offset: int = 0, limit: int = 50
) -> tuple[list[BundleSummary], int]:
    """One page of the account's bundles, newest first, with their file counts; and the total."""
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise _invalid("limit", f"1..{MAX_LIMIT}, offset >= 0")
    total = session.scalar(select(func.count()).where(Bundle.account_id == account_id)) or 0
    sizes = (
        select(
            File.bundle_id, func.count().label("files"), func.coalesce(func.sum(File.size), 0).label("size")
        )
        .where(File.account_id == account_id, File.bundle_id.is_not(None))
        .group_by(File.bundle_id)
        .subquery()
    )
    rows = session.execute(
        select(Bundle, sizes.c.files, sizes.c.size)
        .outerjoin(sizes, sizes.c.bundle_id == Bundle.id)
        .where(Bundle.account_id == account_id)
        .order_by(Bundle.created_at.desc(), Bundle.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return [BundleSummary(bundle, int(files or 0), int(size or 0)) for bundle, files, size in rows], total


def bundle_files(session: Session, bundle: Bundle) -> tuple[list[File], BundleSummary]:
    """The bundle's first MAX_LISTED_FILES files (oldest first) and its totals."""
    files = session.scalars(
        select(File)
        .where(File.bundle_id == bundle.id)
        .order_by(File.created_at, File.id)
        .limit(MAX_LISTED_FILES)
    ).all()
    count, size = session.execute(
        select(func.count(), func.coalesce(func.sum(File.size), 0)).where(File.bundle_id == bundle.id)
    ).one()
    return list(files), BundleSummary(bundle, int(count), int(size))


def delete_bundle(session: Session, account_id: uuid.UUID, bundle_id: str) -> None:
    """Delete the account's bundle; its files and uploads stay, outside any bundle (404 if none).

    The foreign keys say ON DELETE SET NULL too, but SQLite enforces them only
    with a pragma, so the references are cleared here on every backend.
    """
    bundle = get_bundle(session, account_id, bundle_id)
    now = utcnow()
    session.execute(
        update(File).where(File.bundle_id == bundle.id).values(bundle_id=None, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(UploadTask).where(UploadTask.bundle_id == bundle.id).values(bundle_id=None, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        delete(Bundle).where(Bundle.id == bundle.id), execution_options={"synchronize_session": False}
    )
    session.expunge(bundle)
    session.flush()


def serialize(summary: BundleSummary) -> dict[str, Any]:
    """The API shape of a bundle."""
    bundle = summary.bundle
    return {
        "id": str(bundle.id),
        "name": bundle.name,
        "description": bundle.description,
        "fileCount": summary.file_count,
        "totalSize": summary.total_size,
        "createdAt": iso_utc(bundle.created_at),
        "updatedAt": iso_utc(bundle.updated_at),
    }


def serialize_file(file: File) -> dict[str, Any]:
    """A file as a bundle lists it."""
    return {
        "id": str(file.id),
        "name": file.name,
        "contentType": file.content_type,
        "size": file.size,
        "sha256": file.sha256,
        "createdAt": iso_utc(file.created_at),
    }
