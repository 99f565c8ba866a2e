from __future__ import annotations

from hmacfs.network.estimate import UNMEASURED, LinkEstimate
from hmacfs.network.sizing import (
    KIB,
    MIB,
    ChunkRule,
    buffer_for_rate,
    recommend_buffer_size,
    recommend_chunk_size,
    seed_chunk_size,
)

RULE = ChunkRule(default=5 * MIB, minimum=256 * KIB, maximum=16 * MIB, target_seconds=8.0)


def test_the_seeds_three_classes() -> None:
    assert seed_chunk_size(1 << 30, 200 * MIB, 10, 1.0) == 10 * MIB
    assert seed_chunk_size(1 << 30, 1 * MIB, 300, 1.0) == 512 * KIB
    assert seed_chunk_size(1 << 30, 1 * MIB, 50, 0.5) == 512 * KIB
    assert seed_chunk_size(1 << 30, 10 * MIB, 60, 0.95) == 2 * MIB
    assert seed_chunk_size(10 * MIB, 10 * MIB, 60, 0.95) == MIB // 2  # a twentieth of the file


def test_nothing_known_gives_the_configured_default() -> None:
    assert recommend_chunk_size(UNMEASURED, RULE) == 5 * MIB


def test_a_measured_link_gets_a_chunk_of_the_target_time() -> None:
    wifi = LinkEstimate(throughput=1 * MIB, rtt_ms=20.0, loss=0.0, reliability=1.0, bodies=5)
    assert recommend_chunk_size(wifi, RULE) == 8 * MIB
    lan = LinkEstimate(throughput=100 * MIB, rtt_ms=0.2, loss=0.0, reliability=1.0, bodies=5)
    assert recommend_chunk_size(lan, RULE) == 16 * MIB  # at most the maximum


def test_unreliable_and_lossy_links_get_smaller_chunks() -> None:
    steady = LinkEstimate(throughput=1 * MIB, rtt_ms=60.0, loss=0.0, reliability=1.0, bodies=5)
    cut = LinkEstimate(throughput=1 * MIB, rtt_ms=60.0, loss=0.0, reliability=0.5, bodies=5)
    lossy = LinkEstimate(throughput=1 * MIB, rtt_ms=60.0, loss=0.03, reliability=1.0, bodies=5)
    assert recommend_chunk_size(cut, RULE) == 512 * KIB  # a sixteenth of the time
    assert recommend_chunk_size(lossy, RULE) < recommend_chunk_size(steady, RULE)
    trickle = LinkEstimate(throughput=2 * KIB, rtt_ms=600.0, loss=0.1, reliability=0.2, bodies=5)
    assert recommend_chunk_size(trickle, RULE) == RULE.minimum


def test_latency_alone_uses_the_seed_classes_and_a_class_limit_caps() -> None:
    far = LinkEstimate(throughput=None, rtt_ms=400.0, loss=0.0, reliability=1.0)
    assert recommend_chunk_size(far, RULE, file_size=1 << 30) == 512 * KIB
    capped = ChunkRule(RULE.default, RULE.minimum, RULE.maximum, 8.0, class_limit=2 * MIB)
    assert recommend_chunk_size(UNMEASURED, capped) == 2 * MIB


def test_chunk_sizes_are_whole_multiples_of_64_kib() -> None:
    odd = LinkEstimate(throughput=123_457.0, rtt_ms=None, loss=0.0, reliability=1.0, bodies=1)
    assert recommend_chunk_size(odd, RULE) % (64 * KIB) == 0


def test_buffer_follows_the_rate_between_the_bounds() -> None:
    assert buffer_for_rate(118 * MIB, 32 * KIB, MIB, 64 * KIB) == MIB  # fast LAN
    assert buffer_for_rate(5 * MIB, 32 * KIB, MIB, 64 * KIB) == 256 * KIB  # 40 Mbit/s
    assert buffer_for_rate(1 * MIB, 32 * KIB, MIB, 64 * KIB) == 32 * KIB  # 8 Mbit/s
    assert buffer_for_rate(2 * KIB, 32 * KIB, MIB, 64 * KIB) == 32 * KIB  # trickling
    assert buffer_for_rate(None, 32 * KIB, MIB, 64 * KIB) == 64 * KIB


def test_a_new_body_starts_from_the_profile_and_the_class_limit() -> None:
    lan = LinkEstimate(throughput=100 * MIB, rtt_ms=0.2, loss=0.0, reliability=1.0, bodies=5)
    assert recommend_buffer_size(lan, 32 * KIB, MIB) == MIB
    assert recommend_buffer_size(lan, 32 * KIB, MIB, class_limit=256 * KIB) == 256 * KIB
    assert recommend_buffer_size(UNMEASURED, 32 * KIB, MIB) == 64 * KIB
