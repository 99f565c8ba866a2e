"""Running SHA-256 states of uploads received in order."""

from __future__ import annotations

import hashlib

from hmacfs.storage.prefix import PrefixHashes


def feed(states: PrefixHashes, key: str, offset: int, data: bytes) -> bool:
    state = states.take(key, offset)
    if state is None:
        return False
    state.content.update(data)
    state.advance(len(data), hashlib.sha256(data).hexdigest())
    states.keep(key, state)
    return True


def digests(*ranges: bytes) -> list[str]:
    return [hashlib.sha256(data).hexdigest() for data in ranges]


def test_in_order_ranges_give_the_whole_digest_once() -> None:
    states = PrefixHashes()
    assert feed(states, "u", 0, b"abc") and feed(states, "u", 3, b"defg")
    assert states.digest("u", 7, digests(b"abc", b"defg")) == hashlib.sha256(b"abcdefg").hexdigest()
    assert states.digest("u", 7, digests(b"abc", b"defg")) is None  # used up


def test_a_gap_or_another_size_or_other_recorded_ranges_give_nothing() -> None:
    states = PrefixHashes()
    assert feed(states, "u", 0, b"abc")
    assert not feed(states, "u", 5, b"xy")  # bytes 3-5 came through another process
    assert states.digest("u", 3, digests(b"abc")) is None  # the mismatch dropped the state
    assert feed(states, "v", 0, b"abc")
    assert states.digest("v", 4, digests(b"abc")) is None
    assert feed(states, "w", 0, b"abc")
    assert states.digest("w", 3, digests(b"abd")) is None


def test_the_least_recently_used_state_is_dropped_beyond_the_limit() -> None:
    states = PrefixHashes(limit=2)
    for key in ("a", "b", "c"):
        assert feed(states, key, 0, b"x")
    assert states.digest("a", 1, digests(b"x")) is None
    assert states.digest("c", 1, digests(b"x")) == hashlib.sha256(b"x").hexdigest()
