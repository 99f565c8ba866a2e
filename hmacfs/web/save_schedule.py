"""When a worker's measurement saver writes each client's bodies: a settled client's at
most once every few seconds, everything else at the next pass.

A pass costs a transaction (an insert, a locked read and an update of the profile row,
and their commit) whatever it folds. A tus client sends a PATCH every 15-20 ms, so the
saver's passes, one every 0.25 s while bodies arrive, were 6-7 % of a worker's Python
time under one tus upload (py-spy). Folding a settled client's bodies only every
``interval`` seconds keeps every body (they wait in memory, folded in order with the next
save) and writes its row a tenth as often. What may not wait: a client not yet settled
(its first recommendations come from those bodies), and a body that did not complete
(the profile's reliability should learn it at once); either sends all of that client's
waiting bodies with it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class SaveSchedule(Generic[T]):
    """Bodies by client key, and when each client was last saved (monotonic seconds).

    ``due`` takes what arrived since the last pass and returns what to save now, in
    arrival order per client; the rest waits here. Not thread-safe: one saver at a
    time uses it (the saver holds its lock)."""

    def __init__(self, interval: float, *, remembered: int = 10_000) -> None:
        self.interval = interval
        self._waiting: dict[str, list[T]] = {}
        self._saved_at: OrderedDict[str, float] = OrderedDict()
        self._remembered = remembered

    @property
    def pending(self) -> bool:
        """Whether bodies wait for a later pass."""
        return bool(self._waiting)

    def due(
        self,
        arrived: Iterable[T],
        now: float,
        *,
        key: Callable[[T], str],
        may_wait: Callable[[str, list[T]], bool],
    ) -> list[T]:
        """The bodies to save now: each client's that waited and arrived, unless the client
        was saved less than ``interval`` ago and ``may_wait(key, its bodies)`` says they can
        wait (its profile is settled, every body completed)."""
        for body in arrived:
            self._waiting.setdefault(key(body), []).append(body)
        due: list[T] = []
        for client in list(self._waiting):
            bodies = self._waiting[client]
            last = self._saved_at.get(client)
            if last is not None and now - last < self.interval and may_wait(client, bodies):
                continue
            due.extend(self._waiting.pop(client))
        return due

    def saved(self, clients: Iterable[str], now: float) -> None:
        """``clients`` were saved at ``now``; the oldest of more than ``remembered`` are
        forgotten (their next bodies are saved at once)."""
        for client in clients:
            self._saved_at[client] = now
            self._saved_at.move_to_end(client)
        while len(self._saved_at) > self._remembered:
            self._saved_at.popitem(last=False)
