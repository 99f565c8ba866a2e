"""A slow, lossy client is recommended a smaller chunk and read buffer than a fast one.

The real gunicorn+gevent server. The fast client talks to it directly on
loopback; the slow one goes through a user-space relay (tests/relay.py) that
limits it to 256 KiB/s and cuts two of its chunks half-way. Each body is
measured by the server (TCP_INFO and goodput) and folded into the client's
profile; GET /api/network/profile then answers from the profiles.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from typing import Any

import pytest
import requests

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.e2e.test_xep0363 import SECRET, put
from tests.live import LiveServer
from tests.relay import Relay

pytestmark = pytest.mark.e2e

KIB, MIB = 1024, 1024 * 1024
API = "/api/files/upload"


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    return start_server(
        uploads={"min_chunk_size": "64KB"}, timeouts={"body_idle": "5s"}, security={"secret": SECRET}
    )


def _create(base: str, headers: dict[str, str], data: bytes, chunk: int) -> str:
    body = {"fileName": "f.bin", "fileSize": len(data), "contentType": "application/octet-stream",
            "chunkSize": chunk, "hash": hashlib.sha256(data).hexdigest()}  # fmt: skip
    answer = requests.post(f"{base}{API}/create", json=body, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["taskId"]
    return task_id


def _send(base: str, headers: dict[str, str], task_id: str, index: int, data: bytes) -> Any:
    chunk_headers = {**headers, "Content-Type": "application/octet-stream"}
    return requests.post(f"{base}{API}/chunk/{task_id}/{index}", data=data, headers=chunk_headers, timeout=60)


def _profile(base: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = requests.get(f"{base}/api/network/profile", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _cut_half_way(relay: Relay, headers: dict[str, str], task_id: str, index: int, data: bytes) -> None:
    """Send a chunk and cut the link when about half of it went (at the relay's rate)."""
    timer = threading.Timer(len(data) / 2 / (relay.rate or 1), relay.cut)
    timer.start()
    try:
        with pytest.raises(requests.RequestException):
            answer = _send(relay.url, headers, task_id, index, data)
            answer.raise_for_status()
    finally:
        timer.cancel()


def test_the_slow_lossy_client_gets_smaller_chunks_and_buffers(server: LiveServer) -> None:
    account = bearer(uuid.uuid4())
    fast = {**account, "Hmacfs-Client-Id": "desk"}
    slow = {**account, "Hmacfs-Client-Id": "phone"}
    chunk = 512 * KIB
    data = os.urandom(8 * chunk)

    task = _create(server.url, fast, data, chunk)
    for index in range(8):
        assert (
            _send(server.url, fast, task, index, data[index * chunk : (index + 1) * chunk]).status_code == 200
        )

    relay = Relay(server.port, rate=256 * KIB)
    try:
        task = _create(relay.url, slow, data, chunk)
        piece = data[:chunk]
        for index in range(2):
            _cut_half_way(relay, slow, task, index, piece)
        for index in range(3):
            assert (
                _send(relay.url, slow, task, index, data[index * chunk : (index + 1) * chunk]).status_code
                == 200
            )
        deadline = time.monotonic() + 10  # the cut bodies are recorded when the server notices
        while _profile(relay.url, slow)["estimate"]["bodies"] < 4.5 and time.monotonic() < deadline:
            time.sleep(0.2)
        slow_profile = _profile(relay.url, slow)
    finally:
        relay.close()
    fast_profile = _profile(server.url, fast)

    assert fast_profile["source"] == slow_profile["source"] == "measured"
    # RTT comes only from the kernel's TCP_INFO of the request's socket (goodput has none)
    assert fast_profile["estimate"]["rttMs"] is not None and slow_profile["estimate"]["rttMs"] is not None
    assert slow_profile["estimate"]["reliability"] < 0.8 < fast_profile["estimate"]["reliability"]
    assert slow_profile["estimate"]["throughputBytesPerSecond"] < 400 * KIB
    assert fast_profile["estimate"]["throughputBytesPerSecond"] > 4 * MIB
    assert slow_profile["chunkSize"] < fast_profile["chunkSize"]
    assert slow_profile["bufferSize"] < fast_profile["bufferSize"]
    assert slow_profile["bufferSize"] <= 64 * KIB and fast_profile["bufferSize"] >= 256 * KIB


def _metric(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (all label sets) in a /metrics answer."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_bodies_ranges_and_buffers_are_in_metrics(server: LiveServer) -> None:
    body = os.urandom(3 * MIB)
    assert put(server, "metrics/one.bin", body).status_code == 201
    url = f"{server.url}/upload/metrics/one.bin"
    assert requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10).status_code == 206
    assert requests.get(url, timeout=10).content == body
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    assert _metric(text, 'hmacfs_upload_bodies_total{arm="adaptive",outcome="complete"}') >= 1
    assert _metric(text, 'hmacfs_upload_throughput_bytes_per_second_count{arm="adaptive"}') >= 1
    assert _metric(text, "hmacfs_range_requests_total") >= 1
    assert _metric(text, "hmacfs_download_throughput_bytes_per_second_count") >= 1
    assert _metric(text, "hmacfs_buffer_size_changes_total") >= 1  # 64 KiB at first, then faster
    assert _metric(text, 'hmacfs_network_reliability{network_class="unknown"}') > 0
    assert "hmacfs_buffer_bytes_in_use" in text


def test_multipart_bodies_are_measured_too(server: LiveServer) -> None:
    """A multipart POST and a multipart Drive chunk are measured like raw bodies: each adds a
    completed body to the metrics, and the POST's client gets a profile."""

    def completed_bodies() -> float:
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        return _metric(text, 'hmacfs_upload_bodies_total{arm="adaptive",outcome="complete"}') + _metric(
            text, 'hmacfs_upload_bodies_total{arm="fixed",outcome="complete"}'
        )

    headers = {**bearer(uuid.uuid4()), "Hmacfs-Network": "type=wifi"}
    before = completed_bodies()
    files = {"file": ("m.bin", os.urandom(2 * MIB), "application/octet-stream")}
    assert requests.post(f"{server.url}/upload", files=files, headers=headers, timeout=30).status_code == 201
    data = os.urandom(256 * KIB)
    task_id = _create(server.url, headers, data, len(data))
    chunk = requests.post(
        f"{server.url}{API}/chunk/{task_id}/0", files={"chunk": ("c", data)}, headers=headers, timeout=30
    )
    assert chunk.status_code == 200, chunk.text
    assert completed_bodies() - before == 2
    profile = _profile(server.url, headers)
    assert profile["networkClass"] == "wifi" and profile["estimate"] is not None, profile
