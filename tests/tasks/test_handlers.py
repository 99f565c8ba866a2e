"""Every built-in handler on real files, run by the real worker loop, on both backends."""

from __future__ import annotations

import io
import tarfile
import threading
import uuid
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from hmacfs.composition import task_handlers
from hmacfs.container import Services
from hmacfs.files import blob_location
from hmacfs.models import Blob, File, Pool, Task
from hmacfs.tasks.crypto import decrypt_stream
from tests.tasks.conftest import drain
from tests.tasks.helpers import add_bundle, add_file, file_bytes, submit


def _task(session: Session, task_id: str) -> Task:
    task = session.query(Task).filter_by(task_id=task_id).one()
    session.refresh(task)
    return task


def _run(session: Session, services: Services, account: uuid.UUID, type: str, **params: object) -> Task:
    task_id = submit(session, services, account, type, **params)
    drain(services)
    return _task(session, task_id)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_compress(session: Session, services: Services, account: uuid.UUID, fmt: str) -> None:
    one = add_file(session, services, account, b"hello " * 5000, "a.txt")
    two = add_file(session, services, account, bytes(range(256)) * 40, "a.txt")
    task = _run(
        session,
        services,
        account,
        "FileCompress",
        fileIds=[str(one.id), str(two.id)],
        compressionFormat=fmt,
        compressionLevel=9,
        outputFileName=f"out.{fmt}",
    )
    assert task.status == "Completed", task.error_message
    archive = file_bytes(session, services, task.results["resultFileId"])
    assert task.results["compressedSize"] == len(archive)
    assert 0 < task.results["compressionRatio"] < 1
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            contents = {name: z.read(name) for name in z.namelist()}
    else:
        with tarfile.open(fileobj=io.BytesIO(archive)) as t:
            contents = {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]
    assert contents == {"a.txt": b"hello " * 5000, "a (1).txt": bytes(range(256)) * 40}
    result = session.get(File, uuid.UUID(task.results["resultFileId"]))
    assert result is not None and result.account_id == account and result.name == f"out.{fmt}"


def _zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            z.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def _targz(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for member in members:
            payload = data.get(member.name)
            if payload is not None:
                member.size = len(payload)
            t.addfile(member, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def test_decompress_zip_into_a_bundle(session: Session, services: Services, account: uuid.UUID) -> None:
    bundle = add_bundle(session, account)
    archive = add_file(session, services, account, _zip({"dir/x.txt": b"x" * 100, "y.bin": b"yy"}), "a.zip")
    task = _run(
        session, services, account, "FileDecompress", fileId=str(archive.id), targetBundleId=str(bundle.id)
    )
    assert task.status == "Completed", task.error_message
    files = session.query(File).filter(File.bundle_id == bundle.id).all()
    assert {f.name: file_bytes(session, services, f.id) for f in files} == {
        "dir/x.txt": b"x" * 100,
        "y.bin": b"yy",
    }
    assert task.results["filesExtracted"] == 2


def test_decompress_targz(session: Session, services: Services, account: uuid.UUID) -> None:
    member = tarfile.TarInfo("docs/readme.md")
    archive = add_file(session, services, account, _targz([member], {"docs/readme.md": b"# hi\n"}), "a.tgz")
    task = _run(session, services, account, "FileDecompress", fileId=str(archive.id))
    assert task.status == "Completed", task.error_message
    created = session.get(File, uuid.UUID(task.results["fileIds"][0]))
    assert (
        created is not None and created.name == "docs/readme.md" and created.content_type == "text/markdown"
    )


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (_zip({"../../evil.sh": b"boom"}), "path traversal"),
        (_zip({"/etc/cron.d/evil": b"boom"}), "absolute path"),
        (_zip({}, links=("link",)), "is a link"),
        (_zip({"zeros": bytes(3 * 1024 * 1024)}), "decompression bomb"),
        (_zip({f"f{i}": b"" for i in range(60)}), "more than 50 entries"),
        (_targz([_special("evil", tarfile.SYMTYPE)], {}), "is a link"),
        (_targz([_special("hard", tarfile.LNKTYPE)], {}), "is a link"),
        (_targz([_special("dev", tarfile.CHRTYPE)], {}), "device"),
        (_targz([tarfile.TarInfo("a/../../x")], {"a/../../x": b"1"}), "path traversal"),
        (b"plain text, no archive", "not a zip or tar.gz"),
    ],
)
def test_decompress_refuses_hostile_archives(
    session: Session, services: Services, account: uuid.UUID, archive: bytes, message: str
) -> None:
    source = add_file(session, services, account, archive, "evil.zip")
    before = session.query(File).count()
    task = _run(session, services, account, "FileDecompress", fileId=str(source.id))
    assert task.status == "Failed"
    assert message in (task.error_message or "")
    assert session.query(File).count() == before
    assert not list((services.store.root / "parts").glob("task-*"))


