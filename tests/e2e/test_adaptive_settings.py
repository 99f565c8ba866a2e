"""Each ``[performance]`` and ``[network_resilience]`` key of the adaptive engine does what
etc/hmacfs.toml says, on the real gunicorn+gevent server (docs/adaptive.md).

- the A/B arms and the automatic fallback: with ``testing_mode``, uploads split between
  the arms by id; when the adaptive arm's bodies fail and the fixed arm's do not, the
  worker puts every upload on fixed (logged, in the metrics) and re-arms after
  ``fallback_cooldown``;
- ``network_resilience.enabled = false`` (no profiles, fixed sizes) and
  ``multi_interface_enabled = false`` (no interface monitor);
- ``chunk_target_time``, ``min_buffer_size``, ``max_buffer_size``,
  ``performance_history_samples`` and ``profile_persistence_duration`` with the
  cleanup pass (``hmacfs cleanup``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from hmacfs.network.strategy import Arm, arm_for
from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.e2e.test_xep0363 import SECRET, put
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

KIB = 1024
CHUNK = 256 * KIB
API = "/api/files/upload"


def _create(
    server: LiveServer, headers: dict[str, str], data: bytes, chunk: int | None = CHUNK
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "fileName": "f.bin",
        "fileSize": len(data),
        "contentType": "application/octet-stream",
    }
    body["hash"] = hashlib.sha256(data).hexdigest()
    if chunk is not None:
        body["chunkSize"] = chunk
    answer = requests.post(f"{server.url}{API}/create", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _send(server: LiveServer, headers: dict[str, str], task_id: str, index: int, data: bytes) -> int:
    url = f"{server.url}{API}/chunk/{task_id}/{index}"
    chunk_headers = {**headers, "Content-Type": "application/octet-stream"}
    return requests.post(url, data=data, headers=chunk_headers, timeout=60).status_code


def _cut(server: LiveServer, headers: dict[str, str], task_id: str, data: bytes) -> None:
    """Chunk 0 of ``task_id`` with its first KiB only, then the client closes: a short body."""
    lines = [f"POST {API}/chunk/{task_id}/0 HTTP/1.1", "Host: 127.0.0.1",
             "Content-Type: application/octet-stream", f"Content-Length: {len(data)}",
             *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data[:KIB])


def _metrics(server: LiveServer) -> dict[str, float]:
    """Every sample of /metrics, by its name and labels as written."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(value) for name, value in samples}


def _wait(predicate: Any, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} after {limit} s"
        time.sleep(0.1)


def _profile(server: LiveServer, headers: dict[str, str]) -> dict[str, Any]:
    answer = requests.get(f"{server.url}/api/network/profile", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _rows(server: LiveServer, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(server.database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query), params).mappings())
    finally:
        engine.dispose()


def _uploads_by_arm(server: LiveServer, headers: dict[str, str], data: bytes) -> dict[Arm, list[str]]:
    """Create uploads until each arm has two (the arm is a pure function of the id)."""
    arms: dict[Arm, list[str]] = {Arm.FIXED: [], Arm.ADAPTIVE: []}
    while min(len(ids) for ids in arms.values()) < 2:
        task_id = _create(server, headers, data)["taskId"]
        arms[arm_for(task_id, 50.0)].append(task_id)
    return arms


def test_a_failing_adaptive_arm_falls_back_to_fixed_and_re_arms_after_the_cooldown(
    start_server: StartServer,
) -> None:
    """One worker (the fallback is per worker). Two fixed-arm bodies complete, two
    adaptive-arm bodies are cut: the adaptive error rate (1.0) exceeds 1.1 x the fixed
    one (0), so every upload goes to fixed for ``fallback_cooldown``."""
    server = start_server(workers=1, performance={
        "testing_mode": True, "adaptive_share": 50.0, "fallback_min_bodies": 2,
        "fallback_window": "5m", "fallback_cooldown": "4s",
    }, timeouts={"body_idle": "5s"})  # fmt: skip
    headers = bearer(uuid.uuid4())
    data = os.urandom(CHUNK)
    arms = _uploads_by_arm(server, headers, data)
    for task_id in arms[Arm.FIXED][:2]:
        assert _send(server, headers, task_id, 0, data) == 200
    for task_id in arms[Arm.ADAPTIVE][:2]:
        _cut(server, headers, task_id, data)
    short = 'hmacfs_upload_bodies_total{arm="adaptive",outcome="short"}'
    _wait(lambda: _metrics(server).get(short, 0) >= 2, 10, "two short adaptive bodies")

    metrics = _metrics(server)
    assert metrics['hmacfs_upload_bodies_total{arm="fixed",outcome="complete"}'] == 2  # per-arm metrics
    assert metrics["hmacfs_adaptive_fallbacks_total"] == 1
    assert metrics["hmacfs_adaptive_fallback_active"] == 1
    assert "Adaptive arm failing more than 1.10x the fixed arm: every upload on fixed for 4 s" in server.log()
    tripped = time.monotonic()
    # During the cooldown every upload is on fixed (before, half of these would be adaptive).
    arms_now = {_profile(server, headers)["arm"] for _ in range(8)}
    assert arms_now == {"fixed"}, arms_now
    assert time.monotonic() - tripped < 4, "the checks ran past the cooldown"

    time.sleep(max(0.0, tripped + 4.2 - time.monotonic()))
    _profile(server, headers)  # the first arm chosen after the cooldown re-arms
    assert "Adaptive arm re-armed after the fallback cooldown" in server.log()
    assert _metrics(server)["hmacfs_adaptive_fallback_active"] == 0
    assert "adaptive" in {_profile(server, headers)["arm"] for _ in range(16)}


