"""Token buckets shared by every worker and node (docs/rate-limits.md).

A bucket holds up to ``burst`` tokens and gains ``rate`` per second; a take of
``cost`` tokens is granted when at least ``max(cost, 1)`` are there (a take
of 0 is a look: "would one more be granted?"). Three backends, chosen once in
``build_buckets``:

- ``DatabaseBuckets`` (PostgreSQL): one ``INSERT .. ON CONFLICT DO UPDATE`` per
  request takes from all its buckets at once, under the database clock, so every
  worker and node sees the same tokens. Keys are taken in sorted order, so two
  requests never wait on each other's rows in opposite orders.
- ``RedisBuckets`` (``storage = "redis"``): one Lua script per request takes from
  all its buckets at once; Redis runs a script alone, under its own clock.
- ``MemoryBuckets``: one process (SQLite, which serves one process anyway).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine, text

from hmacfs.config import RateLimitSettings
from hmacfs.db import Database

# Idle rows are full buckets again long before this; deleting them keeps the table small.
IDLE_ROW_AGE = 3600.0
_PRUNE_ODDS = 1000
_MEMORY_KEYS = 100_000


@dataclass(frozen=True)
class Take:
    """Ask ``key``'s bucket (``burst`` >= 1 tokens, ``rate`` per second) for ``cost`` <= 1 tokens;
    a bucket seen for the first time is full."""

    key: str
    rate: float
    burst: float
    cost: float = 1.0


@dataclass(frozen=True)
class Refusal:
    """A take that was not granted; ``retry_after`` whole seconds until it would be."""

    key: str
    retry_after: int


class BucketsUnavailable(Exception):
    """The shared buckets could not be asked (a store other than the database is down);
    the caller decides what the request gets."""


class Buckets(Protocol):
    def take(self, takes: Sequence[Take]) -> list[Refusal]:
        """Apply every take (each bucket independently); the refused ones.

        Raises BucketsUnavailable when a Redis store cannot be reached, and the
        database's errors (SQLAlchemyError) for database buckets.
        """
        ...


def refill(tokens: float, elapsed: float, take: Take) -> float:
    """Tokens in the bucket after ``elapsed`` seconds (never above ``burst``)."""
    return min(take.burst, tokens + max(0.0, elapsed) * take.rate)


def grant(available: float, take: Take) -> tuple[bool, float]:
    """Whether ``take`` is granted from ``available`` tokens, and the tokens left."""
    if available >= max(take.cost, 1.0):
        return True, available - take.cost
    return False, available


def retry_after(available: float, take: Take) -> int:
    """Whole seconds until ``take`` would be granted (at least 1)."""
    missing = max(take.cost, 1.0) - available
    return max(1, math.ceil(missing / take.rate)) if take.rate > 0 else 3600


class MemoryBuckets:
    """Buckets in this process only."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}  # key: (tokens, monotonic stamp)
        self._lock = threading.Lock()

    def take(self, takes: Sequence[Take]) -> list[Refusal]:
        refused = []
        with self._lock:
            now = time.monotonic()
            for item in takes:
                tokens, stamp = self._state.get(item.key, (item.burst, now))
                available = refill(tokens, now - stamp, item)
                granted, left = grant(available, item)
                self._state[item.key] = (left, now)
                if not granted:
                    refused.append(Refusal(item.key, retry_after(available, item)))
            if len(self._state) > _MEMORY_KEYS:
                self._prune(now)
        return refused

    def _prune(self, now: float) -> None:
        for key in [key for key, (_, stamp) in self._state.items() if now - stamp > IDLE_ROW_AGE]:
            del self._state[key]


# Each row: the bucket refilled to now (``avail``), then granted or not (see ``grant``).
_AVAILABLE = (
    "LEAST(EXCLUDED.burst, b.tokens + GREATEST(0, EXCLUDED.updated_at - b.updated_at) * EXCLUDED.rate)"
)
_TAKE = text(
    f"""
    INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at, rate, burst, cost, allowed)
    SELECT p.key, p.burst - p.cost, now_s, p.rate, p.burst, p.cost, TRUE
    FROM unnest(CAST(:keys AS text[]), CAST(:rates AS float8[]), CAST(:bursts AS float8[]),
                CAST(:costs AS float8[])) AS p(key, rate, burst, cost),
         (SELECT extract(epoch FROM clock_timestamp())::float8 AS now_s) AS t
    ORDER BY p.key
    ON CONFLICT (key) DO UPDATE SET
        allowed = {_AVAILABLE} >= GREATEST(EXCLUDED.cost, 1),
        tokens = CASE WHEN {_AVAILABLE} >= GREATEST(EXCLUDED.cost, 1)
                      THEN {_AVAILABLE} - EXCLUDED.cost ELSE {_AVAILABLE} END,
        updated_at = EXCLUDED.updated_at, rate = EXCLUDED.rate, burst = EXCLUDED.burst,
        cost = EXCLUDED.cost
    RETURNING key, allowed, tokens
    """  # noqa: S608 - only the constant _AVAILABLE is interpolated
)
_PRUNE = text(
    "DELETE FROM rate_limit_buckets WHERE updated_at < extract(epoch FROM clock_timestamp()) - :age"
)


