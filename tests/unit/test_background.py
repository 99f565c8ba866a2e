"""KeyedRunner: one run per key at a time, a request during a run makes it go again, bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hmacfs.background import KeyedRunner


def test_requests_before_start_are_ignored() -> None:
    runner = KeyedRunner("test")
    runner.request("a")  # nothing to run it with: no error, nothing remembered
    spawned: list[str] = []
    runner.start(lambda run, key: spawned.append(key), lambda key: False)
    assert spawned == []


def test_a_request_during_a_run_makes_it_go_once_more_and_the_limit_drops_the_rest() -> None:
    runner = KeyedRunner("test", limit=2)
    pending: list[tuple[Callable[[str], None], str]] = []
    calls: list[str] = []

    def work(key: str) -> bool:
        calls.append(key)
        if len(calls) == 1:
            runner.request(key)  # arrives while the first run is going
        return False

    runner.start(lambda run, key: pending.append((run, key)), work)
    runner.request("a")
    runner.request("a")  # already running: remembered, not spawned twice
    runner.request("b")
    runner.request("c")  # over the limit: dropped
    assert [key for _, key in pending] == ["a", "b"]
    run, key = pending.pop(0)
    run(key)
    assert calls == ["a", "a"]  # the request made during the run (and before it) ran once more
    runner.request("c")  # "a" has finished: room again
    assert [key for _, key in pending] == ["b", "c"]


def test_a_failing_run_is_logged_and_frees_its_key(caplog: pytest.LogCaptureFixture) -> None:
    runner = KeyedRunner("test")
    pending: list[tuple[Callable[[str], None], str]] = []

    def work(key: str) -> bool:
        raise RuntimeError("boom")

    runner.start(lambda run, key: pending.append((run, key)), work)
    runner.request("a")
    run, key = pending.pop()
    run(key)
    assert "test of a failed" in caplog.text
    runner.request("a")
    assert len(pending) == 1
