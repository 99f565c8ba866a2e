"""Range locks on the parts of a store that has no local files (S3).

The engine locks a chunk's range of a part from its first write until its row
commits, and the whole part to complete it (``hmacfs.uploads.part_locks``). The
local store uses the kernel's file locks; an object store's writers may be on
several machines, so:

- **in one process**, ``MemoryRangeLocks`` keeps exact byte ranges, as file
  locks do: overlapping ranges of two locks conflict unless both are shared, the
  ranges of one lock never conflict with each other, and unlocking a range
  releases those bytes (a lock holding [0, 10) and [5, 15) is free after
  unlocking [0, 15)). ``MemoryBlobStore`` uses it alone for its locks;
- **between processes and nodes**, ``AdvisoryRangeLock`` adds PostgreSQL
  session-level advisory locks, on one connection per process
  (``AdvisorySession``; released when the process dies): a range takes the part's key
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
from hmacfs.storage.intervals import subtract
from hmacfs.storage.range_lock import retry_lock

_END = 1 << 62  # "to the end of the part" (a length of 0)

Span = tuple[int, int, bool]  # [start, end), exclusive


def _span(offset: int, length: int, exclusive: bool) -> Span:
    return (offset, _END if length == 0 else offset + length, exclusive)


def _conflict(wanted: Span, held: Span) -> bool:
    overlaps = wanted[0] < held[1] and held[0] < wanted[1]
    return overlaps and (wanted[2] or held[2])


class MemoryRangeLocks:
    """Exact range locks among the greenlets and threads of one process: ``lock(name)``
    makes a RangeLock on part ``name``."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        # part -> lock -> its spans (keyed by the lock itself, not its id(), which a later
        # lock could reuse after an unclosed one was dropped)
        self._held: dict[str, dict[MemoryRangeLock, list[Span]]] = {}

    def lock(self, name: str) -> MemoryRangeLock:
        return MemoryRangeLock(self, name)

    def _try(self, name: str, owner: MemoryRangeLock, span: Span) -> bool:
        with self._guard:
            if owner.closed:
                raise ValueError("the lock was closed")
            holders = self._held.setdefault(name, {})
            for other, spans in holders.items():
                if other is not owner and any(_conflict(span, held) for held in spans):
                    return False
            holders.setdefault(owner, []).append(span)
            return True

    def _release(self, name: str, owner: MemoryRangeLock, start: int = 0, end: int = _END) -> None:
        with self._guard:
            holders = self._held.get(name, {})
            left = subtract(holders.get(owner, []), start, end)
            if left:
                holders[owner] = left
            else:
                holders.pop(owner, None)
            if not holders:
                self._held.pop(name, None)


class MemoryRangeLock:
    """A RangeLock of ``MemoryRangeLocks`` (see the module); ValueError once closed."""

    def __init__(self, locks: MemoryRangeLocks, name: str) -> None:
        self._locks, self._name = locks, name
        self.closed = False

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        return self._locks._try(self._name, self, _span(offset, length, exclusive))

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        return retry_lock(lambda: self.try_lock(offset, length, exclusive=exclusive), timeout, sleep)

    def unlock(self, offset: int, length: int) -> None:
        start, end, _ = _span(offset, length, True)
        self._locks._release(self._name, self, start, end)

    def close(self) -> None:
        self.closed = True
        self._locks._release(self._name, self)


class AdvisorySession:
    """The process's one PostgreSQL connection for advisory locks, shared by all its range
    locks: greenlets of one process are told apart by ``MemoryRangeLocks`` (PostgreSQL
    never makes a session's locks conflict with each other), so one connection per
    process is enough, whatever the number of chunks in flight. Calls on it are
    serialised. If it breaks, it is opened again (the locks it held are gone then:
    PostgreSQL released them with the session)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._guard = threading.Lock()
        self._connection: Connection | None = None

    def take(self, ident: int, *, shared: bool) -> bool:
        function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        return bool(self._run(f"SELECT {function}(:k)", ident))

    def give_back(self, ident: int, *, shared: bool) -> None:
        function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        self._run(f"SELECT {function}(:k)", ident)

    def close(self) -> None:
        """Close the connection (every advisory lock of this process goes with it)."""
        with self._guard:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

    def _run(self, statement: str, ident: int) -> object:
        with self._guard:
            if self._connection is None or self._connection.closed or self._connection.invalidated:
                self._connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                return self._connection.execute(text(statement), {"k": ident}).scalar()
            except Exception:
                self._connection.invalidate()
                raise


class AdvisoryRangeLock:
    """A RangeLock on part ``name``: exact within the process (``local``), and through the
    process's ``AdvisorySession`` between processes (see the module)."""

    def __init__(self, session: AdvisorySession, local: MemoryRangeLocks, name: str) -> None:
        self._session = session
        self._local = local.lock(name)
        self._part = lock_id(f"part:{name}")
        self._name = name
        self._held: list[tuple[Span, int, bool]] = []  # (span, advisory key, shared) in order

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        if not self._local.try_lock(offset, length, exclusive=exclusive):
            return False
        if self._take_shared(_span(offset, length, exclusive), offset, length):
            return True
        self._local.unlock(offset, length)
        return False

    def _take_shared(self, span: Span, offset: int, length: int) -> bool:
        """The advisory keys of a range: the part's (shared for a range, as asked for the
        whole part) and, for a range, its own."""
        whole = length == 0
        if not self._take(span, self._part, shared=not (whole and span[2])):
            return False
        if whole:
            return True
        if self._take(span, lock_id(f"part:{self._name}:{offset}:{length}"), shared=not span[2]):
            return True
        self._give_back(self._held.pop())
        return False

    def _take(self, span: Span, ident: int, *, shared: bool) -> bool:
        if not self._session.take(ident, shared=shared):
            return False
        self._held.append((span, ident, shared))
        return True

    def _give_back(self, held: tuple[Span, int, bool]) -> None:
        self._session.give_back(held[1], shared=held[2])

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        return retry_lock(lambda: self.try_lock(offset, length, exclusive=exclusive), timeout, sleep)

    def unlock(self, offset: int, length: int) -> None:
        """Release the bytes here, and the advisory keys of every range within them."""
        self._local.unlock(offset, length)
        start, end, _ = _span(offset, length, True)
        for held in [h for h in self._held if start <= h[0][0] and h[0][1] <= end]:
            self._held.remove(held)
            self._give_back(held)

    def close(self) -> None:
        self._local.close()
        held, self._held = self._held, []
        for item in reversed(held):
            self._give_back(item)
