"""The event log's SQL; the one place that knows how the two databases differ for it.

PostgreSQL: appending takes a per-account advisory lock (in a fixed order, last of
the transaction's locks) so one account's events get ids in commit order, and
the INSERT announces each row itself (``pg_notify``, delivered at commit) in the
same round trip. SQLite has one writer at a time, so ids are in commit order
anyway, and nothing announces: the in-process bus is woken by a commit hook.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from hmacfs.db import is_postgresql
from hmacfs.models import Event
from hmacfs.ports import lock_id

NOTIFY_CHANNEL = "hmacfs_events"

_EVENTS = cast(Table, Event.__table__)
_LOCK = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger())))
_INSERT = insert(_EVENTS).returning(_EVENTS.c.id, _EVENTS.c.created_at, sort_by_parameter_order=True)
_INSERT_AND_NOTIFY = insert(_EVENTS).returning(
    _EVENTS.c.id,
    _EVENTS.c.created_at,
    func.pg_notify(NOTIFY_CHANNEL, func.concat(_EVENTS.c.id, ":", _EVENTS.c.account_id)),
    sort_by_parameter_order=True,
)


def append_events(session: Session, rows: list[dict[str, Any]]) -> list[tuple[int, datetime]]:
    """Insert ``rows`` (``account_id``, ``type``, ``data``) in order; returns each one's
    (id, created_at). Their ids follow commit order per account (see the module)."""
    postgresql = is_postgresql(session)
    if postgresql:
        for account in sorted({row["account_id"] for row in rows}, key=str):
            session.execute(_LOCK, {"key": _account_lock(account)})
    statement = _INSERT_AND_NOTIFY if postgresql else _INSERT
    returned = session.execute(statement, rows if len(rows) > 1 else rows[0]).all()
    return [(row[0], row[1]) for row in returned]


def announces_itself(session: Session) -> bool:
    """Whether appended events reach other processes' listeners without help (NOTIFY)."""
    return is_postgresql(session)


def _account_lock(account: uuid.UUID) -> int:
    return lock_id(f"hmacfs:events:{account}")
