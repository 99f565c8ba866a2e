"""Live events over the real server's /ws (2 gunicorn workers on PostgreSQL, 1 on SQLite),
published from the test process: a genuine second process writing to the server's database."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import websocket
from sqlalchemy import text, update

from hmacfs.auth import TokenCodec
from hmacfs.models import Event
from tests.conftest import JWT_SECRET, bearer
from tests.e2e.conftest import StartServer
from tests.events_client import (
    close_status,
    connect,
    publish_events,
    publisher,
    raw_close_code,
    receive,
    receive_events,
    ws_url,
)
from tests.live import LiveServer


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> LiveServer:
    return live_server


def test_listeners_on_every_worker_see_events_of_another_process(server: LiveServer) -> None:
    account = uuid.uuid4()
    sockets = [connect(server, account) for _ in range(4)]  # spread over the workers
    with publisher(server) as engine:
        ids = publish_events(engine, account, 5, taskId="t1")
    for sock in sockets:
        events = receive_events(sock, 5)
        assert [event["id"] for event in events] == ids
        assert {event["type"] for event in events} == {"upload.progress"}
        assert events[0]["data"] == {"n": 0, "taskId": "t1"} and "T" in events[0]["ts"]
        sock.close()


def test_other_accounts_events_never_arrive(server: LiveServer) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    sock = connect(server, mine)
    with publisher(server) as engine:
        publish_events(engine, other, 3)
        ids = publish_events(engine, mine, 1)
    assert receive(sock)["id"] == ids[0]
    sock.close()


@pytest.mark.parametrize(
    "query, header, first",
    [
        ("", None, None),  # nothing at all: the first message is not auth
        ("", "Bearer not-a-jwt", None),
        ("token=garbage", None, None),
        ("", None, {"type": "auth", "token": "garbage"}),
    ],
)
def test_auth_failures_close_with_4401(
    server: LiveServer, query: str, header: str | None, first: object
) -> None:
    headers = [f"Authorization: {header}"] if header else []
    sock = websocket.create_connection(ws_url(server, query), header=headers, timeout=10)
    if not headers and not query:
        sock.send(json.dumps(first or {"type": "ping"}))
    code, reason = close_status(sock)
    assert code == 4401 and reason


def test_token_in_query_or_first_message_authenticates(server: LiveServer) -> None:
    account = uuid.uuid4()
    token = bearer(account)["Authorization"].split(" ", 1)[1]
    by_query = websocket.create_connection(ws_url(server, f"token={token}"), timeout=10)
    by_message = websocket.create_connection(ws_url(server), timeout=10)
    by_message.send(json.dumps({"type": "auth", "token": token}))
    for sock in (by_query, by_message):
        sock.send(json.dumps({"type": "ping"}))
        assert receive(sock) == {"type": "pong"}
    with publisher(server) as engine:
        ids = publish_events(engine, account, 1)
    assert receive(by_query)["id"] == receive(by_message)["id"] == ids[0]


def test_since_replays_missed_events_then_live_ones_in_order(server: LiveServer) -> None:
    account = uuid.uuid4()
    with publisher(server) as engine:
        before = publish_events(engine, account, 4)
        sock = connect(server, account, f"since={before[0]}")
        after = publish_events(engine, account, 3)
    events = receive_events(sock, 6)
    assert [event["id"] for event in events] == before[1:] + after
    sock.send(json.dumps({"type": "resume", "since": before[2]}))
    assert [event["id"] for event in receive_events(sock, 4)] == before[3:] + after


def test_reconnect_with_since_after_killing_the_client_mid_stream(server: LiveServer) -> None:
    account = uuid.uuid4()
    total = 120
    published: list[int] = []
    sock = connect(server, account, "since=0")
    with publisher(server) as engine:
        worker = threading.Thread(target=lambda: published.extend(publish_events(engine, account, total)))
        worker.start()
        seen = [event["id"] for event in receive_events(sock, 30)]
        sock.sock.close()  # abrupt: no close frame, as a dropped network would
        resumed = connect(server, account, f"since={seen[-1]}")
        worker.join(timeout=120)
    rest = [event["id"] for event in receive_events(resumed, len(published) - len(seen))]
    assert seen + rest == published


def test_listener_reconnects_after_losing_its_database_connection(server: LiveServer) -> None:
    if not server.database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    account = uuid.uuid4()
    sock = connect(server, account)
    with publisher(server) as engine:
        first = publish_events(engine, account, 3)
        with engine.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'hmacfs-listener' AND datname = current_database()"
                )
            ).scalar()
        assert killed  # every worker's listener lost its connection
        second = publish_events(engine, account, 3)
    assert [event["id"] for event in receive_events(sock, 6)] == first + second


def test_filters_by_type_and_task(server: LiveServer) -> None:
    account = uuid.uuid4()
    sock = connect(server, account)
    sock.send(json.dumps({"type": "subscribe", "types": ["task.*"], "taskIds": ["t2"]}))
    sock.send(json.dumps({"type": "ping"}))
    assert receive(sock) == {"type": "pong"}
    with publisher(server) as engine:
        publish_events(engine, account, 1, type="upload.completed", taskId="t2")
        publish_events(engine, account, 1, type="task.progress", taskId="t1")
        wanted = publish_events(engine, account, 1, type="task.completed", taskId="t2")
    assert receive(sock)["id"] == wanted[0]


def test_unknown_messages_get_an_error_not_a_close(server: LiveServer) -> None:
    sock = connect(server, uuid.uuid4())
    sock.send("not json")
    assert receive(sock)["type"] == "error"
    sock.send(json.dumps({"type": "resume", "since": "x"}))
    assert receive(sock)["type"] == "error"
    sock.send(json.dumps({"type": "ping"}))
    assert receive(sock) == {"type": "pong"}


def test_since_older_than_retention_answers_resync(server: LiveServer) -> None:
    account = uuid.uuid4()
    with publisher(server) as engine:
        old = publish_events(engine, account, 2)
        with engine.begin() as connection:
            connection.execute(
                update(Event)
                .where(Event.id == old[0])
                .values(created_at=datetime.now(UTC) - timedelta(days=30))
            )
        server.cli("cleanup")
        sock = connect(server, account, f"since={old[0] - 1}")
        assert receive(sock) == {"type": "resync"}
        fresh = connect(server, account, f"since={old[0]}")  # nothing it needs is gone
        assert receive(fresh)["id"] == old[1]
        live = publish_events(engine, account, 1)
    assert receive(sock)["id"] == live[0]


def test_slow_subscriber_gets_resync_without_slowing_others(start_server: StartServer) -> None:
    server = start_server(events={"subscriber_queue_size": 20})
    account = uuid.uuid4()
    slow = connect(server, account)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    fast = connect(server, account)
    received: list[dict[str, object]] = []
    with publisher(server) as engine:
        for _ in range(30):  # in steps the fast client keeps up with; random hex is incompressible
            publish_events(engine, account, 5, pad=os.urandom(32 * 1024).hex())
            received.extend(receive_events(fast, 5))
    assert all(isinstance(event.get("id"), int) for event in received)  # never a resync
    count = len(received)
    types = []
    while (message := receive(slow))["type"] != "resync":
        types.append(message["type"])
    assert len(types) < count


def test_server_pings_and_closes_sockets_that_never_answer(start_server: StartServer) -> None:
    server = start_server(workers=1, events={"ping_interval": "300ms"}, security={"jwt_leeway": "0s"})
    account = uuid.uuid4()
    dead = connect(server, account)
    codec = TokenCodec("HS256", JWT_SECRET, JWT_SECRET, timedelta(0))
    short_token = codec.issue(account, timedelta(seconds=1))
    expiring = websocket.create_connection(ws_url(server, f"token={short_token}"), timeout=10)
    assert close_status(expiring) == (4401, "token expired")  # a socket lives no longer than its token
    alive = connect(server, account)
    pings = 0
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # alive answers every ping (websocket-client does on read)
        alive.settimeout(0.5)
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            opcode, _ = alive.recv_data(control_frame=True)
            pings += opcode == websocket.ABNF.OPCODE_PING
    assert pings >= 2
    assert raw_close_code(dead) == 1008  # never read, so never answered: closed (policy violation)
    alive.settimeout(10)
    alive.send(json.dumps({"type": "ping"}))
    assert receive(alive) == {"type": "pong"}
