"""Per-process fan-out of committed events to local subscribers (WebSocket connections).

Delivery never blocks: each subscriber has a bounded queue, and one that falls
behind has its queue dropped and is told to resync, so a slow client slows
neither the publisher, the listener nor any other client.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterable

from hmacfs.events.records import EventFilter, EventRecord
from hmacfs.metrics import AppMetrics

RESYNC = '{"type":"resync"}'


class Subscriber:
    """One consumer of one account's events; ``wake`` is called whenever there is something to take."""

    def __init__(self, account_id: uuid.UUID, capacity: int, wake: Callable[[], None]) -> None:
        self.account_id = account_id
        self.capacity = capacity
        self.filter = EventFilter()
        self._wake = wake
        self._queue: deque[EventRecord | str] = deque()
        self._events = 0
        # Ids up to here were already sent by a replay; live copies are dropped.
        self.floor = 0
        self.closing = False

    def offer(self, record: EventRecord) -> int:
        """Queue ``record`` if the filter wants it. Returns how many events were dropped:
        0, or the queue and this one when the subscriber fell behind (it resyncs)."""
        if not self.filter.accepts(record):
            return 0
        if self._events >= self.capacity:
            dropped = self._events + 1
            self.overflow()
            return dropped
        self._queue.append(record)
        self._events += 1
        self._wake()
        return 0

    def overflow(self) -> None:
        """Drop what is queued and tell the client to re-read its state."""
        self._queue.clear()
        self._events = 0
        self._queue.append(RESYNC)
        self._wake()

    def take(self) -> list[str]:
        """Everything queued, as messages to send, without events already replayed."""
        taken: list[str] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, str):
                taken.append(item)
            elif item.id > self.floor:
                taken.append(item.message)
        self._events = 0
        return taken


class Hub:
    """Subscribers of this process by account."""

    def __init__(self) -> None:
        self._by_account: dict[uuid.UUID, set[Subscriber]] = {}
        # Set once by the composition root when this process exports metrics.
        self.metrics: AppMetrics | None = None

    def add(self, subscriber: Subscriber) -> None:
        self._by_account.setdefault(subscriber.account_id, set()).add(subscriber)
        if self.metrics is not None:
            self.metrics.websocket_subscribers.inc()

    def remove(self, subscriber: Subscriber) -> None:
        subscribers = self._by_account.get(subscriber.account_id)
        if subscribers is not None and subscriber in subscribers:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._by_account[subscriber.account_id]
            if self.metrics is not None:
                self.metrics.websocket_subscribers.dec()

    def wants(self, account_id: uuid.UUID) -> bool:
        return account_id in self._by_account

    def deliver(self, records: Iterable[EventRecord]) -> None:
        delivered = dropped = 0
        for record in records:
            for subscriber in tuple(self._by_account.get(record.account_id, ())):
                lost = subscriber.offer(record)
                dropped += lost
                delivered += lost == 0 and subscriber.filter.accepts(record)
        if self.metrics is not None:
            self.metrics.events_delivered_total.inc(delivered)
            self.metrics.events_dropped_total.inc(dropped)

    def close_all(self) -> None:
        """Ask every subscriber to end (the worker is shutting down; clients reconnect elsewhere)."""
        for subscribers in tuple(self._by_account.values()):
            for subscriber in tuple(subscribers):
                subscriber.closing = True
                subscriber._wake()

    def __len__(self) -> int:
        return sum(len(subscribers) for subscribers in self._by_account.values())
