"""HTTP/1.1 over ``http.client``, one keep-alive connection per thread, abortable at once.

A request whose network went away does not fail by itself: the kernel keeps
retransmitting for minutes. The watchdog (``hmacfs.client.watch``) calls
``abort()`` from its own thread, which shuts the socket down: the blocked
``send`` or ``recv`` returns at once and the request raises ``Aborted``.
Bodies go out in 1 MiB blocks from a caller's buffer (no copies), and every
block counts as activity and progress.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from hmacfs.client.errors import Answer, ClientError

# A body goes to the socket in blocks of this size: each one counts as progress (the
# bar, the stall watch), which on a phone's 8 Mbit/s uplink is every quarter second.
BLOCK = 256 * 1024
FIRST_BLOCK = 64 * 1024
USER_AGENT = "hmacfs-client/0.1"
# Once a body is sent, silence until the answer is normal for a while: a re-sent chunk
# waits on the server for the earlier writer's lock (up to timeouts.body_idle + 5 s).
ANSWER_WAIT = 70.0


class Aborted(ConnectionError):
    """The watchdog cut this request (``reason``: "network change" or "stalled")."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"request aborted: {reason}")
        self.reason = reason


class Connection:
    """One connection to ``base_url``; reconnects after a failure. Not thread-safe except
    ``abort`` and ``idle_for``, which the watchdog calls."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(f"server URL must be http(s)://host[:port]: {base_url!r}")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self._conn = cls(parts.hostname, parts.port, timeout=timeout, blocksize=BLOCK)
        self.prefix = parts.path.rstrip("/")
        self.stall_limit: float | None = None  # seconds without activity before the watchdog aborts
        self._last_activity = time.monotonic()
        self._aborted: str | None = None
        self._lock = threading.Lock()

    def idle_for(self, now: float) -> float:
        return now - self._last_activity

    def abort(self, reason: str) -> None:
        """Cut the request in flight, from any thread (no-op when idle)."""
        with self._lock:
            sock = self._conn.sock
            if sock is None or self.stall_limit is None:
                return
            self._aborted = reason
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._conn.close()

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: memoryview | bytes | None = None,
        *,
        stall: float | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> Answer:
        """Send one request and read its answer whole.

        ``stall`` arms the watchdog for this request; ``on_sent(n)`` is called after
        each block of the body. Raises ``Aborted`` when the watchdog cut it, OSError
        (or http.client.HTTPException) when the connection failed; the connection is
        closed then and the next request opens a new one.
        """
        self._aborted = None
        self._last_activity = time.monotonic()
        self.stall_limit = stall
        try:
            return self._exchange(method, path, headers, body, on_sent)
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            if self._aborted:
                raise Aborted(self._aborted) from exc
            raise
        finally:
            with self._lock:
                self.stall_limit = None

    def _exchange(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: memoryview | bytes | None,
        on_sent: Callable[[int], None] | None,
    ) -> Answer:
        conn = self._conn
        conn.putrequest(method, self.prefix + path, skip_accept_encoding=True)
        conn.putheader("User-Agent", USER_AGENT)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(0 if body is None else len(body)))
        conn.endheaders()
        if body:
            self._send_body(memoryview(body), on_sent)
        if self.stall_limit is not None:  # the server may wait for a chunk's lock before it answers
            self.stall_limit = max(self.stall_limit, ANSWER_WAIT)
        response = conn.getresponse()
        self._last_activity = time.monotonic()
        data = response.read()
        if self._aborted:  # cut after the answer arrived: the socket is shut down all the same
            raise OSError("aborted")
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def request_into(
        self,
        path: str,
        headers: dict[str, str],
        write: Callable[[bytes], None],
        *,
        stall: float | None = None,
    ) -> Answer:
        """GET ``path``; a 200 or 206 body goes to ``write`` block by block (the Answer's
        body stays empty), any other answer is read whole. Raises as ``request``."""
        self._aborted = None
        self._last_activity = time.monotonic()
        self.stall_limit = stall
        try:
            conn = self._conn
            conn.putrequest("GET", self.prefix + path, skip_accept_encoding=True)
            conn.putheader("User-Agent", USER_AGENT)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            found = {k.lower(): v for k, v in response.getheaders()}
            if response.status not in (200, 206):
                return Answer(response.status, found, response.read())
            while block := response.read(BLOCK):
                self._last_activity = time.monotonic()
                write(block)
            if self._aborted:
                raise OSError("aborted")
            return Answer(response.status, found)
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            if self._aborted:
                raise Aborted(self._aborted) from exc
            raise
        finally:
            with self._lock:
                self.stall_limit = None

    def _send_body(self, view: memoryview, on_sent: Callable[[int], None] | None) -> None:
        # The first block is small: on a fresh connection still in slow start (a new
        # network), a 256 KiB send would show no progress for a second.
        starts = [0, *range(FIRST_BLOCK, len(view), BLOCK)] if len(view) > FIRST_BLOCK else [0]
        for start, end in zip(starts, [*starts[1:], len(view)], strict=True):
            block = view[start:end]
            self._conn.send(block)
            self._last_activity = time.monotonic()
            if on_sent is not None:
                on_sent(len(block))
