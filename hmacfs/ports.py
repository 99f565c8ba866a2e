"""Small ports the services depend on; backends are chosen in the composition root
(``hmacfs.container``, ``hmacfs.composition``)."""

from __future__ import annotations

import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class TaskTypes(Protocol):
    """The task handlers this server has (``hmacfs.tasks.registry.TaskHandlers``), as submitting sees them."""

    def display_name(self, name: str) -> str | None:
        """The handler's display name; None when this server has no handler ``name``."""

    def validate(
        self, name: str, parameters: dict[str, Any], account_id: uuid.UUID, session: Session
    ) -> None:
        """Check a known handler's parameters; raises ``ValueError("field: problem")``."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class LockBusy(Exception):
    """Another holder (process, machine) has the lock."""


class Locker(Protocol):
    def hold(self, key: str) -> AbstractContextManager[None]:
        """Hold ``key`` exclusively for the ``with`` block; raise LockBusy at once if taken."""

    def hold_in(self, session: Session, key: str) -> AbstractContextManager[None]:
        """Hold ``key`` at least for the ``with`` block, and where the backend can until
        ``session``'s transaction ends; raise LockBusy at once if taken."""


def lock_id(key: str) -> int:
    """A stable signed 64-bit advisory-lock id for ``key``."""
    high = zlib.crc32(key.encode())
    low = zlib.crc32(key.encode()[::-1])
    value = (high << 32) | low
    return value - (1 << 64) if value >= 1 << 63 else value


class PgAdvisoryLocker:
    """Session-level PostgreSQL advisory locks: exclusive across processes and machines.

    Each hold uses its own pooled connection so the lock never rides on a
    request's transaction; if the process dies the server releases it.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        ident = lock_id(key)
        with self._engine.connect() as connection:
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ident}).scalar()
            connection.commit()
            if not taken:
                raise LockBusy(key)
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ident})
                connection.commit()

    @contextmanager
    def hold_in(self, session: Session, key: str) -> Iterator[None]:
        """A transaction-level lock on ``session``'s own connection, released by its
        commit or rollback: one statement, where ``hold`` costs a second pooled
        connection and six round trips."""
        if not session.scalar(_TRY_TRANSACTION_LOCK, {"k": lock_id(key)}):
            raise LockBusy(key)
        yield


_TRY_TRANSACTION_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")


class MemoryLocker:
    """In-process locks for SQLite (one process serves it)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: set[str] = set()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            if key in self._held:
                raise LockBusy(key)
            self._held.add(key)
        try:
            yield
        finally:
            with self._guard:
                self._held.discard(key)

    def hold_in(self, session: Session, key: str) -> AbstractContextManager[None]:
        """For the ``with`` block (one process: no other writer can come between it and
        the commit)."""
        return self.hold(key)
