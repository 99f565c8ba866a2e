"""Range locks on the parts of a store that has no local files (S3), shared by every node.

The engine locks a chunk's range of a part from its first write until its row
commits, and the whole part to complete it (``hmacfs.uploads.part_locks``).
With an object store the writers are on several machines, so the locks live
in PostgreSQL, as session-level advisory locks on a connection of the lock's
own (released when it closes, or when its process dies):

- a range [offset, offset + length) takes the part's lock *shared* and the
  range's own lock *exclusive*;
- the whole part (length 0) takes the part's lock *exclusive*.

So a chunk excludes the same chunk and the whole part, and the whole part
excludes every chunk; PostgreSQL never makes a connection's locks conflict with
each other, so one lock can grow from a chunk to the whole part. Two different
ranges never conflict, even if they overlap: the engine's chunk ranges are
fixed per upload (tus and PUT offsets are serialised by the upload's lock).

``MemoryRangeLocks`` does the same in one process (SQLite serves one process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

from hmacfs.ports import lock_id


def _ids(name: str, offset: int, length: int) -> tuple[int, int | None]:
    part = lock_id(f"part:{name}")
    return (part, None) if length == 0 else (part, lock_id(f"part:{name}:{offset}:{length}"))


class AdvisoryRangeLock:
    """A RangeLock on part ``name`` over PostgreSQL advisory locks (see the module)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self._name = name
        self._connection: Connection | None = None

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        part, own = _ids(self._name, offset, length)
        if own is None:
            return self._try(part, shared=not exclusive)
        if not self._try(part, shared=True):
            return False
        if self._try(own, shared=not exclusive):
            return True
        self._release(part, shared=True)
        return False

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        deadline, pause = time.monotonic() + timeout, 0.005
        while not self.try_lock(offset, length, exclusive=exclusive):
            if time.monotonic() >= deadline:
                return False
            sleep(pause)
            pause = min(pause * 2, 0.1)
        return True

    def unlock(self, offset: int, length: int) -> None:
        part, own = _ids(self._name, offset, length)
        if own is None:
            self._release(part, shared=False)
            return
        self._release(own, shared=False)
        self._release(part, shared=True)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()
        finally:
            connection.close()

    def _conn(self) -> Connection:
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def _try(self, ident: int, *, shared: bool) -> bool:
        function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        connection = self._conn()
        taken = bool(connection.execute(text(f"SELECT {function}(:k)"), {"k": ident}).scalar())
        connection.commit()
        return taken

    def _release(self, ident: int, *, shared: bool) -> None:
        function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        connection = self._conn()
        connection.execute(text(f"SELECT {function}(:k)"), {"k": ident})
        connection.commit()


class MemoryRangeLocks:
    """The same locks in one process: ``lock(name)`` makes a RangeLock on part ``name``."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        # part name -> {lock object: set of (offset, length, exclusive)}
        self._held: dict[str, dict[int, set[tuple[int, int, bool]]]] = {}

    def lock(self, name: str) -> MemoryRangeLock:
        return MemoryRangeLock(self, name)

    def _try(self, name: str, owner: int, offset: int, length: int, exclusive: bool) -> bool:
        with self._guard:
            holders = self._held.setdefault(name, {})
            for other, ranges in holders.items():
                if other != owner and any(_conflict((offset, length, exclusive), r) for r in ranges):
                    return False
            holders.setdefault(owner, set()).add((offset, length, exclusive))
            return True

    def _release(self, name: str, owner: int, item: tuple[int, int, bool] | None) -> None:
        with self._guard:
            holders = self._held.get(name, {})
            if item is None:
                holders.pop(owner, None)
            else:
                holders.get(owner, set()).discard(item)
            if not holders:
                self._held.pop(name, None)


def _conflict(wanted: tuple[int, int, bool], held: tuple[int, int, bool]) -> bool:
    (offset, length, exclusive), (held_offset, held_length, held_exclusive) = wanted, held
    if not (exclusive or held_exclusive):
        return False
    return length == 0 or held_length == 0 or (offset, length) == (held_offset, held_length)


class MemoryRangeLock:
    def __init__(self, locks: MemoryRangeLocks, name: str) -> None:
        self._locks, self._name = locks, name

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        return self._locks._try(self._name, id(self), offset, length, exclusive)

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        deadline, pause = time.monotonic() + timeout, 0.002
        while not self.try_lock(offset, length, exclusive=exclusive):
            if time.monotonic() >= deadline:
                return False
            sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def unlock(self, offset: int, length: int) -> None:
        self._locks._release(self._name, id(self), (offset, length, True))
        self._locks._release(self._name, id(self), (offset, length, False))

    def close(self) -> None:
        self._locks._release(self._name, id(self), None)
