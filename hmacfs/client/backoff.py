"""Retry timing: exponential backoff with full jitter, and ``Retry-After``.

Pure functions: the random source and the clock are arguments, so the rules
are unit-tested without sleeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class Backoff:
    """Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): the n-th retry
    waits a uniform random time in [0, min(cap, base * 2**n)], so clients that failed
    together do not come back together. ``retries`` bounds the attempts after the first."""

    base: float = 0.5  # seconds
    cap: float = 30.0  # seconds
    retries: int = 10

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry number ``attempt`` (0 = the first retry)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        return min(self.cap, self.base * float(2 ** min(attempt, 62)))

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry ``attempt``: full jitter, but never less than the
        server's ``Retry-After`` (which may exceed ``cap``: the server knows best)."""
        jitter = (rng or random).uniform(0.0, self.ceiling(attempt))
        return jitter if retry_after is None else max(retry_after, jitter)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110
    10.2.3). None when absent or malformed; a date in the past gives 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
