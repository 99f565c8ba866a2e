"""Chunk size: start from the server's recommendation, then follow measured goodput.

A chunk should take about ``target_seconds`` on the link: long enough that the
per-request cost (a few round trips, an fsync) is small against the transfer,
short enough that a cut connection re-sends little and progress stays fresh.
Pure: the caller feeds measurements in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1024 * 1024
_GRAIN = 256 * 1024  # sizes are multiples of this (aligned reads, tidy numbers)


@dataclass
class ChunkSizer:
    """The next chunk size for an upload.

    ``initial`` is the server's recommendation (or the protocol's default). Each
    ``observe(nbytes, seconds)`` of a finished chunk updates an exponentially
    weighted goodput; ``next_size()`` is goodput * ``target_seconds`` clamped to
    [``minimum``, ``maximum``], and never more than doubles or falls below a
    quarter of the current size in one step, so one odd sample does not swing it.
    A failed chunk (``failed()``) halves the size: on a link that cuts, less is lost.
    """

    initial: int
    minimum: int = 256 * 1024
    maximum: int = 64 * MiB
    target_seconds: float = 2.0
    weight: float = 0.5  # of the newest sample
    current: int = field(init=False)
    goodput: float | None = field(init=False, default=None)  # bytes per second

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.maximum:
            raise ValueError("need 0 < minimum <= maximum")
        self.current = self._clamp(self.initial)

    def _clamp(self, size: float) -> int:
        size = max(self.minimum, min(self.maximum, int(size)))
        return max(self.minimum, size - size % _GRAIN) if size >= _GRAIN else size

    def observe(self, nbytes: int, seconds: float) -> None:
        """Record a chunk of ``nbytes`` that took ``seconds`` (request to answer)."""
        if nbytes <= 0 or seconds <= 0:
            return
        sample = nbytes / seconds
        self.goodput = sample if self.goodput is None else (
            self.weight * sample + (1 - self.weight) * self.goodput
        )  # fmt: skip
        wanted = self.goodput * self.target_seconds
        self.current = self._clamp(min(max(wanted, self.current / 4), self.current * 2))

    def restart(self, size: int) -> None:
        """Start over from ``size`` (a fresh recommendation, e.g. after a network change):
        the goodput measured on the old link says nothing about the new one."""
        self.current, self.goodput = self._clamp(size), None

    def failed(self) -> None:
        """A chunk was cut or timed out: send smaller pieces from now on."""
        self.current = self._clamp(self.current // 2)

    def next_size(self) -> int:
        return self.current
