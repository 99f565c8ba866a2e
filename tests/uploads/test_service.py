"""The engine directly: stale expiry, the cleanup step, the progress throttle, completion."""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from hmacfs.composition import build_services, cleanup_steps
from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.db import BodyTransaction, Database
from hmacfs.errors import Conflict
from hmacfs.maintenance import run_cleanup
from hmacfs.models import Event, UploadTask
from hmacfs.models.status import Protocol, UploadStatus
from hmacfs.uploads.chunks import remove_stale_scratch, write_chunk
from hmacfs.uploads.completion import complete_upload
from hmacfs.uploads.notify import publish_progress
from hmacfs.uploads.queries import expire_stale_uploads
from hmacfs.uploads.service import NewUpload, create_upload
from tests.conftest import make_settings

CHUNK = 256 * 1024


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def _chunk_body(services: Services) -> BodyTransaction:
    """A chunk request's transaction mode, as the request boundary chooses it."""
    return BodyTransaction(statements_alone=services.db.is_postgresql)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def services(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], clock: FixedClock
) -> Services:
    return build_services(settings, db=Database(engine=engine, sessions=sessions), clock=clock)


def _new(account: uuid.UUID | None, size: int) -> NewUpload:
    return NewUpload(
        protocol=Protocol.DRIVE, file_name="f.bin", file_size=size, account_id=account, chunk_size=CHUNK
    )


def _send(session: Session, services: Services, task: UploadTask, index: int, data: bytes) -> None:
    write_chunk(
        session,
        services,
        task,
        index,
        io.BytesIO(data).read,
        declared_length=len(data),
        body=_chunk_body(services),
    )


def test_stale_uploads_expire_and_lose_their_parts(
    session: Session, services: Services, clock: FixedClock, account: uuid.UUID
) -> None:
    task = create_upload(session, services, _new(account, CHUNK * 2))
    _send(session, services, task, 0, os.urandom(CHUNK))
    part = services.store.part_path(task.task_id)
    assert part.exists()
    clock.current += services.settings.uploads.max_resumable_age - timedelta(minutes=1)
    assert expire_stale_uploads(session, services, clock.now()) == 0
    clock.current += timedelta(minutes=2)
    assert expire_stale_uploads(session, services, clock.now()) == 1
    assert task.status == UploadStatus.EXPIRED and not part.exists()
    session.commit()  # events are written when the transaction commits
    failed = session.scalars(select(Event).where(Event.type == "upload.failed")).one()
    assert failed.data["taskId"] == task.task_id and failed.data["errorMessage"]
    with pytest.raises(Exception) as gone:
        _send(session, services, task, 1, os.urandom(CHUNK))
    assert getattr(gone.value, "code", None) == "UPLOAD_EXPIRED"


def test_scratch_parts_a_dead_request_left_are_removed_once_stale(
    session: Session, services: Services, clock: FixedClock, account: uuid.UUID
) -> None:
    task = create_upload(session, services, _new(account, CHUNK * 2))
    parts = services.store.part_path(task.task_id).parent
    old, fresh = parts / f"{task.task_id}-r1-0a1b2c3d.part", parts / f"{task.task_id}-r0-deadbeef.part"
    for path in (old, fresh):
        path.write_bytes(b"x")
    long_ago = (clock.now() - services.settings.uploads.max_resumable_age).timestamp() - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(services.store.part_path(task.task_id), (long_ago, long_ago))  # an idle upload's own part
    os.utime(fresh, (long_ago + 120, long_ago + 120))
    assert remove_stale_scratch(session, services, clock.now()) == 1
    assert not old.exists() and fresh.exists() and services.store.part_path(task.task_id).exists()


def test_cleanup_pass_includes_the_upload_step(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "storage", f"sqlite:///{tmp_path / 'c.db'}")
    from hmacfs.migrate import upgrade

    services = build_services(settings)
    upgrade(services.db.engine)
    result = run_cleanup(services, cleanup_steps())
    assert result is not None and result["uploads.stale"] == 0 and result["uploads.scratch"] == 0
    assert list(result).index("uploads.stale") < list(result).index("blobs.orphaned")


