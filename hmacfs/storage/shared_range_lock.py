"""Range locks on the parts of a store that has no local files (S3).

The engine locks a chunk's range of a part from its first write until its row
commits, and the whole part to complete it (``hmacfs.uploads.part_locks``). The
local store uses the kernel's file locks; an object store's writers may be on
several machines, so:

- **in one process**, ``MemoryRangeLocks`` keeps exact byte ranges, as file
  locks do: overlapping ranges of two locks conflict unless both are shared, the
  ranges of one lock never conflict with each other, and unlocking a range
  releases those bytes (a lock holding [0, 10) and [5, 15) is free after
  unlocking [0, 15));
- **between processes and nodes**, ``AdvisoryRangeLock`` adds PostgreSQL
  session-level advisory locks on a connection of the lock's own (released
  when it closes, or when its process dies): a range takes the part's key
  *shared* and the range's own key (part, offset, length); the whole part
  (length 0) takes the part's key *exclusive*. So a range excludes the same
  range and the whole part on every node, and the whole part every range.
  Two different ranges that merely overlap are excluded only within a process:
  the engine's ranges are the fixed chunk ranges of an upload and the whole
  part, never anything else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

from hmacfs.ports import lock_id

_END = 1 << 62  # "to the end of the part" (a length of 0)

Span = tuple[int, int, bool]  # [start, end), exclusive


def _span(offset: int, length: int, exclusive: bool) -> Span:
    return (offset, _END if length == 0 else offset + length, exclusive)


def _conflict(wanted: Span, held: Span) -> bool:
    overlaps = wanted[0] < held[1] and held[0] < wanted[1]
    return overlaps and (wanted[2] or held[2])


def _subtract(spans: list[Span], start: int, end: int) -> list[Span]:
    """``spans`` without the bytes [start, end) (a span across it is split)."""
    kept = []
    for low, high, exclusive in spans:
        if high <= start or low >= end:
            kept.append((low, high, exclusive))
            continue
        if low < start:
            kept.append((low, start, exclusive))
        if end < high:
            kept.append((end, high, exclusive))
    return kept


def _wait(try_lock: Callable[[], bool], timeout: float, sleep: Callable[[float], None]) -> bool:
    deadline, pause = time.monotonic() + timeout, 0.002
    while not try_lock():
        if time.monotonic() >= deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


class MemoryRangeLocks:
    """Exact range locks among the greenlets and threads of one process: ``lock(name)``
    makes a RangeLock on part ``name``."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, dict[int, list[Span]]] = {}  # part -> lock id -> its spans

    def lock(self, name: str) -> MemoryRangeLock:
        return MemoryRangeLock(self, name)

    def _try(self, name: str, owner: int, span: Span) -> bool:
        with self._guard:
            holders = self._held.setdefault(name, {})
            for other, spans in holders.items():
                if other != owner and any(_conflict(span, held) for held in spans):
                    return False
            holders.setdefault(owner, []).append(span)
            return True

    def _release(self, name: str, owner: int, start: int = 0, end: int = _END) -> None:
        with self._guard:
            holders = self._held.get(name, {})
            left = _subtract(holders.get(owner, []), start, end)
            if left:
                holders[owner] = left
            else:
                holders.pop(owner, None)
            if not holders:
                self._held.pop(name, None)


class MemoryRangeLock:
    """A RangeLock of ``MemoryRangeLocks`` (see the module)."""

    def __init__(self, locks: MemoryRangeLocks, name: str) -> None:
        self._locks, self._name = locks, name

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        return self._locks._try(self._name, id(self), _span(offset, length, exclusive))

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        return _wait(lambda: self.try_lock(offset, length, exclusive=exclusive), timeout, sleep)

    def unlock(self, offset: int, length: int) -> None:
        start, end, _ = _span(offset, length, True)
        self._locks._release(self._name, id(self), start, end)

    def close(self) -> None:
        self._locks._release(self._name, id(self))


class AdvisoryRangeLock:
    """A RangeLock on part ``name`` that also holds PostgreSQL advisory locks (see the
    module); ``local`` is the process's ``MemoryRangeLocks``."""

    def __init__(self, engine: Engine, local: MemoryRangeLocks, name: str) -> None:
        self._engine = engine
        self._local = local.lock(name)
        self._name = name
        self._connection: Connection | None = None
        self._keys: list[tuple[Span, int]] = []  # the range keys held, with their spans

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        if not self._local.try_lock(offset, length, exclusive=exclusive):
            return False
        if self._try_shared(offset, length, exclusive):
            return True
        self._local.unlock(offset, length)
        return False

    def _try_shared(self, offset: int, length: int, exclusive: bool) -> bool:
        part = lock_id(f"part:{self._name}")
        if length == 0:
            return self._try(part, shared=not exclusive)
        if not self._try(part, shared=True):
            return False
        own = lock_id(f"part:{self._name}:{offset}:{length}")
        if not self._try(own, shared=not exclusive):
            self._release(part, shared=True)
            return False
        self._keys.append((_span(offset, length, exclusive), own))
        return True

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        return _wait(lambda: self.try_lock(offset, length, exclusive=exclusive), timeout, sleep)

    def unlock(self, offset: int, length: int) -> None:
        """Release the bytes here, and every advisory key whose range lies within them."""
        self._local.unlock(offset, length)
        start, end, _ = _span(offset, length, True)
        if length == 0 and offset == 0:
            self._release(lock_id(f"part:{self._name}"), shared=False)
        for span, key in [item for item in self._keys if start <= item[0][0] and item[0][1] <= end]:
            self._keys.remove((span, key))
            self._release(key, shared=not span[2])
            self._release(lock_id(f"part:{self._name}"), shared=True)

    def close(self) -> None:
        self._local.close()
        connection, self._connection = self._connection, None
        self._keys = []
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
