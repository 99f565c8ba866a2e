"""A per-process cache of what a slot GET needs, kept true by the database's change notices.

A 4 KiB GET spent most of its time on the lookup: a pool checkout with its
ping, the query and the commit, three round trips for a row that almost never
changes (a slot file is written once, then read by every member of a chat).

Correctness rests on three rules:

- **Active only while notices arrive.** On PostgreSQL a trigger (migration
  0011) sends a notice on channel ``hmacfs_files`` for every update or delete
  of a slot file, and for every blob whose location changes. The event bus's
  listener (``hmacfs.events.bus.PgEventBus``) calls ``activate`` once it
  LISTENs and ``deactivate`` when its connection is lost; while inactive
  (SQLite, ``hmacfs worker``, tests without a bus, a lost listener) nothing is
  cached and every GET reads the database.
- **No stale insert.** A lookup that started before a notice must not store
  what it read: ``generation`` is taken before the query and ``put`` stores
  only when no notice came meanwhile (the notice arrives after its commit, and
  the query may have read the row before it).
- **Bounded age.** An entry lives at most ``max_age`` seconds (the
  listener's heartbeat): if the listener's connection dies silently and a
  notice is lost, no entry outlives it by longer than that. Expiry by time
  (``expired_at``) is checked on every hit.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

V = TypeVar("V")

FILES_CHANNEL = "hmacfs_files"  # migration 0011's trigger notifies here; empty payload: everything


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires: datetime | None  # the file's expired_at: gone for readers from then on
    stored: float  # monotonic seconds


class SlotCache(Generic[V]):
    """Values by slot path, at most ``entries`` of them (least recently used go first)."""

    def __init__(self, entries: int, max_age: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.entries = entries
        self.max_age = max_age
        self._clock = clock
        self._items: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()  # the listener may run in a native thread (tests)
        self._active = False
        self.generation = 0

    @property
    def active(self) -> bool:
        return self._active and self.entries > 0

    def get(self, path: str, now: datetime) -> V | None:
        """The value stored for ``path`` if still valid at ``now``; None means: ask the database."""
        entry = self._items.get(path)
        if entry is None:
            return None
        if (entry.expires is not None and entry.expires <= now) or (
            self._clock() - entry.stored > self.max_age
        ):
            self.forget(path)
            return None
        self._items.move_to_end(path)
        return entry.value

    def put(self, path: str, value: V, expires: datetime | None, generation: int) -> None:
        """Store ``value`` read by a lookup that began at ``generation`` (see the module doc)."""
        with self._lock:
            if not self.active or generation != self.generation:
                return
            self._items[path] = _Entry(value, expires, self._clock())
            self._items.move_to_end(path)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)

    def forget(self, path: str) -> None:
        with self._lock:
            self._items.pop(path, None)

    def changed(self, payload: str) -> None:
        """A notice: ``payload`` is the changed slot path, or empty for "anything may have changed"."""
        with self._lock:
            self.generation += 1
            if payload:
                self._items.pop(payload, None)
            else:
                self._items.clear()

    def activate(self) -> None:
        """Notices arrive from now on: start caching, from nothing."""
        with self._lock:
            self.generation += 1
            self._items.clear()
            self._active = True

    def deactivate(self) -> None:
        """Notices may be lost from now on: drop everything and stop caching."""
        with self._lock:
            self.generation += 1
            self._items.clear()
            self._active = False
