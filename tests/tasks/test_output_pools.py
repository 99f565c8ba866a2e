"""Task outputs land under their pool's storage path, as uploads into that pool do."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from hmacfs.composition import cleanup_steps
from hmacfs.container import Services
from hmacfs.maintenance import run_cleanup
from hmacfs.models import Blob, File, Pool, Task
from hmacfs.storage.local import normal_root
from tests.tasks.conftest import drain
from tests.tasks.helpers import add_file, file_bytes, submit


def _run(session: Session, services: Services, account: uuid.UUID, type: str, **params: object) -> Task:
    task_id = submit(session, services, account, type, **params)
    drain(services)
    session.expire_all()
    return session.query(Task).filter_by(task_id=task_id).one()


def _rooted_pool(session: Session, root: Path) -> Pool:
    """A pool keeping its files under ``root`` (made here)."""
    root.mkdir()
    pool = Pool(name=f"p-{uuid.uuid4().hex[:6]}", storage_path=str(normal_root(root)))
    session.add(pool)
    session.flush()
    return pool


def _blob(session: Session, file_id: object) -> Blob:
    file = session.get(File, uuid.UUID(str(file_id)), populate_existing=True)
    assert file is not None
    blob = session.get(Blob, file.blob_id, populate_existing=True)
    assert blob is not None
    return blob


def _leftover_parts(root: Path) -> list[Path]:
    parts = root / "parts"
    return list(parts.iterdir()) if parts.exists() else []


def test_an_archive_of_a_pools_file_is_stored_under_the_pools_path(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    root = tmp_path / "pool-root"
    pool = _rooted_pool(session, root)
    file = add_file(session, services, account, b"pooled bytes " * 500, name="a.txt", pool_id=pool.id)
    task = _run(session, services, account, "FileCompress", fileIds=[str(file.id)])
    assert task.status == "Completed", task.error_message
    result = task.results["resultFileId"]
    blob = _blob(session, result)
    assert blob.storage_root == pool.storage_path
    assert (normal_root(root) / blob.storage_key).is_file()
    assert file_bytes(session, services, result)[:2] == b"PK"  # a zip, read through its blob row
    assert _leftover_parts(services.store.root) == [] and _leftover_parts(root) == []


def test_encrypting_stores_a_pools_file_under_its_path(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    root = tmp_path / "pool-root"
    pool = _rooted_pool(session, root)
    data = b"secret pooled bytes " * 2000
    file = add_file(session, services, account, data, pool_id=pool.id)
    plain_blob = file.blob_id  # stored under the store's root by the helper
    encrypted = _run(session, services, account, "FileEncrypt", fileId=str(file.id), password="correct horse")
    assert encrypted.status == "Completed", encrypted.error_message
    assert _blob(session, file.id).storage_root == pool.storage_path
    decrypted = _run(session, services, account, "FileDecrypt", fileId=str(file.id), password="correct horse")
    assert decrypted.status == "Completed", decrypted.error_message
    # The plaintext is still stored (its blob awaits the collector): deduplication
    # references it where it is rather than keeping a second copy under the pool's path.
    assert _blob(session, file.id).id == plain_blob
    assert file_bytes(session, services, file.id) == data


def test_cleanup_removes_output_parts_a_crash_left_in_a_pools_path_once_their_task_ended(
    session: Session, services: Services, account: uuid.UUID, tmp_path: Path
) -> None:
    root = tmp_path / "pool-root"
    _rooted_pool(session, root)
    file = add_file(session, services, account, b"input " * 100)
    finished = _run(session, services, account, "FileCompress", fileIds=[str(file.id)])
    assert finished.status == "Completed", finished.error_message
    pending = submit(session, services, account, "FileCompress", fileIds=[str(file.id)])
    parts = normal_root(root) / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    stray = {
        "finished": parts / f"task-{finished.task_id}-0a1b2c3d-archive.part",
        "gone": parts / f"task-{uuid.uuid4().hex}-0a1b2c3d-archive.part",
        "pending": parts / f"task-{pending}-0a1b2c3d-archive.part",
        "upload": parts / f"{uuid.uuid4().hex}.part",  # an upload's part: not the tasks' business
    }
    for path in stray.values():
        path.write_bytes(b"left behind")
    report = run_cleanup(services, cleanup_steps())
    assert report is not None and report["tasks.stray_parts"] == 2
    assert not stray["finished"].exists() and not stray["gone"].exists()
    assert stray["pending"].exists() and stray["upload"].exists()
