"""EventBus backends: move committed events from the database to this process's Hub.

PostgreSQL: one listener per worker on a dedicated connection LISTENs on
``hmacfs_events``; each notification names an event id and its account, and
the listener reads only the rows a local subscriber wants. Notifications
arrive in commit order. After a lost connection it reconnects with backoff,
LISTENs again, then reads every event it may have missed.

Other channels carry change notices for per-process caches (``ChangeWatcher``, such as
``hmacfs.xep0363.slot_cache``): the listener LISTENs on them too, activates each
watcher once it listens, and deactivates it whenever the connection is lost, since
notices sent meanwhile are gone.

SQLite (one process): committed rows are read by id order, woken at once by
the publisher's commit hook and otherwise by a short poll (for events written
by other processes such as ``hmacfs worker``). SQLite serialises writers, so
ids commit in order and a cursor misses nothing.
"""

from __future__ import annotations

import logging
import select
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from hmacfs.events.hub import Hub
from hmacfs.events.log import events_after, events_by_id, latest_event_id
from hmacfs.events.records import EventRecord
from hmacfs.events.sql import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

BATCH = 1000
LISTENER_NAME = "hmacfs-listener"
SLICE = 16


def deliver_in_slices(hub: Hub, records: Iterable[EventRecord], pause: Callable[[float], None]) -> None:
    """Hand records to the hub a few at a time, yielding between slices so the
    subscribers' greenlets can send (a burst then only overflows a client that is really slow)."""
    pending = list(records)
    for start in range(0, len(pending), SLICE):
        if start:
            pause(0)
        hub.deliver(pending[start : start + SLICE])


class ChangeWatcher(Protocol):
    """A cache fed by the notices of one channel (see the module doc)."""

    def activate(self) -> None: ...

    def deactivate(self) -> None: ...

    def changed(self, payload: str) -> None: ...


class EventBus(Protocol):
    def prime(self) -> None:
        """Note where the log ends now, before this process accepts subscribers."""

    def run(self) -> None:
        """Deliver committed events to the hub until the process ends (run it in a greenlet)."""


