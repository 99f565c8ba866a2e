"""A request body read through a meter: bytes, timing, TCP_INFO samples and outcome; on the
adaptive arm also a read size that follows the connection's measured rate.

The copy in ``hmacfs.storage.copying`` sees a ``FillingReader`` (the fixed arm:
it reads in its own block size) or an ``AdaptiveReader`` (``AdaptiveBody``:
it asks ``block_size()`` before each block).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hmacfs.network.estimate import BodyMeasurement, Outcome
from hmacfs.network.sizing import TRICKLE_BUFFER, buffer_for_rate
from hmacfs.network.tcp_info import TcpSample, read_tcp_info

SAMPLE_EVERY = 4 * 1024 * 1024  # bytes between TCP_INFO samples inside a body
_RATE_AFTER = 64 * 1024  # the rate is trusted once this much arrived


class SourceBody(Protocol):
    """What is measured: ``hmacfs.web.bodies.SocketBody``."""

    failure: Outcome | None

    def readinto(self, view: memoryview) -> int: ...

    def wait_readable(self) -> bool: ...


@dataclass(frozen=True)
class BodyPlan:
    """How to read one body: the arm's sizes (bytes) and whether the size adapts."""

    expected: int | None  # Content-Length
    initial: int  # the first read size (the profile's recommendation)
    minimum: int
    maximum: int
    sample_kernel: bool  # False behind a proxy: the kernel would describe the proxy


class MeasuredBody:
    """Reads ``source`` and keeps what the body showed (``measurement()``)."""

    def __init__(
        self,
        source: SourceBody,
        sock: socket.socket | None,
        plan: BodyPlan,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.sock, self.plan, self.clock = source, sock, plan, clock
        self.received = 0
        self.started: float | None = None
        self.last = 0.0
        self.samples: list[TcpSample] = []
        self._next_sample = SAMPLE_EVERY

    def readinto(self, view: memoryview) -> int:
        if self.started is None:
            self.started = self.last = self.clock()
            self._sample()
        got = self.source.readinto(view)
        if got:
            self.received += got
            self.last = self.clock()
            if self.received >= self._next_sample:
                self._next_sample += SAMPLE_EVERY
                self._sample()
        return got

    def __call__(self, size: int) -> bytes:
        buffer = memoryview(bytearray(size))
        return bytes(buffer[: self.readinto(buffer)])  # one copy: the view's slice is not one

    def rate(self) -> float | None:
        """Bytes per second so far, once enough arrived to tell."""
        if self.started is None or self.received < _RATE_AFTER or self.last <= self.started:
            return None
        return self.received / (self.last - self.started)

    def measurement(self) -> BodyMeasurement | None:
        """The body as measured; None when nothing was read (the request was refused first)."""
        if self.started is None:
            return None
        self._sample()
        if self.plan.expected is not None and self.received >= self.plan.expected:
            outcome = Outcome.COMPLETE
        else:
            outcome = self.source.failure or Outcome.SHORT
        seconds = max(0.0, self.last - self.started)
        return BodyMeasurement(self.received, seconds, outcome, tuple(self.samples))

    def _sample(self) -> None:
        if self.sock is not None and self.plan.sample_kernel:
            sample = read_tcp_info(self.sock, self.clock())
            if sample is not None:
                self.samples.append(sample)


class AdaptiveBody(MeasuredBody):
    """A MeasuredBody whose read size follows its rate (``buffer_for_rate``), re-chosen
    before every block, so it grows on a fast link and shrinks on a slowing one."""

    def __init__(
        self,
        source: SourceBody,
        sock: socket.socket | None,
        plan: BodyPlan,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(source, sock, plan, clock)
        self.size = plan.initial
        self.changes = 0

    def block_size(self) -> int:
        """The next block: by the body's own rate once it has one; until then at most
        ``TRICKLE_BUFFER`` (read as it comes, no buffer held while silent), whatever the
        profile said: a client that was fast before may be trickling now, and a thousand
        of them must not each take a full pair on their first byte."""
        plan, rate = self.plan, self.rate()
        if rate is None:
            size = max(plan.minimum, min(plan.initial, TRICKLE_BUFFER))
        else:
            size = buffer_for_rate(rate, plan.minimum, plan.maximum, plan.initial)
        if size != self.size:
            self.size, self.changes = size, self.changes + 1
        return size

    def wait_readable(self) -> bool:
        if self.started is None:
            self.started = self.last = self.clock()
            self._sample()
        return self.source.wait_readable()
