"""The /ws handshake's Origin check on the real server (browsers apply no CORS to WebSockets)."""

from __future__ import annotations

import json
import uuid

import pytest
import websocket

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.events_client import ws_url
from tests.live import LiveServer

GOOD = "https://app.example"


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    return start_server(server={"cors_allowed_origins": [GOOD]})


def _open(server: LiveServer, origin: str | None) -> websocket.WebSocket:
    header = [f"Authorization: {bearer(uuid.uuid4())['Authorization']}"]
    if origin is None:
        return websocket.create_connection(ws_url(server), header=header, timeout=10, suppress_origin=True)
    return websocket.create_connection(ws_url(server), header=header, timeout=10, origin=origin)


@pytest.mark.parametrize("origin", [GOOD, "same", None], ids=["listed", "same-origin", "no-origin"])
def test_listed_own_and_absent_origins_may_subscribe(server: LiveServer, origin: str | None) -> None:
    sock = _open(server, server.url if origin == "same" else origin)
    sock.send(json.dumps({"type": "ping"}))
    assert json.loads(sock.recv())["type"] == "pong"
    sock.close()


def test_a_foreign_page_is_refused_before_the_upgrade(server: LiveServer) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        _open(server, "https://evil.example")
    assert refused.value.status_code == 403
