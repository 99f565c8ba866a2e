"""Releasing the reservations of idle uploads (cleanup step ``uploads.reservations``), on
both databases: the unreceived ranges are punched out, acknowledged bytes stay, the quota
counts what was received, and the upload still completes."""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from hmacfs.models import UploadTask
from hmacfs.uploads.quotas import account_usage
from hmacfs.uploads.reservations import release_idle_reservations, unreceived_ranges
from tests.web.test_drive import API, CHUNK, create, send

LATER = timedelta(hours=7)  # past the default reservation_timeout (6h)


def _task(session: Session, task_id: str) -> UploadTask:
    return session.scalars(
        select(UploadTask).where(UploadTask.task_id == task_id).execution_options(populate_existing=True)
    ).one()


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_an_idle_upload_gives_back_its_unreceived_space_and_still_completes(
    app: Flask, client: FlaskClient, auth: dict[str, str], account: uuid.UUID, session: Session
) -> None:
    services = app.extensions["hmacfs"]
    payload = os.urandom(4 * CHUNK)
    task_id = create(client, auth, payload).json["taskId"]
    assert send(client, auth, task_id, 1, payload[CHUNK : 2 * CHUNK]).status_code == 200
    task = _task(session, task_id)
    part = services.store.part_path(task_id)
    assert _allocated(part) >= len(payload)  # preallocated
    assert account_usage(session, account, 0).charged == len(payload)
    now = datetime.now(UTC)

    assert release_idle_reservations(session, services, now) == 0  # not idle yet
    assert release_idle_reservations(session, services, now + LATER) == 1
    task = _task(session, task_id)
    assert not task.reserved
    assert unreceived_ranges(session, task) == [(0, CHUNK), (2 * CHUNK, 2 * CHUNK)]
    assert _allocated(part) < 2 * CHUNK  # only the received chunk keeps its blocks
    with part.open("rb") as handle:
        handle.seek(CHUNK)
        assert handle.read(CHUNK) == payload[CHUNK : 2 * CHUNK]  # the acknowledged chunk is intact
    usage = account_usage(session, account, 0)
    assert (usage.reserved, usage.receiving) == (0, CHUNK)
    assert release_idle_reservations(session, services, now + LATER) == 0  # released once

    for index in (0, 2, 3):
        chunk = payload[index * CHUNK : (index + 1) * CHUNK]
        assert send(client, auth, task_id, index, chunk).status_code == 200
    done = client.post(f"{API}/complete/{task_id}", headers=auth)
    assert done.status_code == 200 and done.json["hash"] == hashlib.sha256(payload).hexdigest()


def test_a_tus_upload_keeps_its_offset_bytes(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    services = app.extensions["hmacfs"]
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    payload = os.urandom(3 * CHUNK)
    created = client.post("/files/", headers={**tus, "Upload-Length": str(len(payload))})
    task_id = created.headers["Location"].rsplit("/", 1)[-1]
    # The first CHUNK bytes as an earlier PATCH left them (a PATCH here would leave its
    # transaction-level lock held by the test's never-committed outer transaction).
    fd = os.open(services.store.part_path(task_id), os.O_WRONLY)
    os.pwrite(fd, payload[:CHUNK], 0)
    os.close(fd)
    task = _task(session, task_id)
    task.upload_offset = task.bytes_received = CHUNK
    session.flush()
    assert release_idle_reservations(session, services, datetime.now(UTC) + LATER) == 1
    task = _task(session, task_id)
    assert not task.reserved and unreceived_ranges(session, task) == [(CHUNK, 2 * CHUNK)]
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    rest = client.patch(
        f"/files/{task_id}", data=payload[CHUNK:], headers={**patch, "Upload-Offset": str(CHUNK)}
    )
    assert rest.status_code == 204, rest.json
    assert _task(session, task_id).status == "Completed"
    blob = services.store.blob_path(services.store.blob_key(hashlib.sha256(payload).hexdigest()))
    assert blob.read_bytes() == payload


def test_a_chunk_being_written_is_not_punched(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    from hmacfs.storage.range_lock import PartLock

    services = app.extensions["hmacfs"]
    task_id = create(client, auth, os.urandom(2 * CHUNK)).json["taskId"]
    writer = PartLock(services.store.part_path(task_id))
    assert writer.try_lock(CHUNK, CHUNK)  # as a chunk's writer holds its range until its row commits
    try:
        assert release_idle_reservations(session, services, datetime.now(UTC) + LATER) == 0
    finally:
        writer.close()
    assert _task(session, task_id).reserved
    assert release_idle_reservations(session, services, datetime.now(UTC) + LATER) == 1
