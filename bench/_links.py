"""Emulated client links for the adaptive bench: a network namespace joined to this one by
a veth pair, ``tc tbf`` on the client's side (the upload direction), and a user-space
relay in this namespace that adds latency both ways and resets every connection every
N seconds. (``netem`` is not available here; ``tbf`` is.) Root only; everything made
here is removed on exit."""

from __future__ import annotations

import contextlib
import heapq
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

NS = "hmacfs-bench"
HOST_IF, NS_IF = "hbv0", "hbv1"
HOST_IP, NS_IP = "10.77.0.1", "10.77.0.2"
_BLOCK = 64 * 1024


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


@contextlib.contextmanager
def namespace() -> Iterator[None]:
    """The client namespace with its veth pair, removed afterwards."""
    _ip("netns", "del", NS, check=False)
    _ip("netns", "add", NS)
    try:
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        _ip("link", "set", NS_IF, "netns", NS)
        _ip("addr", "add", f"{HOST_IP}/24", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("netns", "exec", NS, "ip", "addr", "add", f"{NS_IP}/24", "dev", NS_IF)
        _ip("netns", "exec", NS, "ip", "link", "set", NS_IF, "up")
        _ip("netns", "exec", NS, "ip", "link", "set", "lo", "up")
        yield
    finally:
        _ip("netns", "del", NS, check=False)  # takes the veth pair with it
        _ip("link", "del", HOST_IF, check=False)


def shape(rate_mbit: float | None) -> None:
    """Limit the client's upload direction to ``rate_mbit`` (tbf); None: no limit."""
    if rate_mbit is None:
        _ip("netns", "exec", NS, "tc", "qdisc", "del", "dev", NS_IF, "root", check=False)
        return
    burst = max(16, int(rate_mbit * 1.5))
    subprocess.run(
        ["ip", "netns", "exec", NS, "tc", "qdisc", "replace", "dev", NS_IF, "root", "tbf",
         "rate", f"{rate_mbit}mbit", "burst", f"{burst}kb", "latency", "200ms"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


class DelayRelay:
    """HOST_IP:port → 127.0.0.1:target, ``delay`` seconds each way, every connection reset
    every ``cut_every`` seconds (None: never). Bounded: at most ``max_connections``."""

    def __init__(self, target: int, delay: float, cut_every: float | None, max_connections: int = 64) -> None:
        self.target, self.delay, self.cut_every = target, delay, cut_every
        self.max_connections = max_connections
        self.cuts = 0
        self._listener = socket.create_server((HOST_IP, 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        if cut_every:
            threading.Thread(target=self._cutter, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST_IP}:{self.port}"

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._reset_all()

    def _cutter(self) -> None:
        assert self.cut_every is not None
        while not self._closed.wait(self.cut_every):
            if self._reset_all():
                self.cuts += 1

    def _reset_all(self) -> int:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        return len(sockets) // 2

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                continue
            upstream.settimeout(None)
            with self._lock:
                if len(self._open) >= 2 * self.max_connections:
                    client.close()
                    upstream.close()
                    continue
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                _DelayLine(source, sink, self.delay, self._closed).start()


class _DelayLine:
    """Bytes read from ``source`` are written to ``sink`` ``delay`` seconds later."""

    def __init__(
        self, source: socket.socket, sink: socket.socket, delay: float, closed: threading.Event
    ) -> None:
        self.source, self.sink, self.delay, self.closed = source, sink, delay, closed
        self._queue: list[tuple[float, int, bytes]] = []
        self._ready = threading.Condition()
        self._count = 0
        self._ended = False

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        try:
            while data := self.source.recv(_BLOCK):
                with self._ready:
                    self._count += 1
                    heapq.heappush(self._queue, (time.monotonic() + self.delay, self._count, data))
                    self._ready.notify()
        except OSError:
            pass
        with self._ready:
            self._ended = True
            self._ready.notify()

    def _write(self) -> None:
        try:
            while not self.closed.is_set():
                with self._ready:
                    while not self._queue and not self._ended:
                        self._ready.wait(1.0)
                    if not self._queue:
                        break
                    due, _, data = heapq.heappop(self._queue)
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self.sink.shutdown(socket.SHUT_WR)
