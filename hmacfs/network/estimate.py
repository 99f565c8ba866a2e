"""Link estimates from TCP samples and body outcomes, and their moving averages. Pure.

A body's estimate: throughput is the application's goodput over the body
(bytes ÷ seconds from its first to its last read); RTT is the kernel's
receiver estimate (``rcv_rtt``), else its sender estimate (``rtt``); loss is
the share of received segments that arrived out of order (the client resent
a lost one) plus our own retransmissions, over the body. A profile keeps
exponentially weighted moving averages of these, and reliability as
completed ÷ attempted bodies over a decaying window (about the last
``1 / (1 - RELIABILITY_DECAY)`` bodies).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from hmacfs.network.tcp_info import TcpSample

SMOOTHING = 0.3  # weight of the newest body in the moving averages
RELIABILITY_DECAY = 0.9  # older bodies fade: the window is about ten bodies


class Outcome(enum.StrEnum):
    """How a request body ended."""

    COMPLETE = "complete"
    SHORT = "short"  # the client went away (reset, FIN) before Content-Length
    TIMED_OUT = "timed_out"  # silent for timeouts.body_idle


class NetworkClass(enum.StrEnum):
    ETHERNET = "ethernet"
    WIFI = "wifi"
    LTE = "lte"
    CELLULAR = "cellular"
    VPN = "vpn"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BodyMeasurement:
    """What one request body showed: its bytes, seconds from first to last byte,
    outcome and the kernel samples taken along it (oldest first)."""

    received: int
    seconds: float
    outcome: Outcome
    samples: Sequence[TcpSample] = ()


@dataclass(frozen=True)
class LinkEstimate:
    """A link as measured: bytes/s, round trip (ms), loss ratio 0..1, reliability 0..1.

    ``throughput`` or ``rtt_ms`` is None when nothing measured it.
    """

    throughput: float | None
    rtt_ms: float | None
    loss: float
    reliability: float
    bodies: float = 0.0  # (decayed) bodies behind the estimate; 0 = none


UNMEASURED = LinkEstimate(throughput=None, rtt_ms=None, loss=0.0, reliability=1.0)

_MIN_BYTES_FOR_RATE = 64 * 1024  # smaller bodies say more about latency than rate
_MIN_SECONDS_FOR_RATE = 0.0005  # a 512 KiB chunk on loopback arrives in about a millisecond


def goodput(received: int, seconds: float) -> float | None:
    """Bytes per second of a body, or None when it is too small or quick to tell."""
    if received < _MIN_BYTES_FOR_RATE or seconds < _MIN_SECONDS_FOR_RATE:
        return None
    return received / seconds


def rtt_ms(samples: Sequence[TcpSample]) -> float | None:
    """The latest receiver RTT estimate of ``samples`` in ms (sender's if none)."""
    for sample in reversed(samples):
        if sample.rcv_rtt_us:
            return sample.rcv_rtt_us / 1000.0
    for sample in reversed(samples):
        if sample.rtt_us:
            return sample.rtt_us / 1000.0
    return None


def loss_ratio(samples: Sequence[TcpSample]) -> float:
    """Out-of-order arrivals plus our retransmissions per segment, between the first
    and last of ``samples`` (0 with fewer than two samples or no segments)."""
    if len(samples) < 2:
        return 0.0
    first, last = samples[0], samples[-1]
    segments = (last.segs_in - first.segs_in) + (last.segs_out - first.segs_out)
    if segments <= 0:
        return 0.0
    lost = max(0, last.rcv_ooopack - first.rcv_ooopack) + max(0, last.total_retrans - first.total_retrans)
    return min(1.0, lost / segments)


def estimate_body(body: BodyMeasurement) -> LinkEstimate:
    """The link as one body showed it (reliability 1 or 0 by its outcome)."""
    return LinkEstimate(
        throughput=goodput(body.received, body.seconds),
        rtt_ms=rtt_ms(body.samples),
        loss=loss_ratio(body.samples),
        reliability=1.0 if body.outcome is Outcome.COMPLETE else 0.0,
        bodies=1.0,
    )


def _average(old: float | None, new: float | None, weight: float) -> float | None:
    if new is None:
        return old
    if old is None:
        return new
    return old + weight * (new - old)


def combine(previous: LinkEstimate, body: LinkEstimate) -> LinkEstimate:
    """``previous`` updated with one more body's estimate.

    Throughput, RTT and loss are moving averages (weight ``SMOOTHING``);
    reliability is decayed completed ÷ decayed attempted. A failed body's
    goodput only counts when it is lower than the average: a cut connection
    says the link is at most that good, not that it is better.
    """
    attempted = previous.bodies * RELIABILITY_DECAY + 1.0
    completed = previous.reliability * previous.bodies * RELIABILITY_DECAY + body.reliability
    rate = body.throughput
    if body.reliability < 1.0 and rate is not None and previous.throughput is not None:
        rate = min(rate, previous.throughput)
    return LinkEstimate(
        throughput=_average(previous.throughput, rate, SMOOTHING),
        rtt_ms=_average(previous.rtt_ms, body.rtt_ms, SMOOTHING),
        loss=_average(previous.loss, body.loss, SMOOTHING) or 0.0,
        reliability=completed / attempted,
        bodies=attempted,
    )
