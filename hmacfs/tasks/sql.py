"""The task queue's SQL that differs between the two databases; the one place that knows how.

PostgreSQL may acknowledge a commit before its WAL is flushed when the caller
can afford to lose the last such commits in a crash of PostgreSQL itself (never
part of one); SQLite has no such setting and always waits.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from hmacfs.db import is_postgresql

_NO_WAL_WAIT = text("SET LOCAL synchronous_commit TO off")


def skip_wal_wait(session: Session) -> None:
    """Let this transaction's commit return before its WAL is flushed (PostgreSQL only)."""
    if is_postgresql(session):
        session.execute(_NO_WAL_WAIT)
