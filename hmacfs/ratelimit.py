"""Token buckets shared by every worker and node (docs/rate-limits.md).

A bucket holds up to ``burst`` tokens and gains ``rate`` per second; a take of
``cost`` tokens is granted when at least ``max(cost, 1)`` are there (a take
of 0 is a look: "would one more be granted?"). Two backends, chosen once in
``build_buckets``:

- ``DatabaseBuckets`` (PostgreSQL): one ``INSERT .. ON CONFLICT DO UPDATE`` per
  request takes from all its buckets at once, under the database clock, so every
  worker and node sees the same tokens. Keys are taken in sorted order, so two
  requests never wait on each other's rows in opposite orders.
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

from sqlalchemy import Engine, text

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


class Buckets(Protocol):
    def take(self, takes: Sequence[Take]) -> list[Refusal]:
        """Apply every take (each bucket independently); the refused ones."""
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
