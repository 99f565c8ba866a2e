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

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from hmacfs.storage.range_lock import PartLock

_HELD = "hmacfs.uploads.part_locks"


def keep_until_transaction_end(session: Session, lock: PartLock) -> None:
    """Close ``lock`` (releasing its ranges) when ``session``'s current transaction ends."""
    held = session.info.setdefault(_HELD, {}).setdefault(lock.path, lock)
    assert held is lock, "one lock per part and transaction: take it with held_or_open"


def held_or_open(session: Session, path: Path) -> tuple[PartLock, bool]:
    """The lock this transaction holds on ``path`` (True), or a new one not kept yet (False):
    all the ranges one transaction locks on a part share a lock, so they never conflict."""
    held = session.info.get(_HELD, {}).get(path)
    return (held, True) if held is not None else (PartLock(path), False)


def held_or_new(session: Session, path: Path) -> PartLock:
    """The lock this transaction holds on ``path``, or a new one kept until it ends."""
    lock, held = held_or_open(session, path)
    if not held:
        keep_until_transaction_end(session, lock)
    return lock


@event.listens_for(Session, "after_transaction_end")
def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for lock in session.info.pop(_HELD, {}).values():
            lock.close()
