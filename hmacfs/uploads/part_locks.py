"""Range locks on an upload's part that last until the request's transaction ends.

A chunk's first write locks its range before writing and keeps the lock
until the chunk's row has committed (or rolled back): then no other request
can write that range in between, and a committed chunk's bytes are only ever
replaced under the lock (see ``hmacfs.uploads.running_hash``). Completion
locks the whole part the same way, reusing the lock the request already
holds (the last chunk of a chunked-API upload completes it), so it never
waits for itself.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from hmacfs.storage import BlobStore, RangeLock

_HELD = "hmacfs.uploads.part_locks"


def keep_until_transaction_end(session: Session, part: str, lock: RangeLock) -> None:
    """Close ``lock`` on ``part`` (releasing its ranges) when ``session``'s current
    transaction ends."""
    held = session.info.setdefault(_HELD, {}).setdefault(part, lock)
    assert held is lock, "one lock per part and transaction: take it with held_or_open"


def held_or_open(session: Session, store: BlobStore, part: str) -> tuple[RangeLock, bool]:
    """The lock this transaction holds on ``part`` (True), or a new one not kept yet (False):
    all the ranges one transaction locks on a part share a lock, so they never conflict.
    Keyed by the part's name alone: a part lives under one root, and its name is unique
    (an upload's task id, a scratch name with a random tag). FileNotFoundError when
    there is no such part."""
    held = session.info.get(_HELD, {}).get(part)
    return (held, True) if held is not None else (store.lock_part(part), False)


def held_or_new(session: Session, store: BlobStore, part: str) -> RangeLock:
    """The lock this transaction holds on ``part``, or a new one kept until it ends."""
    lock, held = held_or_open(session, store, part)
    if not held:
        keep_until_transaction_end(session, part, lock)
    return lock


@event.listens_for(Session, "after_transaction_end")
def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for lock in session.info.pop(_HELD, {}).values():
            lock.close()
