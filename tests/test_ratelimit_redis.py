"""Redis token buckets (``[rate_limit] storage = "redis"``) against the machine's real Redis:
the same arithmetic as the other backends, exact across processes, keys that expire once
full, a quick failure when Redis is down, and the app letting requests pass then."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.config import ConfigError, load_settings
from hmacfs.db import Database
from hmacfs.ratelimit import REDIS_PAUSE, BucketsUnavailable, RedisBuckets, Take
from tests.conftest import bearer, make_settings
from tests.pg import free_port
from tests.redis_server import forget, redis_url, unique_prefix

SECRETS = {"HMACFS_SECURITY__SECRET": "s", "HMACFS_SECURITY__JWT_SECRET": "j"}
DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def prefix() -> Iterator[str]:
    redis_url()
    name = unique_prefix()
    yield name
    forget(name)


def _buckets(prefix: str) -> RedisBuckets:
    return RedisBuckets.from_url(redis_url(), prefix=prefix)


def test_grants_the_burst_then_refuses(prefix: str) -> None:
    buckets = _buckets(prefix)
    slow, other = Take("k", rate=1 / 3600, burst=3), Take("other", rate=1, burst=1)
    assert [buckets.take([slow]) for _ in range(3)] == [[], [], []]
    refused = buckets.take([slow, other])
    assert [item.key for item in refused] == ["k"] and refused[0].retry_after == 3600
    look = Take("fresh", rate=1 / 60, burst=1, cost=0)  # a look takes nothing ...
    assert buckets.take([look]) == [] and buckets.take([look]) == []
    assert buckets.take([Take("fresh", 1 / 60, 1)]) == []  # ... so the one token is still there
    assert buckets.take([look])[0].retry_after == 60


def test_buckets_refill(prefix: str) -> None:
    buckets, take = _buckets(prefix), Take("fast", rate=20, burst=1)
    assert buckets.take([take]) == []
    assert buckets.take([take])[0].retry_after == 1
    time.sleep(0.08)  # 1.6 tokens' worth, capped at the burst of 1
    assert buckets.take([take]) == [] and len(buckets.take([take])) == 1


def test_keys_expire_once_full_again(prefix: str) -> None:
    buckets = _buckets(prefix)
    buckets.take([Take("k", rate=2, burst=10)])  # 9 left: full again in 0.5 s
    ttl = redis.Redis.from_url(redis_url()).pttl(f"{prefix}k")
    assert 1000 < ttl <= 1500, ttl  # the refill time plus a second's margin


def _hit(url: str, prefix: str, rounds: int, results: multiprocessing.Queue[int]) -> None:
    buckets = RedisBuckets.from_url(url, prefix=prefix)
    take = Take("shared", rate=1 / 3600, burst=10)
    results.put(sum(not buckets.take([take]) for _ in range(rounds)))


def test_exact_across_processes(prefix: str) -> None:
    """4 processes take 10 times each from one bucket of 10: exactly 10 granted in all."""
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[int] = context.Queue()
    processes = [context.Process(target=_hit, args=(redis_url(), prefix, 10, results)) for _ in range(4)]
    for process in processes:
        process.start()
    granted = [results.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert sum(granted) == 10, granted


def test_redis_down_fails_fast_then_pauses() -> None:
    buckets = RedisBuckets.from_url(DOWN, prefix="x:")
    with pytest.raises(BucketsUnavailable, match="ConnectionError"):
        buckets.take([Take("k", 1, 1)])
    started = time.monotonic()
    with pytest.raises(BucketsUnavailable, match="paused"):
        buckets.take([Take("k", 1, 1)])
    assert time.monotonic() - started < 0.05  # no connection attempted while paused


def _client(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path, url: str, prefix: str
) -> FlaskClient:
    settings = make_settings(
        tmp_path / "s",
        engine.url.render_as_string(hide_password=False),
        rate_limit={"enabled": True, "storage": "redis", "storage_uri": url, "key_prefix": prefix,
                    "by_jid": False, "burst_size": 3, "requests_per_minute": 1},
    )  # fmt: skip
    return create_app(settings, db=Database(engine=engine, sessions=sessions)).test_client()


def test_app_limits_through_redis(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path, prefix: str
) -> None:
    """On both databases: SQLite with Redis is shared too (several nodes, one Redis)."""
    first = _client(engine, sessions, tmp_path, redis_url(), prefix)
    second = _client(engine, sessions, tmp_path, redis_url(), prefix)  # another process, in effect
    auth = bearer(uuid.uuid4())
    statuses = [client.get("/api/tasks", headers=auth).status_code for client in (first, second) * 2]
    assert statuses == [200, 200, 200, 429]
    refused = second.get("/api/tasks", headers=auth)
    assert (refused.json["code"], refused.json["details"]["limit"]) == ("RATE_LIMITED", "address")
    assert 'hmacfs_rate_limited_total{limit="address"} 2.0' in second.get("/metrics").text
    assert redis.Redis.from_url(redis_url()).exists(f"{prefix}address:127.0.0.1")


def test_app_passes_requests_while_redis_is_down(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(engine, sessions, tmp_path, DOWN, "x:")
    auth = bearer(uuid.uuid4())
    with caplog.at_level(logging.WARNING, logger="hmacfs.web.ratelimit"):
        statuses = [client.get("/api/tasks", headers=auth).status_code for _ in range(6)]
    assert statuses == [200] * 6  # the burst is 3: limits are off, not failing requests
    assert "hmacfs_rate_limit_unchecked_total 6.0" in client.get("/metrics").text
    warnings = [r.getMessage() for r in caplog.records if r.name == "hmacfs.web.ratelimit"]
    assert warnings == ["rate limits unchecked: the Redis buckets are unreachable (ConnectionError)"]


def test_redis_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "hmacfs.toml"
    for text, problem in (
        ('storage = "redis"\n', "rate_limit.storage_uri: set it exactly when storage = 'redis'"),
        (
            'storage_uri = "redis://h:6379/0"\n',
            "rate_limit.storage_uri: set it exactly when storage = 'redis'",
        ),
        ('storage = "redis"\nstorage_uri = "http://h/"\n', "rate_limit.storage_uri: must be a redis://"),
        ('storage = "memcached"\n', "rate_limit.storage: Input should be"),
        ('redis_url = "redis://h"\n', "rate_limit.redis_url: unknown key"),
    ):
        config.write_text(f"[rate_limit]\n{text}")
        with pytest.raises(ConfigError) as caught:
            load_settings(config, SECRETS)
        assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(problem), (
            caught.value.problems
        )
    config.write_text('[rate_limit]\nstorage = "redis"\nstorage_uri = "rediss://:pw@h:6380/2"\n')
    settings = load_settings(config, SECRETS).rate_limit
    assert (settings.storage_uri, settings.key_prefix) == ("rediss://:pw@h:6380/2", "hmacfs:ratelimit:")


def test_buckets_recover_when_redis_returns(tmp_path: Path) -> None:
    """A Redis of the test's own, stopped and started again on its port: after the pause,
    the buckets use it again without a restart of anything."""
    port = free_port()
    buckets, take = RedisBuckets.from_url(f"redis://127.0.0.1:{port}/0", prefix="k:"), Take("k", 1, 5)
    with _own_redis(port, tmp_path):
        assert buckets.take([take]) == []
    with pytest.raises(BucketsUnavailable):
        buckets.take([take])
    with _own_redis(port, tmp_path):
        time.sleep(REDIS_PAUSE)
        assert buckets.take([take]) == []


@contextlib.contextmanager
def _own_redis(port: int, tmp_path: Path) -> Iterator[None]:
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required under CI=true")
        pytest.skip("redis-server not installed")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
