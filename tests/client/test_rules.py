"""The client's pure rules: backoff with full jitter, Retry-After, chunk-size adaptation,
error classes, and the watchdog's decisions (with a fake network and fake requests)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hmacfs.client.backoff import Backoff, parse_retry_after
from hmacfs.client.errors import Answer, error_for, is_retryable
from hmacfs.client.sizing import ChunkSizer, MiB
from hmacfs.client.watch import NetworkSnapshot, Watchdog


def test_full_jitter_stays_under_an_exponential_ceiling_capped() -> None:
    backoff = Backoff(base=0.5, cap=8.0)
    assert [backoff.ceiling(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    rng = random.Random(7)
    delays = [backoff.delay(3, rng=rng) for _ in range(2000)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert min(delays) < 0.2 and max(delays) > 3.8  # spread over the whole range: full jitter
    assert 1.8 < sum(delays) / len(delays) < 2.2


def test_retry_after_is_a_floor_and_may_exceed_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=2.0)
    rng = random.Random(1)
    assert all(backoff.delay(0, retry_after=5.0, rng=rng) == 5.0 for _ in range(100))
    assert all(backoff.delay(6, retry_after=0.1, rng=rng) >= 0.1 for _ in range(100))


def test_retry_after_parses_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None


def test_chunk_size_follows_goodput_within_bounds_and_steps() -> None:
    sizer = ChunkSizer(5 * MiB, minimum=256 * 1024, maximum=64 * MiB, target_seconds=2.0)
    assert sizer.next_size() == 5 * MiB
    sizer.observe(5 * MiB, 0.05)  # 100 MiB/s: wants 200 MiB, but one step at most doubles
    assert sizer.next_size() == 10 * MiB
    for _ in range(10):
        sizer.observe(sizer.next_size(), sizer.next_size() / (100 * MiB))
    assert sizer.next_size() == 64 * MiB  # capped
    for _ in range(20):
        sizer.observe(sizer.next_size(), sizer.next_size() / (128 * 1024))  # 128 KiB/s
    assert sizer.next_size() == 256 * 1024  # floored at the minimum
    assert sizer.next_size() % (256 * 1024) == 0


def test_a_failed_chunk_halves_the_size() -> None:
    sizer = ChunkSizer(8 * MiB)
    sizer.failed()
    assert sizer.next_size() == 4 * MiB
    for _ in range(10):
        sizer.failed()
    assert sizer.next_size() == sizer.minimum


def test_server_recommendation_is_the_start_clamped() -> None:
    assert ChunkSizer(100 * MiB, maximum=32 * MiB).next_size() == 32 * MiB
    assert ChunkSizer(1000).next_size() == 256 * 1024


def _answer(status: int, code: str | None = None) -> Answer:
    body = b"{}" if code is None else f'{{"code": "{code}", "message": "m"}}'.encode()
    return Answer(status, {}, body)


@pytest.mark.parametrize(
    ("status", "code", "retry", "exit_code"),
    [
        (401, None, False, 3), (403, "QUOTA_EXCEEDED", False, 5), (404, None, False, 4),
        (410, "UPLOAD_EXPIRED", False, 4), (409, "CHUNK_BUSY", True, 6), (409, "UPLOAD_BUSY", True, 6),
        (409, "OFFSET_MISMATCH", False, 6), (423, None, True, 7), (429, None, True, 8),
        (500, None, True, 9), (503, "DATABASE_UNAVAILABLE", True, 9), (507, None, True, 9),
        (460, None, False, 11), (422, "HASH_MISMATCH", False, 11), (413, None, False, 5),
    ],
)  # fmt: skip
def test_each_error_class_has_its_exit_code(
    status: int, code: str | None, retry: bool, exit_code: int
) -> None:
    answer = _answer(status, code)
    assert is_retryable(answer) is retry
    assert error_for(answer, "step").exit_code == exit_code


class FakeRequest:
    def __init__(self, idle: float, limit: float | None) -> None:
        self.idle, self.stall_limit, self.aborted = idle, limit, ""

    def idle_for(self, now: float) -> float:
        return self.idle

    def abort(self, reason: str) -> None:
        self.aborted = reason


def test_watchdog_cuts_every_request_on_a_network_change_and_only_stalled_ones_otherwise() -> None:
    network: list[NetworkSnapshot] = [(frozenset({("wlan0", "10.0.0.2")}), ("2:wlan0",))]
    events: list[tuple[str, str]] = []
    watchdog = Watchdog(lambda kind, detail: events.append((kind, detail)), snapshot=lambda: network[0])
    busy, stalled = FakeRequest(0.1, 5.0), FakeRequest(9.0, 5.0)
    watchdog._last = network[0]
    watchdog.watch(busy)
    watchdog.watch(stalled)
    watchdog.check()
    assert (busy.aborted, stalled.aborted) == ("", "stalled")
    stalled.aborted = ""
    network[0] = (frozenset({("wwan0", "100.64.0.9")}), ("2:wwan0",))  # the default route moved
    watchdog.check()
    assert (busy.aborted, stalled.aborted) == ("network change", "network change")
    assert [kind for kind, _ in events] == ["stalled", "network_change"]
    assert watchdog.network_changes == 1
