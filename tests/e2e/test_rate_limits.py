"""Rate limits on the real gunicorn+gevent server: the PostgreSQL buckets are shared by the
workers of one server and by separate servers (nodes) on the same database."""

from __future__ import annotations

import itertools
import uuid

import pytest
import requests

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import LiveServer

BURST = 10
LIMITS = {"enabled": True, "by_jid": False, "burst_size": BURST, "requests_per_minute": 1}


def _statuses(servers: list[LiveServer], count: int) -> list[int]:
    """``count`` requests, each on a new connection, round-robin over ``servers``."""
    auth = bearer(uuid.uuid4())
    statuses = []
    for server in itertools.islice(itertools.cycle(servers), count):
        answer = requests.get(f"{server.url}/api/tasks", headers={**auth, "Connection": "close"}, timeout=10)
        if answer.status_code == 429:
            assert answer.json()["code"] == "RATE_LIMITED" and int(answer.headers["Retry-After"]) >= 1
        statuses.append(answer.status_code)
    return statuses


def test_two_workers_share_the_limit(e2e_backend: str, start_server: StartServer) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("SQLite serves one process; its buckets are in memory")
    server = start_server(workers=2, rate_limit=LIMITS)
    statuses = _statuses([server], 3 * BURST)
    assert statuses.count(200) == BURST and statuses.count(429) == 2 * BURST, statuses
    assert statuses[:BURST] == [200] * BURST
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert f'hmacfs_rate_limited_total{{limit="address"}} {2 * BURST}.0' in metrics  # summed over workers


def test_two_nodes_share_the_limit(e2e_backend: str, start_server: StartServer) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("SQLite serves one process; its buckets are in memory")
    first = start_server(workers=1, rate_limit=LIMITS)
    second = start_server(workers=1, database_url=first.database_url, rate_limit=LIMITS)
    statuses = _statuses([first, second], 3 * BURST)
    assert statuses[:BURST] == [200] * BURST and statuses[BURST:] == [429] * 2 * BURST, statuses


def test_memory_buckets_on_sqlite(e2e_backend: str, start_server: StartServer) -> None:
    if e2e_backend != "sqlite":
        pytest.skip("the SQLite case")
    server = start_server(rate_limit=LIMITS)
    statuses = _statuses([server], 2 * BURST)
    assert statuses == [200] * BURST + [429] * BURST
