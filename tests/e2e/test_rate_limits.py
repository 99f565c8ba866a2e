"""Rate limits on the real gunicorn+gevent server: the PostgreSQL buckets, and the Redis ones
(the machine's Redis), are shared by the workers of one server and by separate servers (nodes)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.mmap_dict import MmapedDict
from sqlalchemy import text

from hmacfs.db import make_engine
from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import LiveServer
from tests.redis_server import forget, redis_url, unique_prefix

BURST = 10
LIMITS = {"enabled": True, "by_jid": False, "burst_size": BURST, "requests_per_minute": 1}


def _statuses(servers: list[LiveServer], count: int, account: uuid.UUID | None = None) -> list[int]:
    """``count`` requests, each on a new connection, round-robin over ``servers``."""
    auth = bearer(account or uuid.uuid4())
    statuses = []
    for server in itertools.islice(itertools.cycle(servers), count):
        answer = requests.get(f"{server.url}/api/tasks", headers={**auth, "Connection": "close"}, timeout=10)
        if answer.status_code == 429:
            assert answer.json()["code"] == "RATE_LIMITED" and int(answer.headers["Retry-After"]) >= 1
        statuses.append(answer.status_code)
    return statuses


def _answers_per_worker(server: LiveServer) -> dict[int, dict[str, float]]:
    """Per worker pid, how many /api/tasks requests it answered with each status, read from
    the histogram file each worker keeps mapped (prometheus multiprocess mode), via /proc."""
    assert server.process is not None
    pid = server.process.pid
    workers = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    answers: dict[int, dict[str, float]] = {}
    for worker in workers:
        maps = Path(f"/proc/{worker}/maps").read_text().splitlines()
        files = {line.split()[-1] for line in maps if line.endswith(f"histogram_{worker}.db")}
        counts = answers.setdefault(worker, {"200": 0.0, "429": 0.0})
        for name in files:
            for key, value, *_ in MmapedDict.read_all_values_from_file(name):
                _metric, sample, labels, _help = json.loads(key)
                # Each bucket file entry counts the requests of that bucket alone (not cumulative).
                if sample.endswith("_bucket") and labels.get("url_rule") == "/api/tasks":
                    counts[labels["status"]] = counts.get(labels["status"], 0.0) + value
    return answers


def test_two_workers_share_the_limit(e2e_backend: str, start_server: StartServer) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("SQLite serves one process; its buckets are in memory")
    server = start_server(workers=2, rate_limit={**LIMITS, "by_ip": False, "by_jid": True})
    _assert_workers_share(server, lambda account: None)


def test_two_workers_share_the_limit_through_redis(e2e_backend: str, start_server: StartServer) -> None:
    """The same through Redis: its keys hold the tokens, the database's table holds none."""
    if e2e_backend != "postgresql":
        pytest.skip("two workers need PostgreSQL")
    prefix, client = unique_prefix(), redis.Redis.from_url(redis_url())
    redis_limits = {"storage": "redis", "storage_uri": redis_url(), "key_prefix": prefix}
    server = start_server(workers=2, rate_limit={**LIMITS, **redis_limits, "by_ip": False, "by_jid": True})

    def in_redis(account: uuid.UUID) -> None:
        assert float(client.hget(f"{prefix}account:{account}", "tokens") or -1) < 1

    try:
        _assert_workers_share(server, in_redis)
        engine = make_engine(server.database_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM rate_limit_buckets")).scalar() == 0
        engine.dispose()
    finally:
        forget(prefix)


def _assert_workers_share(server: LiveServer, check_account: Callable[[uuid.UUID], None]) -> None:
    """Each attempt is a fresh account's bucket of 10 hit 30 times on new connections; an
    attempt counts once both workers answered some of its requests (gunicorn may hand one
    worker every connection of a serial client). ``check_account`` looks at the bucket."""
    attempts = 0
    for _ in range(5):
        attempts += 1
        before, account = _answers_per_worker(server), uuid.uuid4()
        statuses = _statuses([server], 3 * BURST, account)
        assert statuses == [200] * BURST + [429] * 2 * BURST, statuses
        check_account(account)
        after = _answers_per_worker(server)
        delta = {w: {code: after[w][code] - before[w][code] for code in ("200", "429")} for w in after}
        if len(delta) == 2 and all(sum(counts.values()) for counts in delta.values()):
            break
    else:
        pytest.fail(f"one worker answered every request of 5 attempts: {after}")
    assert sum(counts["200"] for counts in delta.values()) == BURST, delta
    # A worker refused requests although it had granted fewer than the burst itself:
    # it saw the tokens the other worker took.
    assert any(counts["429"] > 0 and counts["200"] < BURST for counts in delta.values()), delta
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert f'hmacfs_rate_limited_total{{limit="account"}} {2 * BURST * attempts}.0' in metrics  # summed


def test_two_nodes_share_the_limit(e2e_backend: str, start_server: StartServer) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("SQLite serves one process; its buckets are in memory")
    first = start_server(workers=1, rate_limit=LIMITS)
    second = start_server(workers=1, database_url=first.database_url, rate_limit=LIMITS)
    statuses = _statuses([first, second], 3 * BURST)
    assert statuses[:BURST] == [200] * BURST and statuses[BURST:] == [429] * 2 * BURST, statuses


def test_two_sqlite_nodes_share_the_limit_through_redis(e2e_backend: str, start_server: StartServer) -> None:
    """`make run`'s SQLite needs no Redis, but can use one: then its nodes share the limits."""
    if e2e_backend != "sqlite":
        pytest.skip("the SQLite case")
    prefix = unique_prefix()
    limits = {**LIMITS, "storage": "redis", "storage_uri": redis_url(), "key_prefix": prefix}
    try:
        nodes = [start_server(rate_limit=limits), start_server(rate_limit=limits)]
        statuses = _statuses(nodes, 3 * BURST)
        assert statuses == [200] * BURST + [429] * 2 * BURST, statuses
    finally:
        forget(prefix)


def test_memory_buckets_on_sqlite(e2e_backend: str, start_server: StartServer) -> None:
    if e2e_backend != "sqlite":
        pytest.skip("the SQLite case")
    server = start_server(rate_limit=LIMITS)
    statuses = _statuses([server], 2 * BURST)
    assert statuses == [200] * BURST + [429] * BURST
