"""Two separate server processes on two ports sharing one PostgreSQL database."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import requests

from tests.conftest import bearer
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


def test_upload_through_one_server_is_seen_live_on_the_other(
    start_server: StartServer, e2e_backend: str
) -> None:
    """A real Drive upload through server B; a WebSocket on server A gets its progress and completion."""
    if e2e_backend != "postgresql":
        pytest.skip("several servers share PostgreSQL, not SQLite")
    first = start_server(workers=2)
    second = start_server(workers=2, database_url=first.database_url)
    account = uuid.uuid4()
    sock = connect(first, account, query="")
    chunk, count = 256 * 1024, 4
    data = bytes(range(256)) * (chunk * count // 256)
    headers = bearer(account)
    created = requests.post(
        f"{second.url}/api/files/upload/create",
        json={
            "fileName": "live.bin", "fileSize": len(data), "contentType": "application/octet-stream",
            "chunkSize": chunk, "hash": hashlib.sha256(data).hexdigest(),
        },
        headers=headers, timeout=10,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    task_id = created.json()["taskId"]
    for index in range(count):
        sent = requests.post(
            f"{second.url}/api/files/upload/chunk/{task_id}/{index}",
            data=data[index * chunk : (index + 1) * chunk],
            headers={**headers, "Content-Type": "application/octet-stream"}, timeout=10,
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
    done = requests.post(f"{second.url}/api/files/upload/complete/{task_id}", headers=headers, timeout=30)
    assert done.status_code == 200, done.text

    seen = []
    while not seen or seen[-1]["type"] != "upload.completed":
        seen.append(receive_events(sock, 1)[0])
    progress = [event["data"]["progress"] for event in seen if event["type"] == "upload.progress"]
    assert progress and progress == sorted(progress) and all(0 <= p <= 100 for p in progress)
    assert all(event["data"]["taskId"] == task_id for event in seen)
    completed = seen[-1]["data"]
    assert completed["fileId"] == done.json()["id"] and completed["fileSize"] == len(data)
    ids = [event["id"] for event in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
