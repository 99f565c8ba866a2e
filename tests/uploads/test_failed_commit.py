"""A completion whose commit fails strands nothing: it is answered 503 and a retry finishes it.

The commit is made to fail the way a terminated database session makes it fail
(an OperationalError raised by COMMIT); what is on disk afterwards is also what a
process killed between the blob link and the commit leaves behind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hmacfs.files.orphans import collect_orphan_files
from hmacfs.models import Blob, File, UploadTask
from hmacfs.models.status import UploadStatus
from tests.web.test_drive import API, CHUNK, create, send
from tests.web.test_xep0363 import _query


class _CommitFailure:
    """Makes the next ``count`` commits of any session raise, as a lost connection does."""

    def __init__(self) -> None:
        self.remaining = 0

    def __call__(self, session: Session) -> None:
        if self.remaining > 0:
            self.remaining -= 1
            raise OperationalError(
                "COMMIT", {}, Exception("terminating connection due to administrator command")
            )


@pytest.fixture
def failing_commits() -> Iterator[_CommitFailure]:
    failure = _CommitFailure()
    event.listen(Session, "before_commit", failure)
    yield failure
    event.remove(Session, "before_commit", failure)


def _sent_upload(client: FlaskClient, auth: dict[str, str], payload: bytes) -> str:
    task: str = create(client, auth, payload).json["taskId"]
    for index in range(-(-len(payload) // CHUNK)):
        assert (
            send(client, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code == 200
        )
    return task


def _part(app: Flask, task: str) -> Path:
    return Path(app.extensions["hmacfs"].store.part_path(task))


def _blob_files(app: Flask) -> list[Path]:
    return list(app.extensions["hmacfs"].store.blob_files())


def test_a_failed_completion_commit_is_a_503_and_the_retry_completes(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session, failing_commits: _CommitFailure
) -> None:
    payload = os.urandom(CHUNK * 2 + 11)
    task = _sent_upload(client, auth, payload)

    failing_commits.remaining = 1
    failed = client.post(f"{API}/complete/{task}", headers=auth)
    assert failed.status_code == 503 and failed.json["code"] == "DATABASE_UNAVAILABLE"
    assert failed.headers["Retry-After"] == "1"
    # Nothing moved away: the part is whole and the upload still open.
    assert _part(app, task).read_bytes()[: len(payload)] == payload
    row = session.scalars(select(UploadTask).where(UploadTask.task_id == task)).one()
    assert row.status == UploadStatus.IN_PROGRESS and row.file_id is None

    done = client.post(f"{API}/complete/{task}", headers=auth)
    assert done.status_code == 200, done.json
    assert done.json["hash"] == hashlib.sha256(payload).hexdigest()
    assert not _part(app, task).exists()  # dropped once the rows committed
    file_id = done.json["id"]
    assert client.get(f"/download/{file_id}", headers=auth).data == payload
    assert client.post(f"{API}/complete/{task}", headers=auth).json["id"] == file_id


def test_the_collector_removes_a_link_left_by_a_failed_commit_and_the_retry_links_again(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session, failing_commits: _CommitFailure
) -> None:
    payload = os.urandom(CHUNK + 3)
    task = _sent_upload(client, auth, payload)
    failing_commits.remaining = 1
    assert client.post(f"{API}/complete/{task}", headers=auth).status_code == 503
    [linked] = _blob_files(app)  # as a process killed before its commit leaves it: no row
    assert session.scalars(select(Blob)).all() == [] or linked.name not in {
        b.storage_key.rsplit("/", 1)[-1] for b in session.scalars(select(Blob))
    }

    store = app.extensions["hmacfs"].store
    now = datetime.now(UTC)
    assert collect_orphan_files(session, store, now) == 0  # too recent: perhaps a commit in flight
    assert collect_orphan_files(session, store, now + timedelta(hours=2)) == 1
    assert not linked.exists() and _part(app, task).exists()  # the open upload keeps its part

    done = client.post(f"{API}/complete/{task}", headers=auth)
    assert done.status_code == 200
    assert client.get(f"/download/{done.json['id']}", headers=auth).data == payload


def test_the_collector_removes_the_part_of_a_completed_upload_and_keeps_blobs_with_rows(
    app: Flask, client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    payload = os.urandom(CHUNK + 5)
    task = _sent_upload(client, auth, payload)
    done = client.post(f"{API}/complete/{task}", headers=auth)
    assert done.status_code == 200
    [blob] = _blob_files(app)
    os.link(blob, _part(app, task))  # a process killed after its commit, before dropping the part
    open_task = _sent_upload(client, auth, os.urandom(CHUNK))  # untouched, but still open

    later = datetime.now(UTC) + timedelta(hours=2)
    assert collect_orphan_files(session, app.extensions["hmacfs"].store, later) == 1
    assert not _part(app, task).exists() and _part(app, open_task).exists()
    assert client.get(f"/download/{done.json['id']}", headers=auth).data == payload


def test_a_one_shot_put_whose_commit_fails_leaves_no_part_and_can_be_sent_again(
    app: Flask, client: FlaskClient, session: Session, failing_commits: _CommitFailure
) -> None:
    slot, body = "commit/fails.bin", os.urandom(3000)
    url = f"/upload/{slot}?{_query(slot, len(body))}"
    failing_commits.remaining = 1
    failed = client.put(url, data=body)
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "1"
    assert app.extensions["hmacfs"].store.part_files() == []  # nobody would ever resume it
    assert session.scalars(select(File).where(File.path == slot)).first() is None

    assert client.put(url, data=body).status_code == 201
    assert client.get(f"/upload/{slot}").data == body
