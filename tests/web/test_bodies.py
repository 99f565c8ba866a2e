"""Reading request bodies straight from gunicorn's socket (``SocketBody``)."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator

import pytest
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader

from hmacfs.web.bodies import SocketBody


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    with client, server:
        yield client, server


def environ_of(server: socket.socket, length: int, buffered: bytes = b"") -> dict[str, object]:
    """The environ gunicorn builds for a body of ``length`` bytes, with ``buffered`` read
    ahead together with the request head."""
    unreader = SocketUnreader(server)
    unreader.unread(buffered)
    return {"gunicorn.socket": server, "wsgi.input": Body(LengthReader(unreader, length))}


def read_all(body: SocketBody, size: int = 7) -> bytes:
    out = bytearray()
    view = memoryview(bytearray(size))
    while got := body.readinto(view):
        out += view[:got]
    return bytes(out)


def test_takes_read_ahead_then_the_socket_and_stops_at_the_body_end(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    environ = environ_of(server, 20, buffered=b"0123456789")
    client.sendall(b"abcdefghij" + b"GET /next HTTP/1.1\r\n")
    body = SocketBody.of(environ)
    assert body is not None
    assert read_all(body) == b"0123456789abcdefghij"
    wsgi_input = environ["wsgi.input"]
    assert isinstance(wsgi_input, Body)
    assert wsgi_input.read() == b""  # gunicorn sees the body consumed: keep-alive is intact
    assert server.recv(100) == b"GET /next HTTP/1.1\r\n"  # the next request was not eaten


def test_pipelined_bytes_beyond_the_body_stay_for_the_next_request(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _client, server = pair
    environ = environ_of(server, 4, buffered=b"bodyGET / HTTP/1.1\r\n")
    body = SocketBody.of(environ)
    assert body is not None
    assert read_all(body) == b"body"
    unreader = environ["wsgi.input"].reader.unreader  # type: ignore[attr-defined]
    assert unreader.read() == b"GET / HTTP/1.1\r\n"


def test_a_client_that_goes_away_ends_the_body_early(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    body = SocketBody.of(environ_of(server, 100))
    assert body is not None
    client.sendall(b"short")
    client.shutdown(socket.SHUT_WR)
    assert read_all(body) == b"short"
    assert body(10) == b""


def test_not_used_for_other_servers_or_a_partly_read_body(pair: tuple[socket.socket, socket.socket]) -> None:
    _client, server = pair
    assert SocketBody.of({"wsgi.input": io.BytesIO(b"x")}) is None
    environ = environ_of(server, 4, buffered=b"body")
    environ["wsgi.input"].read(1)  # type: ignore[attr-defined]
    assert SocketBody.of(environ) is None


def test_a_silent_client_ends_the_body_after_the_idle_limit(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A peer that stops sending without closing (a phone gone to another network) ends the
    body as short once it has been silent for ``idle`` seconds; the socket's own timeout
    (gunicorn's blocking mode) is restored for the response and keep-alive."""
    client, server = pair
    environ = environ_of(server, 20)
    client.sendall(b"half of it")
    body = SocketBody.of(environ, idle=0.2)
    assert body is not None
    started = time.monotonic()
    assert read_all(body) == b"half of it"
    assert 0.15 < time.monotonic() - started < 5
    assert server.gettimeout() is None
