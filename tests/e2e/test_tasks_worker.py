"""Background tasks run by real ``hmacfs worker`` processes on a fresh database.

PostgreSQL for the queue semantics (several processes, SKIP LOCKED, kill -9,
SIGTERM); one test runs the SQLite path (a single in-process slot).
"""

from __future__ import annotations

import io
import os
import signal
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session

from hmacfs.composition import build_services
from hmacfs.config import Settings, load_settings
from hmacfs.container import Services
from hmacfs.db import make_engine
from hmacfs.migrate import upgrade
from hmacfs.models import Blob, File, Pool, Task
from hmacfs.tasks import cancel_task, pause_task, resume_task
from hmacfs.tasks.crypto import decrypt_stream
from tests.pg import PgServer, free_port
from tests.seaweed import SeaweedS3
from tests.tasks.helpers import add_bundle, add_file, file_bytes, submit, wait_finished
from tests.tasks.slow_handlers import expected_output
from tests.worker_process import WorkerProcess, scrape, worker_config

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    workdir: Path
    config: Path
    settings: Settings
    services: Services
    started: list[WorkerProcess] = field(default_factory=list)

    def worker(self, concurrency: int = 1) -> WorkerProcess:
        process = WorkerProcess(self.config, concurrency).start()
        self.started.append(process)
        return process

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.services.db.sessions() as session:
            yield session
            session.commit()

    def task(self, task_id: str) -> Task:
        with self.services.db.sessions() as session:
            return session.query(Task).filter_by(task_id=task_id).one()

    def wait_for(self, task_id: str, check: Callable[[Task], bool], timeout: float = 60) -> Task:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.task(task_id)
            if check(task):
                return task
            time.sleep(0.05)
        raise AssertionError(
            f"task {task_id} never matched: {task.status} {task.progress} {task.error_message}"
        )

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()
        self.started.clear()


def _cluster(
    workdir: Path,
    url: str,
    storage: dict[str, Any] | None = None,
    roots: tuple[str, ...] = (),
    **workers: str,
) -> Cluster:
    sections = {"storage": {"fsync": False}} if storage is None else storage
    config = worker_config(
        workdir,
        url,
        **sections,
        workers=workers,
        tasks={
            "lease_duration": "2s",
            "poll_interval": "100ms",
            "checkpoint_interval": "100ms",
            "handler_modules": ["tests.tasks.slow_handlers"],
            "migration_roots": [str(workdir / "alt"), *roots],
            "migration_grace": "0s",
        },
    )
    settings = load_settings(config)
    upgrade(make_engine(url))
    services = build_services(settings)
    services.store.ensure_layout()
    return Cluster(workdir, config, settings, services)


