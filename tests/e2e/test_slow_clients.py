"""Slow and idle clients lose their connections; the server keeps answering.

The real gunicorn+gevent server, loopback only. Request heads are bounded by
``timeouts.request_head``, kept-alive connections by ``timeouts.idletimeout``;
bodies by ``timeouts.body_idle`` alone. The load test is test_slow_clients_load.py.
"""

from __future__ import annotations

import http.client
import os
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import StartServer
from tests.e2e.test_xep0363 import SECRET, slot_url
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

REQUEST_HEAD = 1.0
IDLE = 2.0


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    return start_server(
        security={"secret": SECRET},
        timeouts={"request_head": f"{int(REQUEST_HEAD * 1000)}ms", "idletimeout": f"{int(IDLE)}s"},
    )


def _closed_after(sock: socket.socket, limit: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes ``sock`` (reading EOF), sending ``trickle`` one byte
    every 0.2 s meanwhile; fails past ``limit`` seconds."""
    started = time.monotonic()
    sock.settimeout(0.2)
    sent = 0
    while time.monotonic() - started < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if sent < len(trickle):
            try:
                sock.send(trickle[sent : sent + 1])
            except OSError:
                return time.monotonic() - started
            sent += 1
    raise AssertionError(f"connection still open after {limit}s")


def test_slow_head_is_dropped(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        lived = _closed_after(sock, 10, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100)
    assert REQUEST_HEAD * 0.6 <= lived <= REQUEST_HEAD + 2  # 3/4 to all of request_head


def test_silent_connection_is_dropped(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        lived = _closed_after(sock, 10)
    assert REQUEST_HEAD * 0.6 <= lived <= REQUEST_HEAD + 2  # 3/4 to all of request_head


def test_idle_keep_alive_is_closed_after_idletimeout(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" not in answer.lower()
        lived = _closed_after(sock, 10)
    # Idle longer than request_head without being dropped: only idletimeout applies.
    assert IDLE * 0.8 <= lived <= IDLE + 2


def test_kept_alive_connection_gets_request_head_for_its_next_head(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(3):
            time.sleep(REQUEST_HEAD * 1.5)  # longer than request_head, shorter than idletimeout
            connection.request("GET", "/health")
            assert connection.getresponse().read() and connection.sock is not None
    finally:
        connection.close()


def test_slow_body_is_bounded_by_body_idle_not_request_head(server: LiveServer) -> None:
    body = os.urandom(4000)
    url = urlsplit(slot_url(server, "slow/body.bin", len(body)))
    head = f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        for piece in range(8):  # 8 pieces over ~3.2 s, well past request_head
            time.sleep(0.4)
            sock.sendall(body[piece * 500 : (piece + 1) * 500])
        assert sock.recv(65536).startswith(b"HTTP/1.1 201")
