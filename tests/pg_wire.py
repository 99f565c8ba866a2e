"""A loopback relay in front of PostgreSQL that counts the client's round trips.

psycopg2 speaks the simple query protocol: every statement, BEGIN, COMMIT,
ROLLBACK and pool ping is one ``Query`` ('Q') message answered by one
``ReadyForQuery``. Counting the 'Q' messages the client sends therefore counts
its round trips exactly, whatever the ORM or the pool did to produce them.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from sqlalchemy.engine import make_url

_BLOCK = 64 * 1024


class WireCounter:
    """Relays ``127.0.0.1:port`` to the server of ``database_url``; ``queries`` counts 'Q' messages."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self._target = (url.host or "127.0.0.1", url.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        self.url = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._queries = 0
        self._open: list[socket.socket] = []
        self.texts: list[str] = []  # the start of each query's text, for failure messages
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def queries(self) -> int:
        with self._lock:
            return self._queries

    def close(self) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._open += [client, server]
            threading.Thread(target=self._client_to_server, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(_BLOCK):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def _client_to_server(self, client: socket.socket, server: socket.socket) -> None:
        """Forward while parsing: untyped start-up messages (SSLRequest, StartupMessage) until
        the StartupMessage, then typed messages (one type byte, a length that counts itself)."""
        buffer = b""
        started = False
        with contextlib.suppress(OSError):
            while data := client.recv(_BLOCK):
                server.sendall(data)
                buffer += data
                while True:
                    header = 8 if not started else 5
                    if len(buffer) < header:
                        break
                    if not started:
                        (total,) = struct.unpack("!I", buffer[:4])
                    else:
                        (length,) = struct.unpack("!I", buffer[1:5])
                        total = length + 1
                    if len(buffer) < total:
                        break
                    if not started:
                        # protocol 3.0's code: the StartupMessage itself, after which messages are typed
                        started = struct.unpack("!I", buffer[4:8])[0] == 196608
                    elif buffer[:1] == b"Q":
                        with self._lock:
                            self._queries += 1
                            self.texts.append(buffer[5:total].rstrip(b"\0").decode(errors="replace")[:80])
                    buffer = buffer[total:]
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)
