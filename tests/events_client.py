"""Helpers for event tests: a real WebSocket client and a publisher in the test process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import websocket
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hmacfs.db import make_engine
from hmacfs.events import publish
from hmacfs.events.publisher import written_events
from tests.conftest import bearer
from tests.live import LiveServer


def ws_url(server: LiveServer, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else "")


def connect(
    server: LiveServer, account: uuid.UUID, query: str = "", timeout: float = 10
) -> websocket.WebSocket:
    """An authenticated socket; a ping round trip proves the subscription is registered."""
    header = [f"Authorization: {bearer(account)['Authorization']}"]
    sock = websocket.create_connection(ws_url(server, query), header=header, timeout=timeout)
    sock.send(json.dumps({"type": "ping"}))
    messages = []
    while (message := receive(sock))["type"] != "pong":
        messages.append(message)
    sock.pending = messages  # type: ignore[attr-defined]
    return sock


def receive(sock: websocket.WebSocket) -> dict[str, Any]:
    pending: list[dict[str, Any]] = getattr(sock, "pending", [])
    if pending:
        return pending.pop(0)
    found: dict[str, Any] = json.loads(sock.recv())
    return found


def receive_events(sock: websocket.WebSocket, count: int) -> list[dict[str, Any]]:
    return [receive(sock) for _ in range(count)]


@contextmanager
def publisher(server: LiveServer) -> Iterator[Engine]:
    engine = make_engine(server.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def publish_events(
    engine: Engine, account: uuid.UUID, count: int, type: str = "upload.progress", **data: Any
) -> list[int]:
    """Publish ``count`` events, each in its own committed transaction, from this process."""
    ids = []
    for n in range(count):
        with Session(engine) as session:
            publish(session, account, type, {"n": n, **data})
            session.commit()
            ids.extend(event.id for event in written_events(session))
    return ids


def close_status(sock: websocket.WebSocket) -> tuple[int, str]:
    """Read up to the server's close frame; its (code, reason)."""
    while True:
        opcode, data = sock.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), data[2:].decode()


def raw_close_code(sock: websocket.WebSocket) -> int:
    """Read the raw stream to EOF without answering anything; the close frame's code.

    (websocket-client would answer the pings it reads, which fails on a socket
    the server already closed.)"""
    data = b""
    sock.sock.settimeout(10)
    while chunk := sock.sock.recv(65536):
        data += chunk
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F  # server frames are unmasked
        header = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if length >= 126:
            length = int.from_bytes(data[2:header], "big")
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[header : header + 2], "big")
        data = data[header + length :]
    raise AssertionError("no close frame")
