"""Finding a file to download by id, without telling anyone about files they may not see."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.errors import NotFound
from hmacfs.models import Blob, File


def find_downloadable(
    session: Session, file_id: str, account_id: uuid.UUID | None, now: datetime
) -> tuple[File, Blob]:
    """The live file ``file_id`` when ``account_id`` may read it.

    Files without an owner (XEP-0363 slots) are readable by anyone holding
    the id; an owned file only by its owner. Anything else is NotFound (404),
    the same answer as for an id that does not exist.
    """
    try:
        ident = uuid.UUID(file_id)
    except ValueError:
        raise NotFound("no such file") from None
    row = session.execute(
        select(File, Blob).join(Blob, Blob.id == File.blob_id).where(File.id == ident)
    ).first()
    if row is None:
        raise NotFound("no such file")
    file, blob = row[0], row[1]
    if file.expired_at is not None and file.expired_at <= now:
        raise NotFound("no such file")
    if file.account_id is not None and file.account_id != account_id:
        raise NotFound("no such file")
    return file, blob
