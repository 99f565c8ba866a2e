"""A settled client's body measurements wait for its next save; nothing else waits."""

from __future__ import annotations

from hmacfs.web.save_schedule import SaveSchedule


def _key(body: str) -> str:
    return body.split(":", maxsplit=1)[0]


def _due(schedule: SaveSchedule[str], arrived: list[str], now: float, *, settled: set[str]) -> list[str]:
    return schedule.due(arrived, now, key=_key, may_wait=lambda client, bodies: client in settled)


def test_a_new_client_is_saved_at_once() -> None:
    schedule: SaveSchedule[str] = SaveSchedule(2.0)
    assert _due(schedule, ["a:1", "a:2"], 0.0, settled={"a"}) == ["a:1", "a:2"]
    assert not schedule.pending


def test_a_settled_client_waits_until_its_interval_has_passed_and_keeps_every_body() -> None:
    schedule: SaveSchedule[str] = SaveSchedule(2.0)
    schedule.saved(["a"], 10.0)
    assert _due(schedule, ["a:1"], 10.5, settled={"a"}) == []
    assert _due(schedule, ["a:2"], 11.9, settled={"a"}) == []
    assert schedule.pending
    assert _due(schedule, ["a:3"], 12.0, settled={"a"}) == ["a:1", "a:2", "a:3"]
    assert not schedule.pending


def test_an_unsettled_client_or_a_refused_wait_sends_everything_waiting() -> None:
    schedule: SaveSchedule[str] = SaveSchedule(2.0)
    schedule.saved(["a", "b"], 10.0)
    assert _due(schedule, ["a:1", "b:1"], 10.1, settled={"a"}) == ["b:1"]
    # a's next body may not wait (say it failed): a's earlier one goes with it, in order
    assert _due(schedule, ["a:2"], 10.2, settled=set()) == ["a:1", "a:2"]


def test_a_pass_with_nothing_new_releases_what_became_due() -> None:
    schedule: SaveSchedule[str] = SaveSchedule(2.0)
    schedule.saved(["a"], 0.0)
    assert _due(schedule, ["a:1"], 1.0, settled={"a"}) == []
    assert _due(schedule, [], 2.5, settled={"a"}) == ["a:1"]


def test_only_the_newest_clients_are_remembered() -> None:
    schedule: SaveSchedule[str] = SaveSchedule(2.0, remembered=2)
    schedule.saved(["a", "b", "c"], 0.0)  # a is forgotten: its next body is saved at once
    assert _due(schedule, ["a:1", "b:1", "c:1"], 1.0, settled={"a", "b", "c"}) == ["a:1"]
