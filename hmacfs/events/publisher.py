"""Append an event to the log and wake listeners when the transaction commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hmacfs.models import Event

NOTIFY_CHANNEL = "hmacfs_events"


def publish(session: Session, account_id: uuid.UUID, type: str, data: dict[str, Any]) -> Event:
    """Insert an ``events`` row and, on PostgreSQL, ``pg_notify`` in the same transaction.

    Listeners are only woken once the caller's transaction commits, so they
    never see an event whose state change was rolled back. The payload is
    ``"<id>:<account>"``; listeners read the row itself.
    """
    event = Event(account_id=account_id, type=type, data=data)
    session.add(event)
    session.flush()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(select(func.pg_notify(NOTIFY_CHANNEL, f"{event.id}:{account_id}")))
    return event
