"""FileMove and BulkOperation move: the bytes follow a file into a pool with its own storage root."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.files import blob_location
from hmacfs.models import Blob, File, Pool, Task
from tests.tasks.conftest import drain
from tests.tasks.helpers import add_file, file_bytes, submit


def _run(session: Session, services: Services, account: uuid.UUID, type: str, **params: object) -> Task:
    task_id = submit(session, services, account, type, **params)
    drain(services)
    session.expire_all()
    return session.query(Task).filter_by(task_id=task_id).one()


def _pool(session: Session, root: Path | None) -> Pool:
    pool = Pool(name=f"p-{uuid.uuid4().hex[:6]}", storage_path=None if root is None else str(root))
    session.add(pool)
    session.flush()
    return pool


def _blob(session: Session, file: File) -> Blob:
    session.refresh(file)
    blob = session.get(Blob, file.blob_id, populate_existing=True)
    assert blob is not None
    return blob


def test_a_file_alone_on_its_blob_takes_the_blob_along(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    rooted, plain = _pool(session, tmp_path / "rooted"), _pool(session, None)
    file = add_file(session, services, account, b"moving bytes" * 1000)
    old = blob_location(services.store, _blob(session, file))
    task = _run(session, services, account, "FileMove", fileIds=[str(file.id)], targetPoolId=str(rooted.id))
    assert task.status == "Completed", task.error_message
    blob = _blob(session, file)
    assert file.pool_id == rooted.id and blob.storage_root == str(tmp_path / "rooted")
    assert blob_location(services.store, blob) == tmp_path / "rooted" / blob.storage_key
    assert file_bytes(session, services, file.id) == b"moving bytes" * 1000
    assert not old.exists()  # the old copy went after tasks.migration_grace (0s here)

    back = _run(session, services, account, "FileMove", fileIds=[str(file.id)], targetPoolId=str(plain.id))
    assert back.status == "Completed", back.error_message
    blob = _blob(session, file)
    assert blob.storage_root is None and file_bytes(session, services, file.id) == b"moving bytes" * 1000
    assert not (tmp_path / "rooted" / blob.storage_key).exists()


def test_a_shared_blob_stays_for_the_others_and_the_mover_gets_its_own_copy(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    rooted = _pool(session, tmp_path / "rooted")
    mover, stayer = (add_file(session, services, account, b"shared content") for _ in range(2))
    shared = _blob(session, stayer)
    assert mover.blob_id == stayer.blob_id and shared.ref_count == 2
    task = _run(session, services, account, "FileMove", fileIds=[str(mover.id)], targetPoolId=str(rooted.id))
    assert task.status == "Completed", task.error_message
    own = _blob(session, mover)
    assert own.id != shared.id and not own.shared and own.ref_count == 1
    assert own.storage_root == str(tmp_path / "rooted")
    assert blob_location(services.store, own).is_relative_to(tmp_path / "rooted")
    shared = _blob(session, stayer)
    assert shared.ref_count == 1 and shared.storage_root is None
    assert blob_location(services.store, shared).exists()  # another file still references it
    assert (
        file_bytes(session, services, mover.id)
        == file_bytes(session, services, stayer.id)
        == b"shared content"
    )


def test_bulk_move_moves_bytes_and_a_same_root_move_copies_nothing(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    first, second = _pool(session, tmp_path / "one"), _pool(session, tmp_path / "one")
    files = [add_file(session, services, account, f"bulk {i}".encode()) for i in range(2)]
    ids = [str(f.id) for f in files]
    bulk = _run(
        session, services, account, "BulkOperation", operationType="move", targetIds=ids,
        operationParameters={"targetPoolId": str(first.id)},
    )  # fmt: skip
    assert bulk.status == "Completed", bulk.error_message
    keys = {f.id: _blob(session, f).storage_key for f in files}
    assert all(_blob(session, f).storage_root == str(tmp_path / "one") for f in files)
    again = _run(session, services, account, "FileMove", fileIds=ids, targetPoolId=str(second.id))
    assert again.status == "Completed", again.error_message
    for index, file in enumerate(files):
        blob = _blob(session, file)
        assert file.pool_id == second.id and blob.storage_key == keys[file.id]
        assert file_bytes(session, services, file.id) == f"bulk {index}".encode()


def test_stale_entries_name_a_root_and_a_key_and_old_path_entries_still_parse() -> None:
    from hmacfs.tasks.handlers.relocation import _parse_stale, stale_entry

    key = "blobs/ab/cd/" + "ab" * 32
    switched, root, parsed = _parse_stale(stale_entry("/srv/pool", key))
    assert (root, parsed) == ("/srv/pool", key) and switched <= time.time()
    assert _parse_stale(stale_entry(None, key))[1:] == (None, key)
    # A run paused before the port recorded "time|path"; it resumes after an upgrade.
    assert _parse_stale(f"12.5|/srv/storage/{key}") == (12.5, "/srv/storage", key)
