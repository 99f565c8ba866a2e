"""Finding a file to download by id, without telling anyone about files they may not see."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from hmacfs.errors import NotFound
from hmacfs.models import File


def find_downloadable(session: Session, file_id: str, account_id: uuid.UUID | None, now: datetime) -> File:
    """The live file ``file_id`` when ``account_id`` may read it.

    Files without an owner (XEP-0363 slots) are readable by anyone holding
    the id; an owned file only by its owner. Anything else is NotFound (404),
    the same answer as for an id that does not exist.
    """
    try:
        ident = uuid.UUID(file_id)
    except ValueError:
        raise NotFound("no such file") from None
    file = session.get(File, ident)
    if file is None or (file.expired_at is not None and file.expired_at <= now):
        raise NotFound("no such file")
    if file.account_id is not None and file.account_id != account_id:
        raise NotFound("no such file")
    return file
