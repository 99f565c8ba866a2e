"""The running SHA-256 of Drive/chunked uploads and the chunk range locks that keep it true."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.composition import build_services
from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.db import BodyTransaction, Database
from hmacfs.errors import Conflict
from hmacfs.models import UploadChunk, UploadTask
from hmacfs.models.status import Protocol
from hmacfs.storage import LocalBlobStore
from hmacfs.storage.copying import Hasher
from hmacfs.storage.range_lock import PartLock
from hmacfs.uploads import chunks, running_hash
from hmacfs.uploads.chunks import write_chunk
from hmacfs.uploads.completion import complete_upload
from hmacfs.uploads.running_hash import advance, bytes_replaced, start_advancing
from hmacfs.uploads.service import NewUpload, create_upload
from tests.conftest import make_settings

CHUNK = 256 * 1024


def _chunk_body(services: Services) -> BodyTransaction:
    """A chunk request's transaction mode, as the request boundary chooses it."""
    return BodyTransaction(statements_alone=services.db.is_postgresql)


@pytest.fixture
def services(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Services:
    return build_services(settings, db=Database(engine=engine, sessions=sessions))


def _upload(session: Session, services: Services, payload: bytes, *, declared: bool = True) -> UploadTask:
    new = NewUpload(
        protocol=Protocol.DRIVE, file_name="f.bin", file_size=len(payload), account_id=uuid.uuid4(),
        chunk_size=CHUNK, sha256=hashlib.sha256(payload).hexdigest() if declared else None,
    )  # fmt: skip
    return create_upload(session, services, new)


def _send(session: Session, services: Services, task: UploadTask, index: int, data: bytes) -> bool:
    result = write_chunk(
        session,
        services,
        task,
        index,
        io.BytesIO(data).read,
        declared_length=len(data),
        body=_chunk_body(services),
    )
    return result.stored


def _piece(payload: bytes, index: int) -> bytes:
    return payload[index * CHUNK : (index + 1) * CHUNK]


def _sent_in_full(
    session: Session, services: Services, payload: bytes, *, wrong: int | None = None
) -> UploadTask:
    """An upload with every chunk sent and committed (chunk ``wrong`` with other bytes)."""
    task = _upload(session, services, payload)
    for index in range(-(-len(payload) // CHUNK)):
        _send(session, services, task, index, os.urandom(CHUNK) if index == wrong else _piece(payload, index))
    session.commit()
    return task


def _state(session: Session, task: UploadTask) -> tuple[int, bool, int]:
    session.expire(task)
    return task.hashed_bytes, task.hash_state is not None, task.hash_generation


def test_advance_hashes_the_committed_prefix_and_completion_reads_only_the_rest(
    session: Session, services: Services, part_reads: list[tuple[int, int]]
) -> None:
    payload = os.urandom(CHUNK * 3 + 100)
    task = _upload(session, services, payload)
    for index in (0, 1, 3):
        _send(session, services, task, index, _piece(payload, index))
    session.commit()
    assert advance(services, task.id) == 2 * CHUNK  # stops at the gap
    assert advance(services, task.id) == 0
    assert _state(session, task) == (2 * CHUNK, True, 0)
    _send(session, services, task, 2, _piece(payload, 2))
    part_reads.clear()
    file = complete_upload(session, services, task)
    assert file.sha256 == hashlib.sha256(payload).hexdigest()
    assert part_reads == [(2 * CHUNK, len(payload) - 2 * CHUNK)]


@pytest.mark.parametrize(("step", "runs"), [(1 << 30, 1), (CHUNK, 3)])
def test_an_advance_runs_again_at_once_only_when_it_stopped_at_its_step(
    session: Session, services: Services, monkeypatch: pytest.MonkeyPatch, step: int, runs: int
) -> None:
    if not services.db.is_postgresql:
        pytest.skip("the background advancer runs on PostgreSQL")
    task = _sent_in_full(session, services, os.urandom(2 * CHUNK))
    monkeypatch.setattr(running_hash, "_STEP", step)
    done: list[int | None] = []
    real = running_hash.advance
    monkeypatch.setattr(running_hash, "advance", lambda svc, key: done.append(real(svc, key)) or done[-1])
    start_advancing(services, lambda run, key: run(key))
    services.hash_advancer.request(task.id)
    assert len(done) == runs  # with a step of one chunk: a chunk, a chunk, then nothing
    assert _state(session, task)[0] == 2 * CHUNK


def test_a_resent_chunk_with_other_bytes_drops_a_state_that_covered_it(
    session: Session, services: Services, monkeypatch: pytest.MonkeyPatch, part_reads: list[tuple[int, int]]
) -> None:
    payload = os.urandom(CHUNK * 4)
    task = _sent_in_full(session, services, payload, wrong=1)
    monkeypatch.setattr(running_hash, "_STEP", 2 * CHUNK)  # one transaction hashes at most a step
    assert advance(services, task.id) == 2 * CHUNK
    assert advance(services, task.id) == 2 * CHUNK
    assert _state(session, task) == (4 * CHUNK, True, 0)
    assert _send(session, services, task, 3, _piece(payload, 3)) is False  # the same bytes: no change
    assert _state(session, task) == (4 * CHUNK, True, 0)
    assert _send(session, services, task, 1, _piece(payload, 1)) is True  # other bytes
    assert _state(session, task) == (0, False, 1)
    part_reads.clear()
    assert complete_upload(session, services, task).sha256 == hashlib.sha256(payload).hexdigest()
    assert part_reads == [(0, len(payload))]


def test_a_replacement_after_the_hashed_prefix_keeps_the_state(session: Session, services: Services) -> None:
    payload = os.urandom(CHUNK * 3)
    task = _upload(session, services, payload)
    _send(session, services, task, 0, _piece(payload, 0))
    _send(session, services, task, 2, os.urandom(CHUNK))
    session.commit()
    assert advance(services, task.id) == CHUNK
    _send(session, services, task, 2, _piece(payload, 2))
    assert _state(session, task) == (CHUNK, True, 1)
    _send(session, services, task, 1, _piece(payload, 1))
    assert complete_upload(session, services, task).sha256 == hashlib.sha256(payload).hexdigest()


def test_after_an_advance_finds_its_bytes_unreadable_the_next_ones_do_not_read_and_completion_hashes_all(
    session: Session, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(CHUNK * 2)
    task = _sent_in_full(session, services, payload)
    original, reads = LocalBlobStore.feed_range, []

    def unreadable(store: LocalBlobStore, part: str, hasher: Hasher, start: int, length: int) -> None:
        reads.append(start)  # as an S3 direct part's slots before it is sealed
        raise ValueError(f"part {part} has no bytes at {start}")

    monkeypatch.setattr(LocalBlobStore, "feed_range", unreadable)
    assert advance(services, task.id) == 0
    assert advance(services, task.id) == 0
    assert reads == [0]  # the second advance did not list and fail again
    assert _state(session, task) == (0, False, 0)
    monkeypatch.setattr(LocalBlobStore, "feed_range", original)
    file = complete_upload(session, services, task)
    assert file.sha256 == hashlib.sha256(payload).hexdigest()


def test_an_advance_that_read_bytes_being_replaced_is_not_stored(
    session: Session, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(CHUNK * 2)
    task = _sent_in_full(session, services, payload)
    original = LocalBlobStore.feed_range

    def replaced_meanwhile(store: LocalBlobStore, part: str, hasher: Hasher, start: int, length: int) -> None:
        original(store, part, hasher, start, length)
        bytes_replaced(
            session, services.hash_advancer, task.id, 0
        )  # a re-send finished while this advance hashed
        session.commit()

    monkeypatch.setattr(LocalBlobStore, "feed_range", replaced_meanwhile)
    assert advance(services, task.id) == 0
    assert _state(session, task) == (0, False, 1)


def test_committed_chunks_start_an_advance_once_a_batch_waits_past_the_hashed_prefix(
    session: Session, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(running_hash, "_BATCH", 2 * CHUNK)
    started: list[uuid.UUID] = []
    services.hash_advancer.start(lambda run, key: started.append(key) or run(key), lambda _key: False)
    payload = os.urandom(CHUNK * 4)
    task = _upload(session, services, payload)
    _send(session, services, task, 0, _piece(payload, 0))
    session.commit()
    assert started == []  # one chunk waits: not yet
    _send(session, services, task, 1, _piece(payload, 1))
    session.rollback()
    assert started == []  # nothing starts for a transaction that rolled back
    _send(session, services, task, 1, _piece(payload, 1))
    session.commit()
    assert started == [task.id]
    _send(session, services, task, 1, os.urandom(CHUNK))  # a replacement always restarts it
    session.commit()
    assert started == [task.id, task.id]


def test_a_first_write_that_finds_its_chunk_locked_waits_then_writes(
    session: Session, services: Services
) -> None:
    """Another request is writing chunk 1: this one receives aside, waits for the lock, and,
    finding no row (that request failed), records its own bytes."""
    payload = os.urandom(CHUNK * 2)
    task = _upload(session, services, payload)
    other = PartLock(services.store.part_path(task.task_id))
    assert other.try_lock(CHUNK, CHUNK)
    threading.Timer(0.2, other.close).start()
    started = datetime.now(UTC)
    assert _send(session, services, task, 1, _piece(payload, 1)) is True
    assert (datetime.now(UTC) - started).total_seconds() >= 0.2
    _send(session, services, task, 0, _piece(payload, 0))
    assert complete_upload(session, services, task).sha256 == hashlib.sha256(payload).hexdigest()
    assert not list(services.store.part_path(task.task_id).parent.glob("*-r1-*"))  # no scratch left


def test_a_chunk_locked_past_the_wait_is_refused_and_records_nothing(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, str(engine.url), timeouts={"body_idle": "0.1s"})
    services = build_services(settings, db=Database(engine=engine, sessions=sessions))
    monkeypatch.setattr(chunks, "_LOCK_MARGIN", 0.0)
    with sessions() as session:
        payload = os.urandom(CHUNK)
        task = _upload(session, services, payload)
        holder = PartLock(services.store.part_path(task.task_id))
        try:
            assert holder.try_lock(0, CHUNK)
            with pytest.raises(Conflict) as refused:
                _send(session, services, task, 0, payload)
            assert refused.value.code == "CHUNK_BUSY"
            assert session.scalars(select(UploadChunk).where(UploadChunk.upload_id == task.id)).all() == []
        finally:
            holder.close()


def test_completion_refuses_while_a_chunk_is_being_written(session: Session, services: Services) -> None:
    payload = os.urandom(CHUNK)
    task = _upload(session, services, payload)
    _send(session, services, task, 0, payload)
    session.commit()  # the writer's lock ends with its transaction
    writer = PartLock(services.store.part_path(task.task_id))
    try:
        assert writer.try_lock(0, CHUNK)
        with pytest.raises(Conflict) as busy:
            complete_upload(session, services, task)
        assert busy.value.code == "UPLOAD_BUSY"
    finally:
        writer.close()
    assert complete_upload(session, services, task).sha256 == hashlib.sha256(payload).hexdigest()


def test_without_libcrypto_completion_hashes_the_whole_part(
    session: Session, services: Services, monkeypatch: pytest.MonkeyPatch, part_reads: list[tuple[int, int]]
) -> None:
    payload = os.urandom(CHUNK * 2)
    task = _sent_in_full(session, services, payload)
    assert advance(services, task.id) == 2 * CHUNK
    monkeypatch.setattr(running_hash, "available", lambda: False)
    part_reads.clear()
    assert complete_upload(session, services, task).sha256 == hashlib.sha256(payload).hexdigest()
    assert part_reads == [(0, len(payload))]  # the stored state is not used: plain hashlib from the start