def test_network_resilience_off_keeps_no_profiles_and_gives_fixed_sizes(start_server: StartServer) -> None:
    """``enabled = false``: a cellular hint changes nothing, bodies are read with the fixed
    buffers, no profile is written; ``multi_interface_enabled = false``: no monitor."""
    server = start_server(workers=1, network_resilience={"enabled": False, "multi_interface_enabled": False})
    headers = {**bearer(uuid.uuid4()), "Hmacfs-Network": "type=cellular; downlink=0.5; rtt=300"}
    data = os.urandom(CHUNK)
    created = _create(server, headers, data, chunk=None)
    assert created["chunkSize"] == 5 * 1024 * KIB  # uploads.chunk_size; on, cellular gets <= 512 KiB
    assert _send(server, headers, created["taskId"], 0, data) == 200
    profile = _profile(server, headers)
    assert profile["arm"] == "fixed" and profile["chunkSize"] == 5 * 1024 * KIB
    assert profile["bufferSize"] == 1024 * KIB
    metrics = _metrics(server)
    assert metrics['hmacfs_upload_bodies_total{arm="fixed",outcome="complete"}'] >= 1
    assert 'hmacfs_upload_bodies_total{arm="adaptive",outcome="complete"}' not in metrics
    assert _rows(server, "SELECT key FROM client_profiles") == []
    [task] = _rows(server, "SELECT client_profile_key FROM upload_tasks")
    assert task["client_profile_key"] is None
    time.sleep(3.0)  # a monitor would have logged its start by now (see the next test)
    assert "Interface monitor started" not in server.log()


def test_sizes_history_and_expiry_follow_their_settings(start_server: StartServer) -> None:
    """``chunk_target_time`` sets the chunk for a hinted rate, ``min_buffer_size`` and
    ``max_buffer_size`` bound the read size, ``performance_history_samples`` the history;
    a profile unseen for ``profile_persistence_duration`` is deleted by the cleanup pass
    and its upload forgets it."""
    server = start_server(workers=1, performance={
        "chunk_target_time": "2s", "min_buffer_size": "64KB", "max_buffer_size": "256KB",
        "performance_history_samples": 2, "profile_persistence_duration": "3s",
    })  # fmt: skip
    # The default: the monitor starts (the contrast to the test above), soon after the worker.
    _wait(lambda: "Interface monitor started" in server.log(), 15, "interface monitor")
    wifi = _profile(server, {"Hmacfs-Network": "type=wifi; downlink=8", "Hmacfs-Client-Id": "w"})
    # 1 MB/s x 2 s = 2,000,000 bytes, down to 64 KiB: 30 x 64 KiB (8 s would hit wifi's 5 MiB).
    assert wifi["chunkSize"] == 30 * 64 * KIB
    assert wifi["bufferSize"] == 64 * KIB  # 50 ms of 1 MB/s is 32 KiB, below min_buffer_size
    lan = _profile(server, {"Hmacfs-Network": "type=ethernet; downlink=1000", "Hmacfs-Client-Id": "e"})
    assert lan["bufferSize"] == 256 * KIB  # max_buffer_size (ethernet's own bound is 1 MiB)

    account = uuid.uuid4()
    headers = {**bearer(account), "Hmacfs-Client-Id": "expiring"}
    data = os.urandom(3 * CHUNK)
    created = _create(server, headers, data)
    task_id = created["taskId"]
    for index in range(3):
        assert _send(server, headers, task_id, index, data[index * CHUNK : (index + 1) * CHUNK]) == 200
    key = f"{account}:expiring:unknown"
    query = "SELECT samples, interface_history, chunk_size, buffer_size FROM client_profiles WHERE key = :key"
    _wait(lambda: (_rows(server, query, key=key) or [{"samples": 0}])[0]["samples"] >= 3, 10, "3 samples")
    [row] = _rows(server, query, key=key)
    # The sizes recommended on create, kept for DB admins (the client chose its own chunk size).
    assert (row["chunk_size"], row["buffer_size"]) == (created["recommendedChunkSize"], 64 * KIB)
    history = row["interface_history"]
    assert len(json.loads(history) if isinstance(history, str) else history) == 2  # the newest of three
    task_query = "SELECT client_profile_key FROM upload_tasks WHERE task_id = :task_id"
    assert _rows(server, task_query, task_id=task_id)[0]["client_profile_key"] == key

    time.sleep(3.5)
    done = server.cli("cleanup")
    assert "network.profiles: " in done.stdout, done.stdout
    assert _rows(server, query, key=key) == []
    assert _rows(server, task_query, task_id=task_id)[0]["client_profile_key"] is None


