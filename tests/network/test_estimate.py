from __future__ import annotations

import pytest

from hmacfs.network.estimate import (
    UNMEASURED,
    BodyMeasurement,
    LinkEstimate,
    Outcome,
    combine,
    estimate_body,
    goodput,
    loss_ratio,
    rtt_ms,
)
from hmacfs.network.tcp_info import TcpSample


def test_goodput_needs_a_body_big_and_long_enough() -> None:
    assert goodput(1024, 1.0) is None
    assert goodput(10 * 1024 * 1024, 0.0001) is None
    assert goodput(10 * 1024 * 1024, 2.0) == 5 * 1024 * 1024


def test_rtt_prefers_the_receivers_estimate_then_the_senders() -> None:
    assert rtt_ms([TcpSample(0, rtt_us=9000, rcv_rtt_us=60000)]) == 60.0
    assert rtt_ms([TcpSample(0, rtt_us=9000), TcpSample(1, rtt_us=12000)]) == 12.0
    assert rtt_ms([]) is None


def test_loss_is_out_of_order_and_retransmitted_segments_per_segment_over_the_body() -> None:
    first = TcpSample(0, segs_in=100, segs_out=50, rcv_ooopack=5, total_retrans=1)
    last = TcpSample(1, segs_in=1100, segs_out=50, rcv_ooopack=45, total_retrans=1)
    assert loss_ratio([first, last]) == pytest.approx(40 / 1000)
    assert loss_ratio([last]) == 0.0


def test_a_complete_body_is_reliable_and_a_cut_one_is_not() -> None:
    samples = [TcpSample(0, rcv_rtt_us=50000), TcpSample(2, rcv_rtt_us=70000)]
    complete = estimate_body(BodyMeasurement(4 << 20, 2.0, Outcome.COMPLETE, samples))
    assert complete == LinkEstimate(throughput=2 << 20, rtt_ms=70.0, loss=0.0, reliability=1.0, bodies=1.0)
    assert estimate_body(BodyMeasurement(1 << 20, 1.0, Outcome.TIMED_OUT)).reliability == 0.0


def test_reliability_is_completed_over_attempted_in_a_decaying_window() -> None:
    estimate = UNMEASURED
    for ok in [True] * 10 + [False] * 10:
        body = LinkEstimate(throughput=1e6, rtt_ms=50.0, loss=0.0, reliability=1.0 if ok else 0.0, bodies=1.0)
        estimate = combine(estimate, body)
    assert estimate.reliability < 0.3  # the recent failures dominate
    for _ in range(30):
        estimate = combine(estimate, LinkEstimate(1e6, 50.0, 0.0, 1.0, 1.0))
    assert estimate.reliability > 0.95


def test_throughput_is_a_moving_average_and_a_failed_body_only_lowers_it() -> None:
    estimate = combine(UNMEASURED, LinkEstimate(1000.0, None, 0.0, 1.0, 1.0))
    assert estimate.throughput == 1000.0
    assert combine(estimate, LinkEstimate(2000.0, None, 0.0, 1.0, 1.0)).throughput == pytest.approx(1300.0)
    assert combine(estimate, LinkEstimate(9000.0, None, 0.0, 0.0, 1.0)).throughput == 1000.0
    assert combine(estimate, LinkEstimate(None, 40.0, 0.0, 1.0, 1.0)).rtt_ms == 40.0