class Backoff:
    """Exponential backoff delays: ``first``, doubling, at most ``cap`` seconds."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self._next = first, cap, first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


class DeliveredIds:
    """Ids handled recently, and a floor below which nothing can still be missing.

    A notification is handled once, in commit order, but the catch-up read
    after a reconnect overlaps what was already handled, so recent ids are kept
    for ``margin`` seconds. An id older than that moves the floor: an event
    below it would need a publishing transaction open longer than ``margin``.
    """

    def __init__(self, margin: float, floor: int = 0) -> None:
        self.margin = margin
        self.floor = floor
        self._recent: OrderedDict[int, float] = OrderedDict()

    def __contains__(self, event_id: int) -> bool:
        return event_id in self._recent

    def add(self, event_id: int, now: float) -> None:
        self._recent[event_id] = now
        while self._recent:
            oldest, seen_at = next(iter(self._recent.items()))
            if seen_at >= now - self.margin:
                break
            del self._recent[oldest]
            self.floor = max(self.floor, oldest)


def parse_notification(payload: str) -> tuple[int, uuid.UUID] | None:
    """``"<id>:<account>"`` from ``publish``; None for anything else."""
    head, _, tail = payload.partition(":")
    try:
        return int(head), uuid.UUID(tail)
    except ValueError:
        return None


class PgEventBus:
    """The LISTEN/NOTIFY backend; ``on_commit`` runs for every event committed anywhere."""

    def __init__(
        self,
        url: str,
        hub: Hub,
        *,
        on_commit: Callable[[], None] = lambda: None,
        heartbeat: float = 10.0,
        margin: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        watchers: Mapping[str, ChangeWatcher] | None = None,
    ) -> None:
        self._watchers = dict(watchers or {})
        self._engine = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"application_name": LISTENER_NAME},
        )
        self._hub = hub
        self._on_commit = on_commit
        self._heartbeat = heartbeat
        self._delivered = DeliveredIds(margin)
        self._started = False
        self._sleep = sleep
        self.connected = threading.Event()

    def prime(self) -> None:
        with self._engine.connect() as connection:
            self._delivered.floor = latest_event_id(Session(bind=connection))
        self._started = True

    def run(self) -> None:
        backoff = Backoff(0.1, 10.0)
        while True:
            try:
                with self._engine.connect() as connection:
                    self._listen(connection)
                    backoff.reset()
                    self._serve(connection)
            except Exception:  # any database failure: reconnect and catch up
                self.connected.clear()
                for watcher in self._watchers.values():
                    watcher.deactivate()
                log.warning("event listener lost its database connection; reconnecting", exc_info=True)
                self._sleep(backoff.next())

    def _listen(self, connection: Connection) -> None:
        connection.exec_driver_sql(f"LISTEN {NOTIFY_CHANNEL}")
        for channel, watcher in self._watchers.items():
            connection.exec_driver_sql(f"LISTEN {channel}")
            watcher.activate()
        session = Session(bind=connection)
        if not self._started:
            self._delivered.floor = latest_event_id(session)
            self._started = True
        else:
            self._catch_up(session)
        self.connected.set()
        self._on_commit()

    def _catch_up(self, session: Session) -> None:
        cursor = self._delivered.floor
        while batch := events_after(session, cursor, BATCH):
            fresh = [record for record in batch if record.id not in self._delivered]
            now = time.monotonic()
            for record in fresh:
                self._delivered.add(record.id, now)
            deliver_in_slices(self._hub, fresh, self._sleep)
            cursor = batch[-1].id

    def _serve(self, connection: Connection) -> None:
        raw: Any = connection.connection.dbapi_connection  # psycopg2: notifies, poll()
        session = Session(bind=connection)
        while True:
            # poll() first: a query may have pulled notifications into libpq's buffer
            # already, and then the socket never turns readable for them.
            raw.poll()
            if raw.notifies:
                notes = list(raw.notifies)
                del raw.notifies[:]
                for note in notes:
                    if note.channel in self._watchers:
                        self._watchers[note.channel].changed(note.payload)
                events = [note.payload for note in notes if note.channel == NOTIFY_CHANNEL]
                if events:
                    self._handle(events, session)
                continue
            readable, _, _ = select.select([raw], [], [], self._heartbeat)
            if not readable:
                connection.execute(text("SELECT 1"))  # a dead connection fails here

    def _handle(self, payloads: list[str], session: Session) -> None:
        parsed = (parse_notification(payload) for payload in payloads)
        fresh = [note for note in parsed if note is not None and note[0] not in self._delivered]
        if payloads:
            self._on_commit()
        wanted = [event_id for event_id, account in fresh if self._hub.wants(account)]
        found = events_by_id(session, wanted) if wanted else {}
        # Marked only once read: if the read fails, the catch-up after reconnecting delivers them.
        now = time.monotonic()
        for event_id, _ in fresh:
            self._delivered.add(event_id, now)
        deliver_in_slices(self._hub, [found[i] for i in wanted if i in found], self._sleep)


class LocalEventBus:
    """The in-process backend for SQLite: polls the log, and reads at once when ``wake`` is
    called (``hmacfs.events.delivery`` hooks it to the commits of the sessions that publish)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hub: Hub,
        *,
        on_commit: Callable[[], None] = lambda: None,
        poll_interval: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sleep = sleep
        self._sessions = sessions
        self._hub = hub
        self._on_commit = on_commit
        self._poll = poll_interval
        self._wake = threading.Event()
        self.connected = threading.Event()
        self._cursor = 0

    def wake(self) -> None:
        """New events were committed: read them now instead of at the next poll."""
        self._wake.set()

    def prime(self) -> None:
        with self._sessions() as session:
            self._cursor = latest_event_id(session)

    def run(self) -> None:
        cursor = self._cursor
        self.connected.set()
        while True:
            self._wake.wait(self._poll)
            self._wake.clear()
            try:
                cursor = self._drain(cursor)
            except Exception:  # keep delivering whatever one read does
                log.exception("in-process event bus read failed")

    def _drain(self, cursor: int) -> int:
        with self._sessions() as session:
            while batch := events_after(session, cursor, BATCH):
                deliver_in_slices(self._hub, batch, self._sleep)
                cursor = batch[-1].id
                self._on_commit()
        return cursor