def test_behind_a_proxy_the_hint_gives_rate_and_rtt_and_reliability_is_measured(
    start_server: StartServer,
) -> None:
    """``server.trusted_proxy_count = 1``: the kernel sees the proxy's connection, so the
    Hmacfs-Network hint's rate and RTT win over the loopback goodput (hundreds of MB/s
    here); whether bodies complete is still measured."""
    server = start_server(workers=1, server={"trusted_proxy_count": 1})
    headers = {**bearer(uuid.uuid4()), "X-Forwarded-For": "198.51.100.7", "Hmacfs-Client-Id": "proxied",
               "Hmacfs-Network": "type=lte; downlink=2; rtt=80"}  # fmt: skip
    data = os.urandom(2 * CHUNK)
    task_id = _create(server, headers, data)["taskId"]
    for index in range(2):
        assert _send(server, headers, task_id, index, data[index * CHUNK : (index + 1) * CHUNK]) == 200
    _wait(lambda: _profile(server, headers)["estimate"]["bodies"] >= 1.5, 10, "two measured bodies")
    profile = _profile(server, headers)
    assert profile["source"] == "measured+hint", profile
    assert profile["estimate"]["throughputBytesPerSecond"] == 250_000  # 2 Mbit/s
    assert profile["estimate"]["rttMs"] == 80 and profile["estimate"]["reliability"] == 1.0


class _Tricklers:
    """``count`` XEP-0363 PUTs of 1 MiB declared, each sending a byte every 0.3 s."""

    def __init__(self, server: LiveServer, count: int) -> None:
        self.sockets = [self._open(server) for _ in range(count)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    @staticmethod
    def _open(server: LiveServer) -> socket.socket:
        path, size = f"trickle/{uuid.uuid4().hex}.bin", 1024 * KIB
        signature = hmac.new(SECRET.encode(), f"{path} {size}".encode(), hashlib.sha256).hexdigest()
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        head = f"PUT /upload/{path}?v={signature} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
        sock.sendall(head.encode() + b"x")
        return sock

    def _drip(self) -> None:
        while not self._stop.wait(0.3):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("arm", ["fixed", "adaptive"])
def test_the_buffer_budget_is_hard_and_tricklers_hold_none_of_it_while_silent(
    start_server: StartServer, arm: str
) -> None:
    """``max_buffer_memory = 4MB``, one worker. On the fixed arm two trickling PUTs hold a
    1 MiB pair each, which spends the budget: a fast PUT beside them waits ``body_idle``
    and is refused 503 BUFFER_MEMORY_EXHAUSTED. On the adaptive arm a hundred tricklers hold
    nothing between their bytes (at 64 KiB each they would need 6.4 MB), and the same PUT
    goes through."""
    performance: dict[str, Any] = {"max_buffer_memory": "4MB"}
    if arm == "fixed":
        performance["adaptive_uploads"] = False
    server = start_server(
        workers=1, performance=performance, timeouts={"body_idle": "2s"}, security={"secret": SECRET}
    )
    tricklers = _Tricklers(server, 2 if arm == "fixed" else 100)
    try:
        time.sleep(1.0)
        body = os.urandom(2 * 1024 * KIB)
        answer = put(server, f"fast/{arm}.bin", body)
        in_use = _metrics(server)["hmacfs_buffer_bytes_in_use"]
    finally:
        tricklers.close()
    assert in_use <= 4 * 1024 * KIB
    if arm == "fixed":
        assert answer.status_code == 503 and answer.json()["code"] == "BUFFER_MEMORY_EXHAUSTED", answer.text
    else:
        assert answer.status_code == 201, answer.text


def test_network_interfaces_bound_each_class(start_server: StartServer) -> None:
    """[network_interfaces]: the same 1 Gbit/s hint gets each class's chunk_size and
    buffer_size as bounds (lte: 2 MiB, 256 KiB; ethernet: 10 MiB, 1 MiB); a changed
    table changes them (lte buffer_size = 128KB, chunk_size = 1MB)."""
    server = start_server(
        workers=1, network_interfaces={"lte": {"buffer_size": "128KB", "chunk_size": "1MB"}}
    )
    sizes = {}
    for network_class in ("lte", "wifi", "ethernet"):
        hint = {"Hmacfs-Network": f"type={network_class}; downlink=1000", "Hmacfs-Client-Id": network_class}
        found = _profile(server, hint)
        sizes[network_class] = (found["chunkSize"], found["bufferSize"])
    assert sizes == {"lte": (1024 * KIB, 128 * KIB), "wifi": (5 * 1024 * KIB, 512 * KIB),
                     "ethernet": (10 * 1024 * KIB, 1024 * KIB)}  # fmt: skip
