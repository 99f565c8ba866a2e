"""Range locks of the S3 store: PostgreSQL advisory locks (every node) and in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine

from hmacfs.storage.blob_store import RangeLock
from hmacfs.storage.shared_range_lock import AdvisoryRangeLock, AdvisorySession, MemoryRangeLocks
from tests.pg import PgServer


@pytest.fixture(params=["postgresql", "memory"])
def new_lock(
    request: pytest.FixtureRequest, pg_server: PgServer | None
) -> Iterator[Callable[[str], RangeLock]]:
    if request.param == "memory":
        yield MemoryRangeLocks().lock
        return
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    engine = create_engine(pg_server.create_database())
    local, session = MemoryRangeLocks(), AdvisorySession(engine)
    yield lambda name: AdvisoryRangeLock(session, local, name)
    session.close()
    engine.dispose()


def test_chunks_exclude_the_same_chunk_and_the_whole_part(new_lock: Callable[[str], RangeLock]) -> None:
    first, second = new_lock("part-a"), new_lock("part-a")
    assert first.try_lock(0, 100)
    assert not second.try_lock(0, 100)
    assert second.try_lock(100, 100)  # another chunk
    assert not second.try_lock(0, 0)  # the whole part waits for every chunk
    second.unlock(100, 100)
    assert first.try_lock(0, 0)  # ... but not for chunks its own lock holds
    first.unlock(0, 0)
    first.unlock(0, 100)
    assert second.try_lock(0, 100)
    assert not new_lock("part-a").try_lock(0, 0)
    assert new_lock("part-b").try_lock(0, 0)  # another part
    first.close()
    second.close()


def test_closing_releases_everything_and_waiting_is_bounded(new_lock: Callable[[str], RangeLock]) -> None:
    holder, waiter = new_lock("part-c"), new_lock("part-c")
    assert holder.try_lock(0, 0)
    assert not waiter.wait_lock(0, 10, timeout=0.05)
    holder.close()
    holder.close()  # idempotent
    assert waiter.wait_lock(0, 10, timeout=1)
    waiter.close()


def test_other_processes_are_excluded_through_postgresql(pg_server: PgServer | None) -> None:
    """Two processes (each its own MemoryRangeLocks) exclude the same range and the whole
    part through the advisory locks; other ranges go on in parallel."""
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    engine = create_engine(pg_server.create_database())
    sessions = [AdvisorySession(engine), AdvisorySession(engine)]  # two processes
    here = AdvisoryRangeLock(sessions[0], MemoryRangeLocks(), "shared-part")
    there = AdvisoryRangeLock(sessions[1], MemoryRangeLocks(), "shared-part")
    try:
        assert here.try_lock(0, 100)
        assert not there.try_lock(0, 100)
        assert not there.try_lock(0, 0)
        assert there.try_lock(100, 100)
        assert not here.try_lock(0, 0)
        here.unlock(0, 100)
        there.unlock(100, 100)
        assert there.try_lock(0, 0)
        assert not here.try_lock(300, 100)
        there.close()
        assert here.try_lock(300, 100)
    finally:
        here.close()
        there.close()
        for session in sessions:
            session.close()
        engine.dispose()