class DatabaseBuckets:
    """Buckets in PostgreSQL's ``rate_limit_buckets`` (migration 0006), on their own short
    transactions: a limit check never holds a row lock for the length of a request."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def take(self, takes: Sequence[Take]) -> list[Refusal]:
        by_key = {item.key: item for item in takes}
        params = {
            "keys": list(by_key),
            "rates": [item.rate for item in by_key.values()],
            "bursts": [item.burst for item in by_key.values()],
            "costs": [item.cost for item in by_key.values()],
        }
        with self._engine.begin() as connection:
            rows = connection.execute(_TAKE, params).all()
            if random.randrange(_PRUNE_ODDS) == 0:  # noqa: S311 - spreading housekeeping, not security
                connection.execute(_PRUNE, {"age": IDLE_ROW_AGE})
        return [
            Refusal(key, retry_after(tokens, by_key[key])) for key, allowed, tokens in rows if not allowed
        ]


# Refill, then grant or not, exactly as ``refill`` and ``grant``; per key the arguments are
# rate, burst, cost, and the answer is {granted 0/1, tokens available before the take}. A
# key lives until its bucket would be full again (then "no key" means the same: full).
_REDIS_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local answers = {}
for i, key in ipairs(KEYS) do
    local rate, burst, cost = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
    local state = redis.call('HMGET', key, 'tokens', 'at')
    local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
    local available = math.min(burst, tokens + math.max(0, now - at) * rate)
    local granted, left = 0, available
    if available >= math.max(cost, 1) then
        granted, left = 1, available - cost
    end
    redis.call('HSET', key, 'tokens', string.format('%.17g', left), 'at', string.format('%.17g', now))
    redis.call('PEXPIRE', key, math.ceil((burst - left) / rate * 1000) + 1000)
    answers[i] = {granted, string.format('%.17g', available)}
end
return answers
"""
# Redis on a LAN answers in well under a millisecond; a stuck one costs a request at most this.
REDIS_TIMEOUT = 0.5
# After a failure, requests pass without asking for this long: a Redis that is down costs
# one request per process a timeout, not every request.
REDIS_PAUSE = 1.0


class RedisBuckets:
    """Buckets in Redis, one hash per key (``tokens``, ``at``) under ``prefix``; shared by
    every process that uses the same server, database and prefix. Not for Redis Cluster:
    a request's keys go to one script, which Cluster allows only within one hash slot."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._prefix = prefix
        self._script = client.register_script(_REDIS_TAKE)
        self._paused_until = 0.0

    @classmethod
    def from_url(cls, url: str, *, prefix: str) -> RedisBuckets:
        """Buckets on the server at ``url`` (redis://, rediss:// or unix://); connects lazily."""
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # the pause above is the retry policy
            health_check_interval=30,
        )
        return cls(client, prefix)

    def take(self, takes: Sequence[Take]) -> list[Refusal]:
        if time.monotonic() < self._paused_until:
            raise BucketsUnavailable("paused after a Redis error")
        by_key = {item.key: item for item in takes}
        args = [value for item in by_key.values() for value in (item.rate, item.burst, item.cost)]
        try:
            answers = self._script(keys=[self._prefix + key for key in by_key], args=args)
        except redis.RedisError as exc:
            self._paused_until = time.monotonic() + REDIS_PAUSE
            raise BucketsUnavailable(type(exc).__name__) from exc
        return [
            Refusal(key, retry_after(float(available), by_key[key]))
            for key, (granted, available) in zip(by_key, answers, strict=True)
            if not granted
        ]


def build_buckets(settings: RateLimitSettings, db: Database) -> Buckets:
    """The buckets ``settings.storage`` names: ``auto`` is the database on PostgreSQL and
    memory on SQLite (config.py refuses ``database`` on SQLite)."""
    if settings.storage == "redis":
        return RedisBuckets.from_url(settings.storage_uri, prefix=settings.key_prefix)
    if settings.storage == "database" or (settings.storage == "auto" and db.is_postgresql):
        return DatabaseBuckets(db.engine)
    return MemoryBuckets()
