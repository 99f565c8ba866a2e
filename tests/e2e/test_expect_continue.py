"""``Expect: 100-continue`` against the real gunicorn+gevent server, on a raw socket: a PUT
refused from its head gets the refusal as its first status line (no ``100 Continue``,
no body read); an accepted PUT gets ``100 Continue``, then 201, and keeps its connection."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import StartServer
from tests.e2e.test_xep0363 import SECRET, slot_url
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

MAX = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    return start_server(
        security={"secret": SECRET},
        uploads={"max_upload_size": MAX, "allowed_extensions": [".bin", ".txt"]},
    )


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _head(target: str, size: int, extra: str = "") -> bytes:
    return (
        f"PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
        f"Content-Type: application/octet-stream\r\nExpect: 100-continue\r\n{extra}\r\n"
    ).encode("latin-1")


class _Connection:
    """A raw client connection that reads the answer head by head."""

    def __init__(self, server: LiveServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.pending = b""

    def read_head(self) -> tuple[str, dict[str, str]]:
        """The next status line and its headers (lower-case names)."""
        while b"\r\n\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed after {self.pending!r}"
            self.pending += chunk
        head, self.pending = self.pending.split(b"\r\n\r\n", 1)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        return status, headers

    def read_body(self, headers: dict[str, str]) -> bytes:
        size = int(headers.get("content-length", "0"))
        while len(self.pending) < size:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed inside a body"
            self.pending += chunk
        body, self.pending = self.pending[:size], self.pending[size:]
        return body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def _refused_first(server: LiveServer, head: bytes) -> tuple[str, dict[str, str]]:
    """Send only ``head``; the answer must come without any body byte and without a 100."""
    connection = _Connection(server)
    try:
        started = time.monotonic()
        connection.sock.sendall(head)
        status, headers = connection.read_head()
        assert not status.startswith("HTTP/1.1 100"), "100 Continue before a refusal"
        assert time.monotonic() - started < 5  # not after a body_idle wait
        connection.read_body(headers)
        assert headers.get("connection") == "close"
        assert connection.closed_by_server()  # the body's bytes are in doubt: no keep-alive
        return status, headers
    finally:
        connection.close()


def test_over_size_is_refused_before_the_body(server: LiveServer) -> None:
    head = _head(_target(slot_url(server, "big/a.bin", MAX + 1)), MAX + 1)
    status, _ = _refused_first(server, head)
    assert status.startswith("HTTP/1.1 413")


def test_taken_slot_is_refused_before_the_body(server: LiveServer) -> None:
    size = 512 * 1024  # the small case: the 409 used to come only after the whole body
    url = slot_url(server, "taken/a.bin", size)
    assert requests.put(url, data=os.urandom(size), timeout=30).status_code == 201
    status, _ = _refused_first(server, _head(_target(url), size))
    assert status.startswith("HTTP/1.1 409")


def test_bad_signature_is_refused_before_the_body(server: LiveServer) -> None:
    url = slot_url(server, "forged/a.bin", 1000, secret="not-the-secret")
    status, _ = _refused_first(server, _head(_target(url), 1000))
    assert status.startswith("HTTP/1.1 403")


def test_bad_path_is_refused_before_the_body(server: LiveServer) -> None:
    status, _ = _refused_first(server, _head("/upload/a/../b.txt?v=00", 1000))
    assert status.startswith("HTTP/1.1 400")


def test_chunked_body_is_refused_before_the_body(server: LiveServer) -> None:
    target = _target(slot_url(server, "chunked/a.bin", 5))
    head = (
        f"PUT {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    ).encode("latin-1")
    status, _ = _refused_first(server, head)
    assert status.startswith("HTTP/1.1 411")


def test_accepted_put_gets_100_then_201_and_keeps_its_connection(server: LiveServer) -> None:
    body = os.urandom(300 * 1024)
    connection = _Connection(server)
    try:
        connection.sock.sendall(_head(_target(slot_url(server, "ok/a.bin", len(body))), len(body)))
        status, headers = connection.read_head()
        assert status == "HTTP/1.1 100 Continue" and headers == {}
        connection.sock.sendall(body)
        status, headers = connection.read_head()
        assert status.startswith("HTTP/1.1 201"), status
        connection.read_body(headers)
        assert headers.get("connection") != "close"
        # The same connection serves the next request: the 100 gave keep-alive back.
        connection.sock.sendall(b"GET /upload/ok/a.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers = connection.read_head()
        assert status.startswith("HTTP/1.1 200")
        assert connection.read_body(headers) == body
    finally:
        connection.close()


def test_empty_body_with_expect_gets_no_100(server: LiveServer) -> None:
    connection = _Connection(server)
    try:
        connection.sock.sendall(_head(_target(slot_url(server, "empty/a.txt", 0)), 0))
        status, headers = connection.read_head()
        assert status.startswith("HTTP/1.1 201"), status
        connection.read_body(headers)
        assert headers.get("connection") != "close"
    finally:
        connection.close()