@pytest.fixture(scope="module")
def cluster(pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    built = _cluster(tmp_path_factory.mktemp("tasks-pg"), pg_server.create_database())
    yield built
    built.stop_all()
    built.services.db.engine.dispose()


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    yield cluster
    cluster.stop_all()


@pytest.fixture(scope="module")
def s3_cluster(
    pg_server: PgServer | None, seaweed: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The cluster with its blobs in SeaweedFS (credentials in the workers' environment)."""
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    storage = {
        "storage": {"backend": "s3"},
        "storage.s3": {**seaweed.settings(f"tasks-{uuid.uuid4().hex[:8]}"), "part_size": "5MiB"},
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in seaweed.env.items():
            patch.setenv(name, value)
        built = _cluster(tmp_path_factory.mktemp("tasks-s3"), pg_server.create_database(), storage)
        yield built
        built.stop_all()
    built.services.db.engine.dispose()


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (0, 120, 255)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_type_end_to_end(workers: Cluster) -> None:
    _every_type(workers)


def test_every_type_on_s3(s3_cluster: Cluster) -> None:
    """The same tasks with the blobs in an S3 store (SeaweedFS): inputs read with ranged
    GETs, outputs written as pieces, StorageMigration to another key prefix."""
    try:
        _every_type(s3_cluster)
    finally:
        s3_cluster.stop_all()


def _every_type(workers: Cluster) -> None:
    account = uuid.uuid4()
    services = workers.services
    data = bytes(range(256)) * 4096  # 1 MiB
    with workers.session() as s:
        plain = add_file(s, services, account, data, "data.bin")
        secret = add_file(s, services, account, b"top secret " * 1000, "secret.txt")
        archive = add_file(s, services, account, _zip({"a/b.txt": b"bee", "c.txt": b"sea"}), "x.zip")
        evil = add_file(s, services, account, _zip({"../../../tmp/pwned": b"x"}), "evil.zip")
        bomb = add_file(s, services, account, _zip({"zeros": bytes(8 * 1024 * 1024)}), "bomb.zip")
        image = add_file(s, services, account, _png(), "pic.png")
        movable = [add_file(s, services, account, f"m{i}".encode(), f"m{i}") for i in range(3)]
        bundle = add_bundle(s, account)
        pool = Pool(name=f"e2e-{uuid.uuid4().hex[:6]}")
        s.add(pool)
        s.flush()
        ids = {
            "compress": submit(
                s,
                services,
                account,
                "FileCompress",
                fileIds=[str(plain.id), str(secret.id)],
                compressionFormat="tar.gz",
                outputFileName="both.tar.gz",
            ),
            "decompress": submit(
                s, services, account, "FileDecompress", fileId=str(archive.id), targetBundleId=str(bundle.id)
            ),
            "zip-slip": submit(s, services, account, "FileDecompress", fileId=str(evil.id)),
            "bomb": submit(s, services, account, "FileDecompress", fileId=str(bomb.id)),
            "encrypt": submit(s, services, account, "FileEncrypt", fileId=str(secret.id), password="pw"),
            "move": submit(
                s,
                services,
                account,
                "FileMove",
                fileIds=[str(f.id) for f in movable[:2]],
                targetPoolId=str(pool.id),
            ),
            "bulk": submit(
                s, services, account, "BulkOperation", operationType="delete", targetIds=[str(movable[2].id)]
            ),
            "migrate": submit(
                s,
                services,
                account,
                "StorageMigration",
                poolId=str(pool.id),
                targetStoragePath=str(workers.workdir / "alt"),
            ),
            "convert": submit(
                s,
                services,
                account,
                "FileConversion",
                fileId=str(image.id),
                targetFormat="webp",
                maxWidth=64,
                maxHeight=64,
            ),
            "custom": submit(s, services, account, "Custom", handler="test-slow", steps=3, delay=0.01),
        }
    workers.worker(concurrency=2)
    done = {name: wait_finished(services, task_id) for name, task_id in ids.items() if name != "migrate"}
    done["migrate"] = wait_finished(services, ids["migrate"])  # after move: the pool holds 2 files now
    failed = {name: t.error_message for name, t in done.items() if t.status != "Completed"}
    assert set(failed) == {"zip-slip", "bomb"}, failed
    assert "path traversal" in (failed["zip-slip"] or "") and "bomb" in (failed["bomb"] or "")
    assert not Path("/tmp/pwned").exists()
    with workers.session() as s:
        assert (
            len(file_bytes(s, services, done["compress"].results["resultFileId"]))
            == done["compress"].results["compressedSize"]
        )
        names = {f.name for f in s.query(File).filter(File.bundle_id == bundle.id)}
        assert names == {"a/b.txt", "c.txt"}
        stored = file_bytes(s, services, secret.id)
        assert b"".join(decrypt_stream(io.BytesIO(stored), "pw")) == b"top secret " * 1000
        assert {s.get(File, f.id).pool_id for f in movable[:2]} == {pool.id}  # type: ignore[union-attr]
        assert s.get(File, movable[2].id) is None
        with Image.open(io.BytesIO(file_bytes(s, services, done["convert"].results["resultFileId"]))) as img:
            assert img.format == "WEBP" and img.size == (64, 64)
        assert file_bytes(s, services, done["custom"].results["resultFileId"]) == expected_output(3)
    assert all(t.sealed_secret is None for t in done.values())

    with workers.session() as s:
        wrong = submit(s, services, account, "FileDecrypt", fileId=str(secret.id), password="not it")
    task = wait_finished(services, wrong)
    assert task.status == "Failed" and "wrong password" in (task.error_message or "")
    with workers.session() as s:
        assert file_bytes(s, services, secret.id) == stored


def _slow(cluster: Cluster, account: uuid.UUID, steps: int = 60, delay: float = 0.05) -> str:
    with cluster.session() as s:
        return submit(s, cluster.services, account, "Custom", handler="test-slow", steps=steps, delay=delay)


def _output(cluster: Cluster, task: Task) -> bytes:
    with cluster.session() as s:
        return file_bytes(s, cluster.services, task.results["resultFileId"])


def test_kill_9_mid_task_then_another_worker_finishes(workers: Cluster) -> None:
    task_id = _slow(workers, uuid.uuid4())
    first = workers.worker(concurrency=2)
    workers.wait_for(task_id, lambda t: t.progress >= 20)
    first.kill()
    workers.worker(concurrency=1)
    task = wait_finished(workers.services, task_id)
    assert task.status == "Completed", task.error_message
    assert task.attempts == 2 and task.results["resumedFrom"] >= 10
    assert _output(workers, task) == expected_output(60)


def test_pause_resume_and_cancel(workers: Cluster) -> None:
    account = uuid.uuid4()
    services = workers.services
    paused_id, cancelled_id = _slow(workers, account), _slow(workers, account)
    workers.worker(concurrency=2)
    for task_id in (paused_id, cancelled_id):
        workers.wait_for(task_id, lambda t: t.progress >= 10)
    with workers.session() as s:
        pause_task(s, services, account, paused_id)
        cancel_task(s, services, account, cancelled_id)
    paused = workers.wait_for(paused_id, lambda t: t.lease_owner is None)
    assert paused.status == "Paused" and paused.attempts == 0
    cancelled = workers.wait_for(cancelled_id, lambda t: t.lease_owner is None)
    assert cancelled.status == "Cancelled" and cancelled.sealed_secret is None
    assert not list((services.store.root / "parts").glob(f"task-{cancelled_id}*"))
    time.sleep(0.3)
    assert workers.task(paused_id).progress == paused.progress  # nothing runs while paused
    with workers.session() as s:
        resume_task(s, services, account, paused_id)
    task = wait_finished(services, paused_id)
    assert task.status == "Completed" and task.results["resumedFrom"] > 0
    assert _output(workers, task) == expected_output(60)


def test_sigterm_releases_the_lease_without_counting(workers: Cluster) -> None:
    task_id = _slow(workers, uuid.uuid4())
    worker = workers.worker(concurrency=1)
    workers.wait_for(task_id, lambda t: t.progress >= 10)
    assert worker.stop(signal.SIGTERM) == 0
    released = workers.task(task_id)
    assert (released.status, released.lease_owner, released.attempts) == ("Pending", None, 0)
    workers.worker(concurrency=1)
    task = wait_finished(workers.services, task_id)
    assert task.status == "Completed" and task.results["resumedFrom"] > 0
    assert _output(workers, task) == expected_output(60)


def test_worker_on_sqlite(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, f"sqlite:///{tmp_path / 'tasks.db'}")
    account = uuid.uuid4()
    try:
        with cluster.session() as s:
            file = add_file(s, cluster.services, account, b"sqlite " * 1000, "s.txt")
            compress = submit(s, cluster.services, account, "FileCompress", fileIds=[str(file.id)])
        slow = _slow(cluster, account, steps=5, delay=0.01)
        cluster.worker(concurrency=3)  # SQLite: one slot whatever is asked
        for task_id in (compress, slow):
            task = wait_finished(cluster.services, task_id)
            assert task.status == "Completed", task.error_message
        assert _output(cluster, cluster.task(slow)) == expected_output(5)
    finally:
        cluster.stop_all()
        cluster.services.db.engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_fixed_slots_export_their_task_metrics(
    backend: str, pg_server: PgServer | None, tmp_path: Path
) -> None:
    """``--concurrency 2`` (one in-process slot on SQLite) with ``[workers] metrics_bind``:
    /metrics counts the tasks every slot ran, by type and outcome."""
    if backend == "postgresql" and pg_server is None:
        pytest.skip("PostgreSQL not available")
    url = (
        pg_server.create_database() if pg_server and backend == "postgresql" else f"sqlite:///{tmp_path}/t.db"
    )
    port = free_port()
    cluster, account = _cluster(tmp_path, url, metrics_bind=f"127.0.0.1:{port}"), uuid.uuid4()
    try:
        with cluster.session() as s:
            file = add_file(s, cluster.services, account, b"counted " * 1000, "c.txt")
            compress = submit(s, cluster.services, account, "FileCompress", fileIds=[str(file.id)])
            broken = submit(s, cluster.services, account, "FileDecompress", fileId=str(file.id))
        slow = [_slow(cluster, account, steps=2, delay=0.01) for _ in range(4)]
        cluster.worker(concurrency=2)
        statuses = [wait_finished(cluster.services, task).status for task in (compress, broken, *slow)]
        assert statuses == ["Completed", "Failed"] + ["Completed"] * 4
        metrics: dict[str, float] = {}
        deadline = time.monotonic() + 10
        while metrics.get("hmacfs_tasks_total{status=Completed,type=Custom}") != 4:
            assert time.monotonic() < deadline, metrics  # counted just after the commit
            metrics = scrape(port)
        assert metrics["hmacfs_tasks_total{status=Completed,type=FileCompress}"] == 1
        assert metrics["hmacfs_tasks_total{status=Failed,type=FileDecompress}"] == 1
        assert metrics["hmacfs_task_duration_seconds_count{type=Custom}"] == 4
    finally:
        cluster.stop_all()
        cluster.services.db.engine.dispose()


def test_no_parts_left_after_an_interrupted_run_completes(workers: Cluster) -> None:
    task_id = _slow(workers, uuid.uuid4(), steps=30)
    first = workers.worker(concurrency=1)
    workers.wait_for(task_id, lambda t: t.progress >= 20)
    first.kill()
    workers.worker(concurrency=1)
    assert wait_finished(workers.services, task_id).status == "Completed"
    assert not list((workers.services.store.root / "parts").glob(f"task-{task_id}*"))


def _slots(process: WorkerProcess) -> list[int]:
    assert process.process is not None
    pid = process.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_a_killed_slot_is_replaced(workers: Cluster) -> None:
    worker = workers.worker(concurrency=2)
    deadline = time.monotonic() + 30
    while len(_slots(worker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _slots(worker)[0]
    os.kill(victim, signal.SIGKILL)
    while (victim in _slots(worker) or len(_slots(worker)) < 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim not in _slots(worker) and len(_slots(worker)) == 2
    task_id = _slow(workers, uuid.uuid4(), steps=2, delay=0.01)
    assert wait_finished(workers.services, task_id).status == "Completed"


def test_worker_survives_the_database_dropping_its_connections(workers: Cluster) -> None:
    """Workers do not ping pooled connections; a dropped one fails once, is replaced, and work goes on."""
    account = uuid.uuid4()
    workers.worker(concurrency=2)
    first = _slow(workers, account, steps=5, delay=0.01)
    assert wait_finished(workers.services, first).status == "Completed"
    database = workers.services.db.engine.url.database
    with workers.services.db.engine.connect() as admin:
        dropped = admin.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        ).scalar()
        admin.commit()
    assert dropped and dropped >= 2  # at least one pooled connection per slot
    second = _slow(workers, account, steps=5, delay=0.01)
    task = wait_finished(workers.services, second)
    assert task.status == "Completed", task.error_message
    assert all(process.alive for process in workers.started)


def test_storage_migration_between_local_and_s3(
    pg_server: PgServer | None, seaweed: SeaweedS3, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A local store with [storage.s3] configured: StorageMigration moves a pool's blobs
    into the bucket (s3:// root), then back to a directory; every byte is read from
    wherever its row points, and the old copies go."""
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    workdir, prefix = tmp_path_factory.mktemp("migrate-s3"), f"mig-{uuid.uuid4().hex[:8]}/"
    target = f"s3://{seaweed.bucket}/{prefix}"
    storage = {"storage": {"fsync": False}, "storage.s3": seaweed.settings()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in seaweed.env.items():
            patch.setenv(name, value)
        built = _cluster(workdir, pg_server.create_database(), storage, roots=(target,))
        try:
            _migrate_there_and_back(built, seaweed, target, prefix)
        finally:
            built.stop_all()
            built.services.db.engine.dispose()


def _migrate_there_and_back(cluster: Cluster, seaweed: SeaweedS3, target: str, prefix: str) -> None:
    account, services = uuid.uuid4(), cluster.services
    contents = [os.urandom(300 * 1024), os.urandom(6 * 1024 * 1024)]
    with cluster.session() as s:
        pool = Pool(name=f"mig-{uuid.uuid4().hex[:6]}")
        s.add(pool)
        s.flush()
        files = [
            add_file(s, services, account, data, f"f{i}", pool_id=pool.id) for i, data in enumerate(contents)
        ]
    cluster.worker()
    for root, in_bucket in ((target, True), (str(cluster.workdir / "alt"), False)):
        with cluster.session() as s:
            task = submit(
                s, services, account, "StorageMigration", poolId=str(pool.id), targetStoragePath=root
            )
        done = wait_finished(services, task)
        assert done.status == "Completed", done.error_message
        with cluster.session() as s:
            for file, data in zip(files, contents, strict=True):
                blob = s.get(Blob, s.get(File, file.id).blob_id)  # type: ignore[union-attr]
                assert blob is not None and blob.storage_root == root
                assert file_bytes(s, services, file.id) == data
        listed = seaweed.client().list_objects_v2(Bucket=seaweed.bucket, Prefix=f"{prefix}blobs/")
        assert len(listed.get("Contents", [])) == (len(contents) if in_bucket else 0)
    first_copies = (cluster.workdir / "storage" / "blobs").rglob("*")
    assert not [path for path in first_copies if path.is_file()]  # gone after the first move
