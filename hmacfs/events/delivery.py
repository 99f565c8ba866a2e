"""Start a server worker's event delivery: the bus feeding the hub, and webhooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hmacfs.events.bus import EventBus, LocalEventBus, PgEventBus
from hmacfs.events.webhooks import deliver_webhooks_forever

if TYPE_CHECKING:
    from hmacfs.container import Services

log = logging.getLogger(__name__)


def build_bus(services: Services, on_commit: Callable[[], None]) -> EventBus:
    """PostgreSQL LISTEN/NOTIFY across processes, or the in-process bus for SQLite."""
    if services.db.is_postgresql:
        url = services.db.engine.url.render_as_string(hide_password=False)
        return PgEventBus(url, services.hub, on_commit=on_commit)
    return LocalEventBus(services.db.sessions, services.hub, on_commit=on_commit)


def start_event_delivery(services: Services, spawn: Callable[..., Any]) -> EventBus:
    """Spawn the bus and the webhook loop with ``spawn`` (``gevent.spawn`` in a worker)."""
    import time

    webhooks_wake = threading.Event()
    bus = build_bus(services, webhooks_wake.set)
    try:
        bus.prime()
    except Exception:  # database down at boot: the bus starts from where the log is when it connects
        log.warning("event bus could not read the event log at start", exc_info=True)
    spawn(bus.run)
    spawn(deliver_webhooks_forever, services, webhooks_wake, time.sleep)
    return bus
