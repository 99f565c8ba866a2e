"""The watchdog: notices network changes (netifaces) and stalled requests, and cuts them.

One daemon thread polls every ``interval`` seconds. A change of the set of
interface addresses or of the default route's interface means the socket of a
request in flight may lead nowhere: every armed request is aborted at once, and
the uploader resumes from the server's offset over a new connection. A request
that moved no byte for its ``stall_limit`` is aborted alone.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

NetworkSnapshot = tuple[frozenset[tuple[str, str]], tuple[str, ...]]


class Abortable(Protocol):
    stall_limit: float | None

    def idle_for(self, now: float) -> float: ...

    def abort(self, reason: str) -> None: ...


def network_snapshot() -> NetworkSnapshot:
    """(interface, address) pairs of every IPv4/IPv6 address, and the interfaces of the
    default routes. Link-local IPv6 addresses come and go with the link, so they count."""
    import netifaces

    addresses: set[tuple[str, str]] = set()
    for name in netifaces.interfaces():
        try:
            found = netifaces.ifaddresses(name)
        except ValueError:  # the interface vanished between the two calls
            continue
        for family in (socket.AF_INET, socket.AF_INET6):
            for entry in found.get(family, []):
                addresses.add((name, str(entry.get("addr", ""))))
    defaults = netifaces.gateways().get("default", {})
    routes = tuple(sorted(f"{family}:{entry[1]}" for family, entry in defaults.items()))
    return frozenset(addresses), routes


class Watchdog:
    """Watches registered connections; ``on_event(kind, detail)`` hears each abort cause."""

    def __init__(
        self,
        on_event: Callable[[str, str], None],
        interval: float = 0.25,
        snapshot: Callable[[], NetworkSnapshot] = network_snapshot,
    ) -> None:
        self._on_event, self._interval, self._snapshot = on_event, interval, snapshot
        self._connections: set[Abortable] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.network_changes = 0

    def __enter__(self) -> Watchdog:
        self._last = self._snapshot()
        self._thread = threading.Thread(target=self._run, name="hmacfs-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def watch(self, connection: Abortable) -> None:
        with self._lock:
            self._connections.add(connection)

    def forget(self, connection: Abortable) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check()

    def check(self) -> None:
        """One poll: abort everything on a network change, else each stalled request."""
        current = self._snapshot()
        with self._lock:
            connections = list(self._connections)
        if current != self._last:
            self._last = current
            self.network_changes += 1
            self._on_event("network_change", _describe(current))
            for connection in connections:
                connection.abort("network change")
            return
        now = time.monotonic()
        for connection in connections:
            limit = connection.stall_limit
            if limit is not None and connection.idle_for(now) > limit:
                self._on_event("stalled", f"no progress for {limit:g} s")
                connection.abort("stalled")


def _describe(snapshot: NetworkSnapshot) -> str:
    addresses, routes = snapshot
    return f"default route {', '.join(routes) or 'none'}; {len(addresses)} addresses"
