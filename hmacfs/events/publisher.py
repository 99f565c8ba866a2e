"""Append events to the log when the publishing transaction commits, and wake listeners.

``publish`` only queues the event on the session. Just before the session
commits, the queued events are written: on PostgreSQL under a per-account
advisory lock (taken in a fixed order, and last of all the transaction's
locks), so one account's events get ids in commit order — replay ``since`` an
id and the webhook cursors rely on that — and then ``pg_notify`` tells the
listeners. Events of a transaction that rolls back are never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, SessionTransaction

from hmacfs.models import Event
from hmacfs.ports import lock_id

NOTIFY_CHANNEL = "hmacfs_events"
_Queued = tuple[SessionTransaction, uuid.UUID, str, dict[str, Any]]
_QUEUED = "hmacfs_queued_events"
_WRITTEN = "hmacfs_written_events"

# Called with nothing after any session that published commits: the in-process
# bus (SQLite) reads the new rows right away instead of waiting for its poll.
commit_hooks: list[Callable[[], None]] = []


def publish(session: Session, account_id: uuid.UUID, type: str, data: dict[str, Any]) -> None:
    """Queue an event for ``account_id``; it is written and announced when ``session`` commits.

    Rolling back the (sub)transaction it was published in discards it.
    """
    current = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_QUEUED, []).append((current, account_id, type, data))


def written_events(session: Session) -> list[Event]:
    """The events the last commit of ``session`` wrote (ids assigned), oldest first."""
    found: list[Event] = session.info.get(_WRITTEN, [])
    return found


@sa_event.listens_for(Session, "before_commit")
def _write_queued(session: Session) -> None:
    queued: list[_Queued] = session.info.pop(_QUEUED, [])
    session.info[_WRITTEN] = []
    if not queued:
        return
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql:
        for account in sorted({account for _, account, _, _ in queued}, key=str):
            session.execute(select(func.pg_advisory_xact_lock(lock_id(f"hmacfs:events:{account}"))))
    events = [Event(account_id=account, type=type, data=data) for _, account, type, data in queued]
    session.add_all(events)
    session.flush()
    for event in events:
        if postgresql:
            session.execute(select(func.pg_notify(NOTIFY_CHANNEL, f"{event.id}:{event.account_id}")))
    session.info[_WRITTEN] = events


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.get(_WRITTEN) and session.get_bind().dialect.name != "postgresql":
        for hook in list(commit_hooks):
            hook()


@sa_event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    """Drop the events published inside the transaction (or savepoint) that rolled back."""
    queued: list[_Queued] | None = session.info.get(_QUEUED)
    if queued:
        session.info[_QUEUED] = [item for item in queued if not _inside(item[0], previous_transaction)]


def _inside(transaction: SessionTransaction, ended: SessionTransaction) -> bool:
    found: SessionTransaction | None = transaction
    while found is not None:
        if found is ended:
            return True
        found = found.parent
    return False
