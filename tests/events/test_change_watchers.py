"""PgEventBus feeds change watchers (the slot GET cache) from migration 0011's trigger, and
turns them off while its connection is lost: notices sent meanwhile are gone."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from hmacfs.events.bus import LISTENER_NAME, PgEventBus
from hmacfs.events.hub import Hub
from hmacfs.xep0363.slot_cache import FILES_CHANNEL


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def activate(self) -> None:
        self.calls.append("activate")

    def deactivate(self) -> None:
        self.calls.append("deactivate")

    def changed(self, payload: str) -> None:
        self.calls.append(f"changed:{payload}")


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.02)


@pytest.fixture
def listening(engine: Engine, backend: str) -> Iterator[Recorder]:
    if backend != "postgresql":
        pytest.skip("notices are PostgreSQL's")
    recorder, stopping = Recorder(), threading.Event()

    def pause(_seconds: float) -> None:
        if stopping.is_set():
            raise _Stop  # ends bus.run, which only sleeps after a lost connection
        time.sleep(0.05)

    url = engine.url.render_as_string(hide_password=False)
    bus = PgEventBus(url, Hub(), watchers={FILES_CHANNEL: recorder}, sleep=pause)
    thread = threading.Thread(target=_run_until_stopped, args=(bus,), daemon=True)
    thread.start()
    eventually(bus.connected.is_set)
    yield recorder
    stopping.set()
    _terminate_listener(engine)
    thread.join(10)


class _Stop(Exception):
    pass


def _run_until_stopped(bus: PgEventBus) -> None:
    with contextlib.suppress(_Stop):
        bus.run()


def _terminate_listener(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :n AND datname = current_database()"
            ),
            {"n": LISTENER_NAME},
        )


def _slot_file(engine: Engine, path: str) -> None:
    with engine.begin() as connection:
        pool = connection.execute(text("SELECT id FROM pools LIMIT 1")).scalar()
        if pool is None:
            pool = uuid.uuid4()
            connection.execute(
                text("INSERT INTO pools (id, name, created_at, updated_at) VALUES (:i, :n, now(), now())"),
                {"i": pool, "n": f"p-{pool.hex[:8]}"},
            )
        blob = uuid.uuid4()
        connection.execute(
            text("INSERT INTO blobs (id, sha256, size, storage_key) VALUES (:i, :h, 1, :k)"),
            {"i": blob, "h": "0" * 64, "k": f"k/{blob.hex}"},
        )
        connection.execute(
            text(
                "INSERT INTO files (id, pool_id, path, name, content_type, size, blob_id, sha256,"
                " created_at, updated_at) VALUES (:i, :p, :path, 'a', 'x/y', 1, :b, :h, now(), now())"
            ),
            {"i": uuid.uuid4(), "p": pool, "path": path, "b": blob, "h": "0" * 64},
        )


def test_updates_and_deletes_of_slot_files_and_moved_blobs_are_noticed(
    engine: Engine, listening: Recorder
) -> None:
    path = f"watch-{uuid.uuid4().hex[:8]}/a.bin"
    _slot_file(engine, path)
    with engine.begin() as connection:
        connection.execute(text("UPDATE files SET expired_at = now() WHERE path = :p"), {"p": path})
    eventually(lambda: f"changed:{path}" in listening.calls)
    with engine.begin() as connection:
        connection.execute(text("UPDATE blobs SET ref_count = ref_count + 1"))  # not a move: no notice
        connection.execute(text("UPDATE blobs SET storage_root = '/elsewhere' WHERE storage_root IS NULL"))
    eventually(lambda: "changed:" in listening.calls)
    listening.calls.clear()
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM files WHERE path = :p"), {"p": path})
    eventually(lambda: listening.calls == [f"changed:{path}"])


def test_a_lost_listener_turns_the_watchers_off_until_it_listens_again(
    engine: Engine, listening: Recorder
) -> None:
    assert listening.calls == ["activate"]
    _terminate_listener(engine)
    eventually(lambda: listening.calls[-2:] == ["deactivate", "activate"])
