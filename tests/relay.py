"""A user-space TCP relay on loopback for client tests: rate limit, pause, cut, retarget.

Every accepted connection gets an upstream connection to ``target`` and two
pumping threads. ``cut()`` resets every open connection at once (SO_LINGER 0,
as a dropped link would look to the side that notices), ``pause()`` stops
forwarding without closing (a silent link), ``retarget()`` follows a server
that restarted on a new port.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

_BLOCK = 64 * 1024


class Relay:
    def __init__(self, target_port: int, rate: float | None = None, rate_down: float | None = None) -> None:
        self.target_port = target_port
        self.rate = rate  # bytes per second towards the server, all connections together; None: unlimited
        self.rate_down = rate_down  # the same, from the server
        self.paused = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Per direction (True: towards the server), the monotonic time when its rate allows
        # the next byte (no bursts).
        self._free_at = {True: 0.0, False: 0.0}
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def retarget(self, port: int) -> None:
        self.target_port = port

    def pause(self) -> None:
        self.paused.set()

    def resume(self) -> None:
        self.paused.clear()

    def cut(self) -> int:
        """Reset every open connection; returns how many there were."""
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
        return len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()  # the server is down: the client sees a closed connection
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink, towards_server in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, towards_server), daemon=True).start()

    def _throttle(self, count: int, upstream: bool) -> None:
        rate = self.rate if upstream else self.rate_down
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            self._free_at[upstream] = max(self._free_at[upstream], now) + count / rate
            ahead = self._free_at[upstream] - now
        if ahead > 0:
            time.sleep(ahead)

    def _pump(self, source: socket.socket, sink: socket.socket, towards_server: bool) -> None:
        try:
            while data := source.recv(_BLOCK):
                while self.paused.is_set() and not self._closed:
                    time.sleep(0.05)
                sink.sendall(data)
                self._throttle(len(data), towards_server)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