def test_a_progress_event_published_meanwhile_is_not_repeated(
    session: Session, services: Services, clock: FixedClock, account: uuid.UUID
) -> None:
    """Parallel chunks commit their counts separately (PostgreSQL): a request whose read of
    the task predates another request's publication must not publish that step again."""
    task = create_upload(session, services, _new(account, CHUNK * 4))
    _send(session, services, task, 0, b"\0" * CHUNK)  # publishes 25 %
    read_before = task.progress_published, task.progress_published_at
    _send(session, services, task, 1, b"\0" * CHUNK)  # another request: publishes 50 %
    settings = services.settings.events
    set_committed_value(task, "progress_published", read_before[0])  # this request's older read
    set_committed_value(task, "progress_published_at", read_before[1])
    assert not publish_progress(session, settings, task, clock.now())  # 50 % again: refused
    session.refresh(task)
    task.bytes_received = CHUNK * 3
    assert publish_progress(session, settings, task, clock.now())  # a new step still goes out
    session.commit()
    published = [
        e.data["progress"] for e in session.scalars(select(Event).where(Event.type == "upload.progress"))
    ]
    assert published == [25.0, 50.0, 75.0]


def test_progress_events_are_throttled(
    session: Session, services: Services, clock: FixedClock, account: uuid.UUID
) -> None:
    chunks = 40  # 2.5 % each: every other chunk passes the 5 % step
    task = create_upload(session, services, _new(account, CHUNK * chunks))
    for index in range(chunks):
        _send(session, services, task, index, b"\0" * CHUNK)
    session.commit()  # events are written when the transaction commits
    progress = [
        e.data["progress"] for e in session.scalars(select(Event).where(Event.type == "upload.progress"))
    ]
    assert progress == [2.5 + 5 * i for i in range(20)] + [100.0]  # the last one always goes out
    assert all(0 <= value <= 100 for value in progress)
    clock.current += timedelta(seconds=2)  # the interval lets a small step through
    task2 = create_upload(session, services, _new(account, CHUNK * chunks))
    _send(session, services, task2, 0, b"\0" * CHUNK)
    clock.current += timedelta(seconds=2)
    _send(session, services, task2, 1, b"\0" * CHUNK)
    session.commit()
    assert session.scalar(select(Event.id).where(Event.data["progress"].as_float() == 5.0)) is not None


def test_complete_checks_every_chunk_and_is_idempotent(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    payload = os.urandom(CHUNK + 1)
    task = create_upload(session, services, replace(_new(account, len(payload)), sha256=None))
    _send(session, services, task, 1, payload[CHUNK:])
    with pytest.raises(Conflict):
        complete_upload(session, services, task)
    _send(session, services, task, 0, payload[:CHUNK])
    first = complete_upload(session, services, task)
    assert complete_upload(session, services, task).id == first.id
    session.commit()  # events are written when the transaction commits
    completed = session.scalars(select(Event).where(Event.type == "upload.completed")).one()
    assert completed.data["fileId"] == str(first.id)


def test_upload_cancelled_while_a_chunk_streams(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    from hmacfs.errors import Gone
    from hmacfs.uploads.service import cancel_upload

    task = create_upload(session, services, _new(account, CHUNK * 2))
    body = io.BytesIO(os.urandom(CHUNK))
    cancelled = []

    def read(size: int) -> bytes:
        if not cancelled:  # another request cancels the upload mid-body
            cancel_upload(session, services, task)
            cancelled.append(True)
        return body.read(size)

    with pytest.raises(Gone) as error:
        write_chunk(session, services, task, 0, read, declared_length=CHUNK, body=_chunk_body(services))
    assert error.value.code == "UPLOAD_CANCELLED"
    assert not services.store.part_path(task.task_id).exists()  # the stray part the write re-created is gone
    assert task.chunks_uploaded == 0


def test_an_upload_into_a_pool_with_a_storage_path_is_written_and_stored_there(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    from hmacfs.files import blob_location
    from hmacfs.models import Blob, Pool

    root = tmp_path / "pool-root"
    pool = Pool(name=f"rooted-{uuid.uuid4().hex[:6]}", storage_path=str(root))
    session.add(pool)
    session.flush()
    task = create_upload(session, services, replace(_new(account, CHUNK + 1), pool_id=pool.id))
    assert task.storage_root == str(root) and (root / "parts" / f"{task.task_id}.part").exists()
    data = os.urandom(CHUNK + 1)
    _send(session, services, task, 0, data[:CHUNK])
    _send(session, services, task, 1, data[CHUNK:])
    file = complete_upload(session, services, task)
    blob = session.get(Blob, file.blob_id)
    assert blob is not None and blob.storage_root == str(root)
    assert blob_location(services.store, blob) == root / blob.storage_key
    assert (root / blob.storage_key).read_bytes() == data
    session.commit()  # the part is dropped once the rows holding its bytes have committed
    assert not (root / "parts" / f"{task.task_id}.part").exists()
    assert not (services.store.root / blob.storage_key).exists()
