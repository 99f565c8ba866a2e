"""Reading and trimming the event log: replay, bus catch-up, retention."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from hmacfs.events.records import EventRecord
from hmacfs.models import Event, EventLogState

STATE_ID = 1


def account_events_after(
    session: Session, account_id: uuid.UUID, since: int, limit: int
) -> list[EventRecord]:
    """Up to ``limit`` of one account's events with id > ``since``, oldest first."""
    rows = session.scalars(
        select(Event).where(Event.account_id == account_id, Event.id > since).order_by(Event.id).limit(limit)
    )
    return [EventRecord.of(row) for row in rows]


def events_after(session: Session, since: int, limit: int) -> list[EventRecord]:
    """Up to ``limit`` events of every account with id > ``since``, oldest first."""
    rows = session.scalars(select(Event).where(Event.id > since).order_by(Event.id).limit(limit))
    return [EventRecord.of(row) for row in rows]


def events_by_id(session: Session, ids: Collection[int]) -> dict[int, EventRecord]:
    rows = session.scalars(select(Event).where(Event.id.in_(list(ids))))
    return {row.id: EventRecord.of(row) for row in rows}


def latest_event_id(session: Session) -> int:
    return session.scalar(select(func.max(Event.id))) or 0


def purged_through(session: Session) -> int:
    """Every event with an id up to this may have been purged: replay from below it must resync."""
    return session.scalar(select(EventLogState.purged_through).where(EventLogState.id == STATE_ID)) or 0


def purge_events(session: Session, retention: timedelta, now: datetime) -> int:
    """Cleanup step: delete events older than ``retention`` (``events.retention``) and move the horizon."""
    cutoff = now - retention
    newest = session.scalar(select(func.max(Event.id)).where(Event.created_at < cutoff))
    if newest is None:
        return 0
    # Deleting by id keeps the horizon exact: nothing at or below it survives.
    result = cast(CursorResult[Any], session.execute(delete(Event).where(Event.id <= newest)))
    count = result.rowcount
    state = session.get(EventLogState, STATE_ID)
    if state is None:
        session.add(EventLogState(id=STATE_ID, purged_through=newest))
    else:
        state.purged_through = max(state.purged_through, newest)
    session.flush()
    return int(count or 0)
