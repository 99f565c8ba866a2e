"""Finding the file at an XEP-0363 slot path (a slot PUT goes through ``hmacfs.uploads.engine``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.models import Blob, File


def find_slot_file(session: Session, path: str, now: datetime) -> tuple[File, Blob] | None:
    """The live file at slot ``path`` and its blob (expired files are already gone for readers)."""
    query = (
        select(File, Blob)
        .join(Blob, Blob.id == File.blob_id)
        .where(File.path == path)
        .where((File.expired_at.is_(None)) | (File.expired_at > now))
    )
    row = session.execute(query).first()
    return None if row is None else (row[0], row[1])
