"""The machine's Redis (127.0.0.1:6379) for the Redis rate-limit tests: each test gets its own
key prefix, so tests never share a bucket. Without Redis the tests skip, except under CI=true,
where Redis is part of the machine and a missing one is a failure."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

REDIS_URL = os.environ.get("HMACFS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_url() -> str:
    """``REDIS_URL`` once it answers PING; skips (fails under CI=true) when it does not."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is required under CI=true: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    return REDIS_URL


def unique_prefix() -> str:
    return f"hmacfs-test:{uuid.uuid4().hex}:"


def forget(prefix: str) -> None:
    """Delete every key under ``prefix`` (the buckets expire anyway; this keeps Redis tidy)."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
