"""``splice_body``: a body moved from one TCP socket to another inside the kernel, on real
loopback sockets (the waits are gevent's; the peers are OS threads)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from hmacfs.storage.splicing import splice_available, splice_body

MiB = 1024 * 1024

pytestmark = pytest.mark.skipif(not splice_available(), reason="no os.splice on this platform")


@dataclass
class Body:
    """A SocketBody over a plain socket."""

    fileno: int
    remaining: int
    buffered: bytes = b""
    timeout: float | None = None

    def close(self) -> None:
        """The test closes its own sockets."""


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected loopback TCP sockets (the kernel's TCP path, not a Unix pair)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    return client, accepted


@contextmanager
def wired(
    data: bytes, *, close_after: bool = True
) -> Iterator[tuple[socket.socket, socket.socket, list[bytes]]]:
    """A source socket fed ``data`` by a thread, and an out socket whose far end a thread
    drains into the returned list (joined with its bytes once the out socket closes)."""
    feeder, source = socket_pair()
    out, drain = socket_pair()
    received: list[bytes] = []

    def feed() -> None:
        feeder.sendall(data)
        if close_after:
            feeder.close()

    def read() -> None:
        chunks = []
        while block := drain.recv(MiB):
            chunks.append(block)
        received.append(b"".join(chunks))

    threads = [threading.Thread(target=feed), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    source.setblocking(False)
    out.setblocking(False)
    try:
        yield source, out, received
    finally:
        out.close()
        for thread in threads:
            thread.join(10)
        source.close()
        drain.close()
        feeder.close()


def test_a_body_larger_than_the_pipe_arrives_whole() -> None:
    data = os.urandom(5 * MiB + 123)
    with wired(data) as (source, out, received):
        splice_body(Body(source.fileno(), len(data)), out.fileno(), timeout=10)
    assert received == [data]


def test_only_the_remaining_bytes_are_moved() -> None:
    data = os.urandom(MiB)
    with wired(data + b"next answer") as (source, out, received):
        splice_body(Body(source.fileno(), len(data)), out.fileno(), timeout=10)
        assert source.recv(100) == b"next answer"
    assert received == [data]


def test_a_source_that_ends_early_is_a_connection_error() -> None:
    data = os.urandom(MiB)
    with wired(data) as (source, out, received), pytest.raises(ConnectionError):
        splice_body(Body(source.fileno(), len(data) + 10), out.fileno(), timeout=10)
    assert received == [data]


def test_a_silent_source_times_out() -> None:
    with wired(b"x" * 100, close_after=False) as (source, out, _), pytest.raises(TimeoutError):
        splice_body(Body(source.fileno(), 200), out.fileno(), timeout=0.5)


def test_a_silent_source_times_out_after_its_own_timeout() -> None:
    with wired(b"x" * 100, close_after=False) as (source, out, _):
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            splice_body(Body(source.fileno(), 200, timeout=0.3), out.fileno(), timeout=60)
        assert time.monotonic() - started < 5


def test_a_client_that_went_away_is_a_connection_error() -> None:
    data = os.urandom(8 * MiB)
    feeder, source = socket_pair()
    out, drain = socket_pair()
    drain.close()

    def feed() -> None:
        with contextlib.suppress(OSError):  # the source is closed under it
            feeder.sendall(data)

    thread = threading.Thread(target=feed)
    thread.start()
    source.setblocking(False)
    out.setblocking(False)
    try:
        with pytest.raises(ConnectionError):
            splice_body(Body(source.fileno(), len(data)), out.fileno(), timeout=10)
    finally:
        source.close()
        out.close()
        thread.join(10)
        feeder.close()