def test_encrypt_then_decrypt(session: Session, services: Services, account: uuid.UUID) -> None:
    data = bytes(range(256)) * 1000 + b"tail"
    file = add_file(session, services, account, data, "secret.bin")
    task = _run(session, services, account, "FileEncrypt", fileId=str(file.id), password="correct horse")
    assert task.status == "Completed", task.error_message
    assert task.sealed_secret is None
    session.refresh(file)
    assert file.encrypted and file.encryption and file.encryption["algorithm"] == "AES-256-GCM-STREAM"
    assert file.size == len(data)
    stored = file_bytes(session, services, file.id)
    assert data[:64] not in stored
    assert b"".join(decrypt_stream(io.BytesIO(stored), "correct horse")) == data

    wrong = _run(session, services, account, "FileDecrypt", fileId=str(file.id), password="battery staple")
    assert wrong.status == "Failed" and "wrong password" in (wrong.error_message or "")
    session.refresh(file)
    assert file.encrypted and file_bytes(session, services, file.id) == stored

    right = _run(session, services, account, "FileDecrypt", fileId=str(file.id), password="correct horse")
    assert right.status == "Completed", right.error_message
    session.refresh(file)
    assert not file.encrypted and file.encryption is None
    assert file_bytes(session, services, file.id) == data


def test_move_and_bulk_operations(session: Session, services: Services, account: uuid.UUID) -> None:
    pool = Pool(name=f"p-{uuid.uuid4().hex[:6]}")
    session.add(pool)
    bundle = add_bundle(session, account)
    files = [add_file(session, services, account, f"file {i}".encode(), f"{i}.txt") for i in range(3)]
    ids = [str(f.id) for f in files]
    moved = _run(
        session,
        services,
        account,
        "FileMove",
        fileIds=ids,
        targetPoolId=str(pool.id),
        targetBundleId=str(bundle.id),
    )
    assert moved.status == "Completed" and moved.results["filesProcessed"] == 3
    for f in files:
        session.refresh(f)
        assert (f.pool_id, f.bundle_id) == (pool.id, bundle.id)

    copied = _run(session, services, account, "BulkOperation", operationType="copy", targetIds=ids[:2])
    assert copied.status == "Completed", copied.error_message
    assert session.query(File).filter(File.account_id == account).count() == 5
    blob = session.get(Blob, files[0].blob_id, populate_existing=True)
    assert blob is not None and blob.ref_count == 2

    expiry = _run(
        session,
        services,
        account,
        "BulkOperation",
        operationType="set-expiry",
        targetIds=ids[:1],
        operationParameters={"expiresAt": "2031-01-01T00:00:00Z"},
    )
    assert expiry.status == "Completed"
    session.refresh(files[0])
    assert files[0].expired_at is not None and files[0].expired_at.year == 2031

    deleted = _run(session, services, account, "BulkOperation", operationType="delete", targetIds=ids)
    assert deleted.status == "Completed" and deleted.results["processed"] == 3
    assert session.query(File).filter(File.id.in_([f.id for f in files])).count() == 0


