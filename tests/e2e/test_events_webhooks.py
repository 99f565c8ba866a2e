"""Webhooks from the real server to a tiny local HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from hmacfs.models import WebhookCursor
from tests.e2e.conftest import StartServer
from tests.events_client import publish_events, publisher
from tests.live import LiveServer

SECRET = "webhook-secret"


class Receiver(ThreadingHTTPServer):
    """Fails the first ``failures`` POSTs with 500, then accepts and records them."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.attempts = 0
        self.accepted: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return [event["id"] for event in self.accepted]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with self.server.lock:
            self.server.attempts += 1
            failing = self.server.attempts <= self.server.failures
            if not hmac.compare_digest(expected, self.headers.get("X-Hmacfs-Signature", "")):
                self.server.bad_signatures += 1
            elif not failing:
                self.server.accepted.append(json.loads(body))
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver(e2e_backend: str) -> Iterator[Receiver]:
    """One receiver per server (per backend)."""
    server = Receiver(failures=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def server(start_server: StartServer, receiver: Receiver) -> LiveServer:
    hook = {"url": receiver.url, "secret": SECRET, "types": ["upload.*"]}
    return start_server(events={"webhooks": [hook], "webhook_backoff": "100ms"})


def _wait_for_cursor(server: LiveServer) -> None:
    """A new webhook starts after the newest event; wait until the deliverer has begun."""
    with publisher(server) as engine:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                if connection.execute(select(WebhookCursor.webhook)).first() is not None:
                    return
            time.sleep(0.05)
    raise AssertionError("webhook deliverer never started")


def test_failing_receiver_gets_every_event_in_order_once_it_accepts(
    server: LiveServer, receiver: Receiver
) -> None:
    _wait_for_cursor(server)
    account = uuid.uuid4()
    with publisher(server) as engine:
        wanted = publish_events(engine, account, 3, type="upload.progress")
        publish_events(engine, account, 1, type="task.created")  # not a type this hook wants
        wanted += publish_events(engine, account, 2, type="upload.completed", taskId="t")
    assert receiver.wait_for(len(wanted)) == wanted
    assert receiver.attempts >= 2 + len(wanted) and receiver.bad_signatures == 0
    first = receiver.accepted[0]
    assert (
        first["account"] == str(account) and first["type"] == "upload.progress" and first["data"] == {"n": 0}
    )

    server.restart()  # delivery state is in the database: nothing re-sent, nothing lost
    with publisher(server) as engine:
        wanted += publish_events(engine, account, 2, type="upload.progress")
    assert receiver.wait_for(len(wanted)) == wanted
    time.sleep(0.5)  # a duplicate would arrive right behind
    assert [event["id"] for event in receiver.accepted] == wanted
