"""Fixed or adaptive: which arm an upload is on, and the automatic fallback to fixed.

The arm of an upload is a pure function of its id, so every request of one
upload (its create and each chunk, on any worker or node) lands on the same
arm. The fallback watches the outcome of bodies per arm in this process over
a sliding window; when the adaptive arm's error rate exceeds ``ratio`` times
the fixed arm's it sends every upload to fixed until ``cooldown`` has passed.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections import deque
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Arm(enum.StrEnum):
    FIXED = "fixed"
    ADAPTIVE = "adaptive"


def arm_for(upload_key: str, adaptive_percent: float) -> Arm:
    """The arm of the upload ``upload_key``: adaptive for ``adaptive_percent`` % of keys,
    spread evenly by SHA-256, the same answer on every process."""
    bucket = int.from_bytes(hashlib.sha256(upload_key.encode()).digest()[:4], "big") % 10000
    return Arm.ADAPTIVE if bucket < adaptive_percent * 100 else Arm.FIXED


@dataclass(frozen=True)
class FallbackRule:
    window: float  # seconds of outcomes compared
    ratio: float  # adaptive errors / fixed errors that trips it (the seed: 1.1)
    min_bodies: int  # per arm, before the rates are compared
    cooldown: float  # seconds on fixed before adaptive is tried again


class Fallback:
    """Error rates per arm over a window, and whether adaptive is currently allowed.

    Not thread-safe across native threads; gevent greenlets of one worker are fine.
    """

    def __init__(self, rule: FallbackRule) -> None:
        self.rule = rule
        self._outcomes: dict[Arm, deque[tuple[float, bool]]] = {arm: deque() for arm in Arm}
        self._fixed_until: float | None = None
        self.trips = 0

    def record(self, arm: Arm, ok: bool, now: float) -> bool:
        """Count one body of ``arm``; True when this outcome tripped the fallback."""
        self._outcomes[arm].append((now, ok))
        self._forget(now)
        if arm is Arm.ADAPTIVE and not ok and self._should_trip():
            self._fixed_until = now + self.rule.cooldown
            self.trips += 1
            for outcomes in self._outcomes.values():
                outcomes.clear()
            log.warning(
                "Adaptive arm failing more than %.2fx the fixed arm: every upload on fixed for %.0f s",
                self.rule.ratio,
                self.rule.cooldown,
            )
            return True
        return False

    def adaptive_allowed(self, now: float) -> bool:
        """False while a fallback's cooldown runs; re-armed (and logged) after it."""
        if self._fixed_until is None:
            return True
        if now < self._fixed_until:
            return False
        self._fixed_until = None
        log.info("Adaptive arm re-armed after the fallback cooldown")
        return True

    def error_rate(self, arm: Arm) -> float | None:
        outcomes = self._outcomes[arm]
        if len(outcomes) < self.rule.min_bodies:
            return None
        return sum(1 for _, ok in outcomes if not ok) / len(outcomes)

    def _should_trip(self) -> bool:
        adaptive, fixed = self.error_rate(Arm.ADAPTIVE), self.error_rate(Arm.FIXED)
        if adaptive is None or fixed is None:
            return False
        return adaptive > fixed * self.rule.ratio

    def _forget(self, now: float) -> None:
        horizon = now - self.rule.window
        for outcomes in self._outcomes.values():
            while outcomes and outcomes[0][0] < horizon:
                outcomes.popleft()
