"""The client-profile aggregate's SQL (``client_profiles``), the same contract on
PostgreSQL and SQLite (``INSERT .. ON CONFLICT DO NOTHING`` on both; the row
lock is PostgreSQL's, SQLite has one writer anyway)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table, delete, select, update
from sqlalchemy.orm import Session

from hmacfs.db import built_once, dialect_insert
from hmacfs.models import ClientProfile, UploadTask
from hmacfs.network.keys import ClientKey


def add_profile(session: Session, client: ClientKey, now: datetime) -> None:
    """Insert an empty profile for ``client`` unless one exists (a concurrent insert is fine)."""
    statement = built_once(_ADD, session, _build_add)
    values = {
        "key": client.key,
        "account_id": client.account_id,
        "client_id": client.client_id,
        "connection_type": client.network_class.value,
        "last_seen": now,
    }
    session.execute(statement, values)


def _build_add(session: Session) -> Executable:
    table = cast(Table, ClientProfile.__table__)
    return dialect_insert(session)(table).on_conflict_do_nothing(index_elements=[table.c.key])


_ADD: dict[str, Executable] = {}


def find_profile(session: Session, key: str) -> ClientProfile | None:
    return session.get(ClientProfile, key)


def lock_profile(session: Session, key: str) -> ClientProfile | None:
    """The profile, locked until the transaction ends (PostgreSQL ``FOR NO KEY UPDATE``: an
    upload referring to it, even uncommitted, does not block it), freshly read."""
    return session.scalar(
        select(ClientProfile)
        .where(ClientProfile.key == key)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


def save_profile(session: Session, key: str, values: dict[str, Any]) -> None:
    session.execute(update(ClientProfile).where(ClientProfile.key == key).values(**values))


def delete_unseen(session: Session, before: datetime, limit: int = 1000) -> int:
    """Delete up to ``limit`` profiles last seen before ``before``; their uploads keep NULL
    (the foreign key is ON DELETE SET NULL). Returns how many went."""
    keys = list(
        session.scalars(
            select(ClientProfile.key)
            .where(ClientProfile.last_seen < before)
            .order_by(ClientProfile.last_seen)
            .limit(limit)
        )
    )
    if not keys:
        return 0
    session.execute(
        update(UploadTask).where(UploadTask.client_profile_key.in_(keys)).values(client_profile_key=None)
    )
    result = cast(
        CursorResult[Any], session.execute(delete(ClientProfile).where(ClientProfile.key.in_(keys)))
    )
    return result.rowcount
