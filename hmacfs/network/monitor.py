"""One interface monitor per node: ``network.changed`` when this node's network changes.

Every gunicorn worker runs ``monitor_forever``; the one that holds the node's
lock watches, the others wait to take over should it die. On PostgreSQL the
lock is a session-level advisory lock on a connection of its own, keyed by
host name and network namespace, so one worker per node watches however many
nodes share the database, and a killed worker's lock goes with its
connection. (The gunicorn master was the other candidate; it runs no event
loop, would need its own database engine before forking, and its death ends
the workers anyway.) SQLite serves one process, which watches.

Every ``network_resilience.interface_poll_interval`` the monitor reads the
interfaces (``hmacfs.network.interfaces``); on a change it logs "Network
change detected", counts each change (``hmacfs_network_interface_changes_total``)
and publishes ``network.changed`` to ``network_resilience.events_account``:
the /ws subscribers holding a token for that account, and the webhooks, see
it; no user account does (interface names and addresses are the operator's).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from hmacfs.container import Services
from hmacfs.events import publish
from hmacfs.network.interfaces import Change, Snapshot, changes, describe, preferred, read_snapshot
from hmacfs.ports import LockBusy

log = logging.getLogger(__name__)


def node_name() -> str:
    """This node: its host name and network namespace (containers on one host differ)."""
    try:
        namespace = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        namespace = 0
    return f"{socket.gethostname()}/netns:{namespace}"


def monitor_forever(
    services: Services,
    sleep: Callable[[float], None],
    *,
    read: Callable[[], Snapshot] = read_snapshot,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Watch this node's interfaces while ``alive()``, if this process holds the node's
    lock; otherwise retry for the lock every poll interval. Never raises."""
    poll = services.settings.network_resilience.interface_poll_interval.total_seconds()
    node = node_name()
    while alive():
        try:
            with services.locker.hold(f"network-monitor:{node}"):
                _watch(services, node, sleep, read=read, alive=alive, poll=poll)
        except LockBusy:
            sleep(poll)  # another worker of this node watches
        except Exception:  # a database or netifaces failure: try again, never die
            log.exception("the interface monitor failed; it restarts in %.1f s", poll)
            sleep(poll)


def _watch(
    services: Services,
    node: str,
    sleep: Callable[[float], None],
    *,
    read: Callable[[], Snapshot],
    alive: Callable[[], bool],
    poll: float,
) -> None:
    last = read()
    recent: deque[dict[str, Any]] = deque(maxlen=services.settings.handoff.interface_quality_history)
    log.info(
        "Interface monitor started on %s: %s", node, ", ".join(sorted(last.interfaces)) or "no interfaces"
    )
    while alive():
        sleep(poll)
        now = read()
        found = changes(last, now)
        if found:
            announce(services, node, found, now, recent)
        last = now


def announce(
    services: Services, node: str, found: list[Change], now: Snapshot, recent: deque[dict[str, Any]]
) -> None:
    """Log, count and publish one round of changes (``recent`` keeps the last rounds'
    changes, ``handoff.interface_quality_history`` of them, sent along)."""
    log.info("Network change detected on %s: %s", node, "; ".join(_say(change) for change in found))
    if services.metrics is not None:
        for change in found:
            services.metrics.network_interface_changes_total.labels(change.kind).inc()
    stamp = services.clock.now().isoformat()
    recent.extend({**change.as_data(), "at": stamp} for change in found)
    data = {
        "node": node,
        "changes": [change.as_data() for change in found],
        "interfaces": describe(now),
        "defaultRoute": now.default_route,
        "preferred": preferred(now, services.settings.network_interfaces),
        "history": list(recent),
    }
    with services.db.sessions.begin() as session:
        publish(session, services.settings.network_resilience.events_account, "network.changed", data)


def _say(change: Change) -> str:
    if change.kind == "default_route":
        return f"default route {change.old} -> {change.new}"
    return " ".join(part for part in (change.kind, change.interface, change.address) if part)
