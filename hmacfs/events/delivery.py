"""Start a server worker's event delivery: the bus feeding the hub, and webhooks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hmacfs.config import EventsSettings
from hmacfs.db import Database
from hmacfs.events.bus import ChangeWatcher, EventBus, LocalEventBus, PgEventBus
from hmacfs.events.hub import Hub
from hmacfs.events.publisher import on_commit
from hmacfs.events.webhooks import WebhookDeliverer, deliver_webhooks_forever
from hmacfs.ports import Clock, Locker

log = logging.getLogger(__name__)


def build_bus(
    db: Database,
    hub: Hub,
    on_delivered: Callable[[], None],
    watchers: Mapping[str, ChangeWatcher] | None = None,
) -> EventBus:
    """PostgreSQL LISTEN/NOTIFY across processes, or the in-process bus for SQLite.

    ``watchers`` (channel: cache) get PostgreSQL's change notices; on SQLite they are
    never activated, so those caches stay empty.

    The in-process bus is woken by every commit of ``db``'s sessions that wrote events
    (a commit hook on that session factory) instead of waiting for its poll.
    """
    if db.is_postgresql:
        url = db.engine.url.render_as_string(hide_password=False)
        return PgEventBus(url, hub, on_commit=on_delivered, watchers=watchers)
    bus = LocalEventBus(db.sessions, hub, on_commit=on_delivered)
    on_commit(db.sessions, bus.wake)
    return bus


def start_event_delivery(
    spawn: Callable[..., Any],
    *,
    db: Database,
    hub: Hub,
    settings: EventsSettings,
    locker: Locker,
    clock: Clock,
    watchers: Mapping[str, ChangeWatcher] | None = None,
) -> EventBus:
    """Spawn the bus and the webhook loop with ``spawn`` (``gevent.spawn`` in a worker)."""
    webhooks_wake = threading.Event()
    bus = build_bus(db, hub, webhooks_wake.set, watchers)
    try:
        bus.prime()
    except Exception:  # database down at boot: the bus starts from where the log is when it connects
        log.warning("event bus could not read the event log at start", exc_info=True)
    spawn(bus.run)
    deliverer = WebhookDeliverer(settings, db.sessions, clock)
    spawn(deliver_webhooks_forever, deliverer, locker, webhooks_wake, time.sleep)
    return bus
