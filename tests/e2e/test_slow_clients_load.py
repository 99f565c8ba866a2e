"""2,000 connections trickling their request heads at 1 byte/s (a slow client that is
dropped comes back at once) against the real server in its production shape
(PostgreSQL, 2 gevent workers, default settings: request_head 10 s,
worker_connections 4096): ``/health`` on fresh connections stays under 100 ms at p99,
uploads succeed, and every slow socket is dropped within request_head while the
probes run. Loopback only; bounded in sockets (2,000 open) and time (16 s)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.test_xep0363 import SECRET, slot_url
from tests.live import REPO, LiveServer
from tests.pg import PgServer

pytestmark = pytest.mark.e2e

SLOW_SOCKETS = 2000
LOAD_SECONDS = 16.0


def _probe_health(port: int, until: float) -> list[float]:
    """Latencies (s) of GET /health, each on a new connection, until ``until``."""
    latencies = []
    while time.monotonic() < until:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.03)
    return latencies


def _uploads(server: LiveServer, until: float, results: list[int]) -> None:
    index = 0
    while time.monotonic() < until:
        body = os.urandom(256 * 1024)
        url = slot_url(server, f"load/{index}.bin", len(body))
        results.append(requests.put(url, data=body, timeout=30).status_code)
        index += 1
        time.sleep(0.5)


@pytest.fixture
def loaded_server(pg_server: PgServer | None, tmp_path: Path) -> Iterator[LiveServer]:
    if pg_server is None:
        pytest.skip("PostgreSQL not available (the production shape: 2 workers)")
    server = LiveServer(
        tmp_path,
        pg_server.create_database(),
        workers=2,
        sections={
            "security": {"secret": SECRET},
        },
    )
    try:
        yield server.start()
    finally:
        server.stop()


def test_two_thousand_slow_clients_do_not_take_the_server_down(loaded_server: LiveServer) -> None:
    attack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.slow_clients",
            str(loaded_server.port),
            str(SLOW_SOCKETS),
            str(LOAD_SECONDS),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert attack.stdout is not None
        assert attack.stdout.readline().strip() == f"connected {SLOW_SOCKETS}"
        until = time.monotonic() + LOAD_SECONDS - 4
        uploads: list[int] = []
        uploader = threading.Thread(target=_uploads, args=(loaded_server, until, uploads))
        uploader.start()
        latencies = sorted(_probe_health(loaded_server.port, until))
        uploader.join(timeout=60)
        summary = json.loads(attack.stdout.readline())
        assert attack.wait(timeout=30) == 0
    finally:
        attack.kill()
        attack.wait()
    p99 = latencies[int(len(latencies) * 0.99)]
    p50, worst = latencies[len(latencies) // 2], latencies[-1]
    print(
        f"/health under {SLOW_SOCKETS} slow sockets: {len(latencies)} probes, p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms; uploads {uploads}; slow sockets {summary}"
    )
    assert len(latencies) > 100
    assert p99 < 0.1
    assert uploads and all(status == 201 for status in uploads)
    # Every slow socket was dropped, each within request_head (3 s) and a margin.
    assert summary["connect_failures"] == 0
    assert summary["dropped"] >= SLOW_SOCKETS
    assert summary["lifetime_max"] < 10 + 2
