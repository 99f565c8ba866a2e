"""The ``upload_writers`` aggregate's SQL: silent writers and the requests taking over.

Every function runs in a short transaction of its own (``sessions``), never in
the request's: a takeover must be visible to the other request, on another
worker or node, at once. Rows exist only for writers that went silent, so a
writer that keeps receiving bytes costs nothing here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.db import dialect_insert
from hmacfs.models import UploadWriter


@dataclass(frozen=True)
class Seat:
    """One writer's place: the chunk ``slot`` of ``upload_id`` (-1: the offset writer)."""

    upload_id: uuid.UUID
    slot: int
    token: str


@dataclass(frozen=True)
class Writer:
    """What a takeover learns of a slot's silent writer: where it writes from, how long it
    has been silent, and whether it has been asked to stand down."""

    client_address: str | None
    network_class: str | None
    silent_ms: int
    preempted: bool


def report_silence(
    sessions: sessionmaker[Session],
    seat: Seat,
    *,
    silent_ms: int,
    client: tuple[str | None, str],
    now: datetime,
) -> bool:
    """Record that the writer of ``seat`` has had no byte for ``silent_ms``; a row of an
    earlier writer of the slot is taken over (that writer is gone: this one holds the
    chunk's lock). Returns True when a takeover of this writer has been requested."""
    values = {
        "upload_id": seat.upload_id, "slot": seat.slot, "token": seat.token,
        "client_address": client[0], "network_class": client[1], "silent_ms": silent_ms,
        "preempted_by": None, "updated_at": now,
    }  # fmt: skip
    with sessions.begin() as session:
        insert = dialect_insert(session)(UploadWriter).values(values)
        same = UploadWriter.token == insert.excluded.token
        upsert = insert.on_conflict_do_update(
            index_elements=[UploadWriter.upload_id, UploadWriter.slot],
            set_={
                **{name: insert.excluded[name] for name in values if name != "preempted_by"},
                "preempted_by": case((same, UploadWriter.preempted_by), else_=None),
            },
        )
        found = session.execute(upsert.returning(UploadWriter.preempted_by)).first()
    return found is not None and found.preempted_by is not None


def report_heard(sessions: sessionmaker[Session], seat: Seat, now: datetime) -> bool:
    """Bytes arrived again after a silence: the writer is live. Returns True when it was
    taken over meanwhile (then it must not write them)."""
    with sessions.begin() as session:
        found = session.execute(
            update(UploadWriter)
            .where(*_mine(seat))
            .values(silent_ms=0, updated_at=now)
            .returning(UploadWriter.preempted_by)
        ).first()
    return found is not None and found.preempted_by is not None


def forget(sessions: sessionmaker[Session], seat: Seat) -> None:
    """The writer of ``seat`` has finished (or given up): remove its row."""
    with sessions.begin() as session:
        session.execute(delete(UploadWriter).where(*_mine(seat)))


def claim(
    sessions: sessionmaker[Session],
    upload_id: uuid.UUID,
    slot: int,
    *,
    claimant: str,
    client: tuple[str | None, str],
    silent_ms: int,
    switched_ms: int | None,
) -> Writer | None:
    """Ask the writer of ``slot`` to stand down if it has been silent for ``silent_ms``, or
    for ``switched_ms`` when it writes from another address or network class than
    ``client`` (None: no such shortcut). Returns the slot's writer as it is now
    (``preempted`` also when another request asked first), or None when the slot has
    no row: its writer, if any, has not been silent."""
    silent = UploadWriter.silent_ms >= silent_ms
    if switched_ms is not None:
        moved = or_(
            UploadWriter.client_address.is_distinct_from(client[0]),
            UploadWriter.network_class.is_distinct_from(client[1]),
        )
        silent = or_(silent, (UploadWriter.silent_ms >= switched_ms) & moved)
    here = (UploadWriter.upload_id == upload_id, UploadWriter.slot == slot)
    with sessions.begin() as session:
        session.execute(
            update(UploadWriter)
            .where(*here, UploadWriter.preempted_by.is_(None), silent)
            .values(preempted_by=claimant)
        )
        found = session.execute(
            select(
                UploadWriter.client_address,
                UploadWriter.network_class,
                UploadWriter.silent_ms,
                UploadWriter.preempted_by.is_not(None),
            ).where(*here)
        ).first()
    return None if found is None else Writer(*found)


def remove_stale_writers(session: Session, before: datetime) -> int:
    """Rows of writers that died without removing theirs (a killed process): not updated
    since ``before``. Returns how many were deleted."""
    result = session.execute(delete(UploadWriter).where(UploadWriter.updated_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def _mine(seat: Seat) -> tuple[ColumnElement[bool], ...]:
    return (
        UploadWriter.upload_id == seat.upload_id,
        UploadWriter.slot == seat.slot,
        UploadWriter.token == seat.token,
    )