def test_storage_migration(session: Session, services: Services, account: uuid.UUID, tmp_path: Path) -> None:
    pool = Pool(name=f"m-{uuid.uuid4().hex[:6]}")
    session.add(pool)
    session.flush()
    files = [
        add_file(session, services, account, f"blob {i}".encode() * 100, pool_id=pool.id) for i in range(3)
    ]
    old_paths = [blob_location(services.store, session.get(Blob, f.blob_id)) for f in files]  # type: ignore[arg-type]
    target = tmp_path / "alt"
    task = _run(
        session, services, account, "StorageMigration", poolId=str(pool.id), targetStoragePath=str(target)
    )
    assert task.status == "Completed", task.error_message
    assert task.results["blobsMoved"] == 3
    for f, old in zip(files, old_paths, strict=True):
        blob = session.get(Blob, f.blob_id, populate_existing=True)
        assert blob is not None and blob.storage_root == str(target.resolve())
        assert file_bytes(session, services, f.id) == f"blob {files.index(f)}".encode() * 100
        assert not old.exists()


def test_migration_refuses_unlisted_roots(session: Session, services: Services, account: uuid.UUID) -> None:
    from hmacfs.errors import ValidationFailed
    from hmacfs.tasks import submit_task

    with pytest.raises(ValidationFailed, match="targetStoragePath"):
        submit_task(
            session,
            services,
            account,
            "StorageMigration",
            {"poolId": "00000000-0000-0000-0000-000000000001", "targetStoragePath": "/etc"},
        )


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 10, 10, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_image_conversion_and_thumbnail(
    session: Session, services: Services, account: uuid.UUID, fmt: str
) -> None:
    source = add_file(session, services, account, _png(400, 200), "pic.png")
    task = _run(
        session, services, account, "FileConversion", fileId=str(source.id), targetFormat=fmt, maxWidth=100
    )
    assert task.status == "Completed", task.error_message
    with Image.open(io.BytesIO(file_bytes(session, services, task.results["resultFileId"]))) as image:
        assert image.format == fmt.upper() and image.size == (100, 50)


def test_conversion_of_a_non_image_fails_clearly(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    source = add_file(session, services, account, b"not an image", "x.png")
    task = _run(session, services, account, "FileConversion", fileId=str(source.id), targetFormat="png")
    assert task.status == "Failed" and "not an image" in (task.error_message or "")


def test_custom_handler(session: Session, services: Services, account: uuid.UUID) -> None:
    task = _run(session, services, account, "Custom", handler="test-count", value=42)
    assert task.status == "Completed" and task.custom_type == "test-count"
    assert task.results == {"echo": 42}


def test_tasks_only_touch_their_own_files(session: Session, services: Services, account: uuid.UUID) -> None:
    from hmacfs.errors import ValidationFailed
    from hmacfs.tasks import submit_task

    theirs = add_file(session, services, uuid.uuid4(), b"theirs")
    with pytest.raises(ValidationFailed, match="fileIds: file not found"):
        submit_task(session, services, account, "FileCompress", {"fileIds": [str(theirs.id)]})


class _StopAfter(threading.Event):
    """A stop flag that trips itself after ``calls`` checks (a SIGTERM mid-task)."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls < 0 or super().is_set()


@pytest.mark.parametrize("size", [10 * 4096 + 100, 12 * 4096])
def test_encrypt_and_decrypt_resume_after_an_interruption(
    session: Session, services: Services, account: uuid.UUID, size: int
) -> None:
    from dataclasses import replace

    from hmacfs.tasks.worker import Worker

    settings = services.settings
    small = replace(
        services,
        settings=settings.model_copy(
            update={"tasks": settings.tasks.model_copy(update={"encryption_segment_size": 4096})}
        ),
    )
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    file = add_file(session, small, account, data, "resume.bin")
    for type, resumed in (("FileEncrypt", "encrypt"), ("FileDecrypt", "decrypt")):
        task_id = submit(session, small, account, type, fileId=str(file.id), password="pw")
        Worker(small, _StopAfter(5), task_handlers(small.settings)).run_once()
        interrupted = _task(session, task_id)
        assert (interrupted.status, interrupted.attempts) == ("Pending", 0), resumed
        assert interrupted.results["_checkpoint"]["segments"] >= 3
        drain(small)
        task = _task(session, task_id)
        assert task.status == "Completed", task.error_message
        assert task.results["resumedFromSegment"] >= 3
        session.refresh(file)
        stored = file_bytes(session, small, file.id)
        if type == "FileEncrypt":
            assert b"".join(decrypt_stream(io.BytesIO(stored), "pw")) == data
        else:
            assert stored == data
    assert not list((small.store.root / "parts").glob("task-*"))
