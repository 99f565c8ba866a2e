"""``hmacfs upload`` reads the server's recommendations and says what network it is on,
against the real server on both backends: the tus PATCHes follow ``Hmacfs-Chunk-Size``,
the Drive chunks the create answer's ``chunkSize``, and every request carries
``Hmacfs-Network`` (the server records the class per upload and per profile).
The mid-upload re-read of ``GET /api/network/profile`` after a network change is
tested through a real Wi-Fi → LTE switch in test_network_switch.py."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.e2e.test_client import Run, stored_sha256
from tests.live import LiveServer

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024
SIZE = 9 * MiB + 4321


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    # A class's [network_interfaces] chunk_size is the start for an unmeasured client of that
    # class; a client that names none starts at uploads.chunk_size.
    classes = {"lte": {"chunk_size": "1MB"}, "wifi": {"chunk_size": "2MB"}}
    return start_server(uploads={"chunk_size": "3MB", "min_chunk_size": "256KB"}, network_interfaces=classes)


def _upload(server: LiveServer, path: Path, tmp: Path, protocol: str, network: str) -> tuple[Run, str]:
    token = bearer(uuid.uuid4())["Authorization"].removeprefix("Bearer ")
    run = Run(["upload", str(path), "--server", server.url, "--token", token, "--protocol", protocol,
               "--state-dir", str(tmp / "state"), "--network", network])  # fmt: skip
    assert run.finish() == 0, run.stderr()
    return run, token


def _task(server: LiveServer, task_id: str) -> dict[str, Any]:
    """The upload's chunk size and the network the server recorded for it."""
    engine = sa.create_engine(server.database_url)
    query = "SELECT chunk_size, client_network, client_profile_key FROM upload_tasks WHERE task_id = :task_id"
    try:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text(query), {"task_id": task_id}).mappings().one())
    finally:
        engine.dispose()


def _recommended(server: LiveServer, token: str, network: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Hmacfs-Network": f"type={network}"}
    answer = requests.get(f"{server.url}/api/network/profile?fileSize={SIZE}", headers=headers, timeout=10)
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "clip.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def test_tus_patches_start_at_the_servers_chunk_size_for_its_network(
    server: LiveServer, payload: Path, tmp_path: Path
) -> None:
    run, token = _upload(server, payload, tmp_path, "tus", "lte")
    first = run.first("chunk_size")
    assert first["source"] == "create" and first["recommended"] == first["size"] == MiB  # lte's start
    wifi_run, _ = _upload(server, payload, tmp_path / "wifi", "tus", "wifi")
    assert wifi_run.first("chunk_size")["recommended"] == 2 * MiB
    location = run.first("done")["location"]
    task = _task(server, task_id=location.rstrip("/").rsplit("/", 1)[-1])
    assert task["client_network"] == "lte" and str(task["client_profile_key"]).endswith(":lte")
    profile = _recommended(server, token, "lte")
    assert profile["networkClass"] == "lte"
    stored = run.first("done")["details"]  # the last PATCH's answer named the file
    assert stored["url"] == f"{server.url}/download/{stored['id']}"
    file = requests.get(stored["url"], headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert file.status_code == 200 and file.content == payload.read_bytes()
    stored_sha256(server, payload)


def test_drive_takes_the_create_answers_chunk_size_and_says_its_network(
    server: LiveServer, payload: Path, tmp_path: Path
) -> None:
    run, _ = _upload(server, payload, tmp_path, "drive", "lte")
    task_id = run.first("done")["location"]
    task = _task(server, task_id=task_id)
    assert task["chunk_size"] == MiB  # the recommendation for an unmeasured lte client
    assert task["client_network"] == "lte" and str(task["client_profile_key"]).endswith(":lte")
    stored_sha256(server, payload)


def test_an_explicit_chunk_size_fixes_every_patch(server: LiveServer, payload: Path, tmp_path: Path) -> None:
    token = bearer(uuid.uuid4())["Authorization"].removeprefix("Bearer ")
    run = Run(["upload", str(payload), "--server", server.url, "--token", token, "--protocol", "tus",
               "--state-dir", str(tmp_path / "state"), "--chunk-size", str(768 * 1024)])  # fmt: skip
    assert run.finish() == 0, run.stderr()
    assert "chunk_size" not in run.kinds()  # the server's recommendation is not taken
    task_id = run.first("done")["location"].rstrip("/").rsplit("/", 1)[-1]
    engine = sa.create_engine(server.database_url)
    query = (
        "SELECT c.size FROM upload_chunks c JOIN upload_tasks t ON c.upload_id = t.id WHERE t.task_id = :t"
    )
    try:
        with engine.connect() as conn:
            sizes = [row[0] for row in conn.execute(sa.text(query), {"t": task_id})]
    finally:
        engine.dispose()
    assert sorted(sizes)[1:] == [768 * 1024] * (len(sizes) - 1) and sum(sizes) == SIZE


def test_none_sends_no_network_header(server: LiveServer, payload: Path, tmp_path: Path) -> None:
    run, _ = _upload(server, payload, tmp_path, "drive", "none")
    task = _task(server, task_id=run.first("done")["location"])
    assert task["chunk_size"] == 3 * MiB and task["client_network"] == "unknown"
