"""Append an event to the log and wake listeners when the transaction commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hmacfs.models import Event
from hmacfs.ports import lock_id

NOTIFY_CHANNEL = "hmacfs_events"
_PENDING = "hmacfs_published_events"

# Called with nothing after any session that published commits: the in-process
# bus (SQLite) reads the new rows right away instead of waiting for its poll.
commit_hooks: list[Callable[[], None]] = []


def publish(session: Session, account_id: uuid.UUID, type: str, data: dict[str, Any]) -> Event:
    """Insert an ``events`` row and, on PostgreSQL, ``pg_notify`` in the same transaction.

    Listeners are only woken once the caller's transaction commits, so they
    never see an event whose state change was rolled back. The payload is
    ``"<id>:<account>"``; listeners read the row itself.

    On PostgreSQL the transaction also takes a per-account advisory lock until
    it ends, so one account's events commit in id order: replay ``since`` an id
    and the webhook cursor rely on that. Publish last in a transaction (after
    row locks) and commit promptly.
    """
    bind = session.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:
        key = lock_id(f"hmacfs:events:{account_id}")
        session.execute(select(func.pg_advisory_xact_lock(key)))
    event = Event(account_id=account_id, type=type, data=data)
    session.add(event)
    session.flush()
    if postgresql:
        session.execute(select(func.pg_notify(NOTIFY_CHANNEL, f"{event.id}:{account_id}")))
    elif commit_hooks:
        session.info[_PENDING] = True
    return event


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        for hook in list(commit_hooks):
            hook()


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
