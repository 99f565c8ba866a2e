"""Two separate server processes on two ports sharing one PostgreSQL database."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import StartServer
from tests.events_client import connect, publish_events, publisher, receive_events


def test_listeners_on_either_server_see_every_event(start_server: StartServer, e2e_backend: str) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("several servers share PostgreSQL, not SQLite")
    first = start_server(workers=2)
    second = start_server(workers=2, database_url=first.database_url)
    account = uuid.uuid4()
    sockets = [connect(first, account), connect(second, account)]
    with publisher(second) as engine:
        ids = publish_events(engine, account, 5)
    for sock in sockets:
        assert [event["id"] for event in receive_events(sock, 5)] == ids
