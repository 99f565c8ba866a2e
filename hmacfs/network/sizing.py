"""Chunk and read-buffer sizes from a link estimate. Pure; docs/adaptive.md explains the rules."""

from __future__ import annotations

from dataclasses import dataclass

from hmacfs.network.estimate import LinkEstimate

KIB = 1024
MIB = 1024 * KIB
CHUNK_GRANULARITY = 64 * KIB  # recommended chunk sizes are multiples of this
BUFFER_SECONDS = 0.05  # a read buffer holds about this much of the link's rate
TRICKLE_BUFFER = 64 * KIB  # at or below: no buffer is held while the client is silent


def seed_chunk_size(file_size: int, network_speed: float, latency_ms: float, reliability: float) -> int:
    """The dual-stack seed's ``calculateOptimalChunkSize``, as written there (bytes, bytes/s,
    ms): up to 10 MiB on fast low-latency links, up to 512 KiB on unreliable or distant
    ones, else up to 2 MiB, and a fixed fraction of the file."""
    if network_speed > 100 * MIB and latency_ms < 50:
        return min(file_size // 10, 10 * MIB)
    if reliability < 0.8 or latency_ms > 200:
        return min(file_size // 50, 512 * KIB)
    return min(file_size // 20, 2 * MIB)


@dataclass(frozen=True)
class ChunkRule:
    """What the chunk rule needs besides the estimate (bytes and seconds)."""

    default: int  # uploads.chunk_size: the answer when nothing is known
    minimum: int
    maximum: int
    target_seconds: float  # one chunk should take about this long on the link
    class_limit: int | None = None  # [network_interfaces] <class>.chunk_size, an upper bound


def recommend_chunk_size(estimate: LinkEstimate, rule: ChunkRule, file_size: int | None = None) -> int:
    """The chunk size for a client whose link is ``estimate``, within rule.minimum..maximum.

    - Throughput measured: the bytes the link moves in ``target_seconds``, scaled down
      by reliability to the fourth (a chunk cut half-way is sent again, and a shorter
      chunk is cut less often: on a link cut every 10 s this settles near 2.5 s
      chunks, where 8 s ones would lose half their bytes) and by loss (a lossy
      link's rate drops in bursts).
    - Only latency or reliability known: the seed's classes, with the file (or ten
      maximum chunks) as its size.
    - Nothing known: ``rule.default``.
    """
    if estimate.throughput is not None:
        seconds = rule.target_seconds * estimate.reliability**4 * (1.0 - min(0.5, estimate.loss * 10.0))
        wanted = int(estimate.throughput * seconds)
    elif estimate.rtt_ms is not None or estimate.reliability < 1.0:
        size = file_size if file_size else 10 * rule.maximum
        wanted = seed_chunk_size(size, 0.0, estimate.rtt_ms or 0.0, estimate.reliability)
    else:
        wanted = rule.default
    if rule.class_limit is not None:
        wanted = min(wanted, rule.class_limit)
    return _clamp_chunk(wanted, rule.minimum, rule.maximum)


def _clamp_chunk(wanted: int, minimum: int, maximum: int) -> int:
    rounded = wanted - wanted % CHUNK_GRANULARITY
    return max(minimum, min(maximum, rounded))


def buffer_for_rate(rate: float | None, minimum: int, maximum: int, initial: int) -> int:
    """The read size for a connection moving ``rate`` bytes/s: the largest power of two
    not above ``BUFFER_SECONDS`` of it, within minimum..maximum; ``initial`` (clamped)
    while the rate is unknown."""
    if rate is None:
        return max(minimum, min(maximum, initial))
    wanted = int(rate * BUFFER_SECONDS)
    size = minimum
    while size * 2 <= min(wanted, maximum):
        size *= 2
    return size


def recommend_buffer_size(
    estimate: LinkEstimate, minimum: int, maximum: int, class_limit: int | None = None
) -> int:
    """The read size a new body from this client starts with (``buffer_for_rate`` of the
    estimated throughput, at most the class's ``buffer_size``); 64 KiB when unknown."""
    size = buffer_for_rate(estimate.throughput, minimum, maximum, TRICKLE_BUFFER)
    if class_limit is not None:
        size = max(minimum, min(size, class_limit))
    return size
