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
from datetime import datetime
from typing import Any, cast

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached, sessionmaker

from hmacfs.events.sql import announces_itself, append_events
from hmacfs.models import Event

_Queued = tuple[SessionTransaction, uuid.UUID, str, dict[str, Any]]
_Written = tuple[int, datetime, uuid.UUID, str, dict[str, Any]]  # id, created_at, account, type, data
_QUEUED = "hmacfs_queued_events"
_WRITTEN = "hmacfs_written_events"
_COMMIT_HOOKS = "hmacfs_commit_hooks"


def on_commit(sessions: sessionmaker[Session], hook: Callable[[], None]) -> None:
    """Call ``hook`` (with nothing) after each commit of a session made by ``sessions`` that
    wrote events, on SQLite: the in-process bus reads the new rows right away instead of
    waiting for its poll. PostgreSQL announces new rows with NOTIFY instead.

    The hooks belong to that session factory (its ``info``, which every session it makes
    shares), so wiring them is explicit and scoped to one database, not global.
    """
    info: dict[str, Any] = sessions.kw.setdefault("info", {})
    info.setdefault(_COMMIT_HOOKS, []).append(hook)


def publish(session: Session, account_id: uuid.UUID, type: str, data: dict[str, Any]) -> None:
    """Queue an event for ``account_id``; it is written and announced when ``session`` commits.

    Rolling back the (sub)transaction it was published in discards it.
    """
    current = session.get_nested_transaction() or session.get_transaction() or session.begin()
    session.info.setdefault(_QUEUED, []).append((current, account_id, type, data))


def written_events(session: Session) -> list[Event]:
    """The events the last commit of ``session`` wrote (ids assigned), oldest first, attached to it."""
    written: list[Event | _Written] = session.info.get(_WRITTEN, [])
    for index, item in enumerate(written):
        if not isinstance(item, Event):  # made only when asked for: publishing needs no ORM objects
            event = Event(id=item[0], created_at=item[1], account_id=item[2], type=item[3], data=item[4])
            make_transient_to_detached(event)
            session.add(event)
            written[index] = event
    return cast(list[Event], written)


@sa_event.listens_for(Session, "before_commit")
def _write_queued(session: Session) -> None:
    queued: list[_Queued] = session.info.pop(_QUEUED, [])
    session.info[_WRITTEN] = []
    if not queued:
        return
    rows = [{"account_id": account, "type": type, "data": data} for _, account, type, data in queued]
    returned = append_events(session, rows)
    session.info[_WRITTEN] = [
        (row[0], row[1], values["account_id"], values["type"], values["data"])
        for row, values in zip(returned, rows, strict=True)
    ]


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.get(_WRITTEN) and not announces_itself(session):
        for hook in list(session.info.get(_COMMIT_HOOKS, ())):
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
