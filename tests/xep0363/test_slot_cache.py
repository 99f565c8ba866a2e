"""SlotCache: what it stores and when it refuses to (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hmacfs.xep0363.slot_cache import SlotCache

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def active(entries: int = 10, clock: Clock | None = None) -> SlotCache[str]:
    cache: SlotCache[str] = SlotCache(entries, max_age=10.0, clock=clock or Clock())
    cache.activate()
    return cache


def test_nothing_is_stored_until_notices_arrive_nor_after_they_stop() -> None:
    cache: SlotCache[str] = SlotCache(10)
    cache.put("a/b", "v", None, cache.generation)
    assert cache.get("a/b", NOW) is None
    cache.activate()
    cache.put("a/b", "v", None, cache.generation)
    assert cache.get("a/b", NOW) == "v"
    cache.deactivate()
    assert cache.get("a/b", NOW) is None
    cache.put("a/b", "v", None, cache.generation)
    assert cache.get("a/b", NOW) is None


def test_a_lookup_overtaken_by_a_notice_stores_nothing() -> None:
    cache = active()
    began = cache.generation
    cache.changed("other/path")  # any notice: the row read may predate it
    cache.put("a/b", "stale", None, began)
    assert cache.get("a/b", NOW) is None


def test_a_notice_drops_its_path_and_an_empty_one_everything() -> None:
    cache = active()
    for path in ("a/1", "a/2", "a/3"):
        cache.put(path, path, None, cache.generation)
    cache.changed("a/1")
    assert [cache.get(p, NOW) for p in ("a/1", "a/2", "a/3")] == [None, "a/2", "a/3"]
    cache.changed("")
    assert [cache.get(p, NOW) for p in ("a/2", "a/3")] == [None, None]


def test_an_entry_ends_at_its_files_expiry_and_after_max_age() -> None:
    clock = Clock()
    cache = active(clock=clock)
    cache.put("exp/a", "v", NOW + timedelta(seconds=5), cache.generation)
    cache.put("old/a", "v", None, cache.generation)
    assert cache.get("exp/a", NOW + timedelta(seconds=4)) == "v"
    assert cache.get("exp/a", NOW + timedelta(seconds=5)) is None
    clock.now += 10.5
    assert cache.get("old/a", NOW) is None


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = active(entries=2)
    cache.put("a", "a", None, cache.generation)
    cache.put("b", "b", None, cache.generation)
    assert cache.get("a", NOW) == "a"  # now b is the least recent
    cache.put("c", "c", None, cache.generation)
    assert [cache.get(p, NOW) for p in ("a", "b", "c")] == ["a", None, "c"]


def test_zero_entries_disables_it() -> None:
    cache = active(entries=0)
    cache.put("a", "a", None, cache.generation)
    assert not cache.active and cache.get("a", NOW) is None
