"""``hmacfs doctor`` run as an operator would, on both databases, healthy and broken."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hmacfs.config import load_settings
from hmacfs.db import make_engine
from hmacfs.doctor import Limits, check_clock, doctor_engine, format_size, run_checks
from hmacfs.migrate import upgrade
from hmacfs.models import Blob
from tests.conftest import new_database_url
from tests.pg import PgServer, free_port
from tests.redis_server import redis_url
from tests.test_cli import good_config, run


def _config(tmp_path: Path, url: str, **extra: dict[str, object]) -> Path:
    return good_config(tmp_path, database={"url": url}, **extra)


def _lines(output: str) -> dict[str, str]:
    """check name -> status, from lines like ``ok   database: ...``."""
    found = {}
    for line in output.splitlines():
        status, _, rest = line.partition(" ")
        found[rest.strip().partition(":")[0]] = status
    return found


def test_a_healthy_node_passes_every_check(backend: str, pg_server: PgServer | None, tmp_path: Path) -> None:
    url = new_database_url(backend, pg_server, tmp_path)
    upgrade(make_engine(url))
    result = run("doctor", "--min-free", "1MB", config=_config(tmp_path, url))
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = _lines(result.stdout)
    assert list(statuses) == ["config", "database", "migrations", "storage", "clock", "blob store"]
    assert statuses["clock"] == ("ok" if backend == "postgresql" else "skip")
    assert all(status in ("ok", "skip") for status in statuses.values())
    assert "at head" in result.stdout


def test_an_unmigrated_database_fails_migrations(
    backend: str, pg_server: PgServer | None, tmp_path: Path
) -> None:
    url = new_database_url(backend, pg_server, tmp_path)
    upgrade(make_engine(url), "0005_upload_running_hash")
    result = run("doctor", "--min-free", "1MB", config=_config(tmp_path, url))
    assert result.returncode == 1
    assert "FAIL migrations: at 0005_upload_running_hash, head is" in result.stdout


def test_an_unreachable_database_fails_and_skips_what_needs_it(tmp_path: Path) -> None:
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing"
    result = run("doctor", "--min-free", "1MB", config=_config(tmp_path, url))
    assert result.returncode == 1
    statuses = _lines(result.stdout)
    assert statuses["database"] == "FAIL" and statuses["storage"] == "ok"
    assert statuses["migrations"] == statuses["clock"] == statuses["blob store"] == "skip"
    assert "unreachable" in result.stdout and "postgres@127.0.0.1" in result.stdout


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = run("doctor", config=_config(tmp_path, f"sqlite:///{missing}"))
    assert result.returncode == 1 and "no such file" in result.stdout and not missing.exists()


def test_storage_unwritable_or_too_full(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ok.db'}"
    upgrade(make_engine(url))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run("doctor", config=_config(tmp_path, url, storage={"path": str(blocker / "storage")}))
    assert result.returncode == 1 and "FAIL storage:" in result.stdout and "not writable" in result.stdout
    result = run("doctor", "--min-free", "1000000TB", config=_config(tmp_path, url))
    assert result.returncode == 1 and "FAIL storage:" in result.stdout and "free (want" in result.stdout


def test_a_bad_configuration_is_one_failing_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[uploads]\nchunksize = "5MB"\n')
    result = run("doctor", config=bad)
    assert result.returncode == 1
    assert result.stdout.strip() == "FAIL config: uploads.chunksize: unknown key"
    broken = good_config(tmp_path, tasks={"handler_modules": ["no.such.module"]})
    result = run("doctor", config=broken)
    assert result.returncode == 1 and result.stdout.startswith("FAIL config: tasks.handler_modules")


def test_a_blob_missing_from_the_store_fails(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'blobs.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings(_config(tmp_path, url))
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        digest = hashlib.sha256(b"gone").hexdigest()
        session.add(Blob(sha256=digest, size=4, storage_key=f"blobs/{digest[:2]}/{digest}"))
        session.commit()
    checks = {c.name: c for c in run_checks(settings, doctor_engine(settings), Limits(1, 2.0))}
    assert checks["blob store"].failed and "unreadable" in checks["blob store"].detail
    path = settings.storage.path / "blobs" / digest[:2] / digest
    path.parent.mkdir(parents=True)
    path.write_bytes(b"gone")
    checks = {c.name: c for c in run_checks(settings, doctor_engine(settings), Limits(1, 2.0))}
    assert not checks["blob store"].failed, checks["blob store"]


def test_clock_skew_against_postgresql(pg_server: PgServer | None) -> None:
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    engine = make_engine(pg_server.create_database())
    assert check_clock(engine, 2.0, lambda: datetime.now(UTC)).status == "ok"
    fast = check_clock(engine, 2.0, lambda: datetime.now(UTC) + timedelta(minutes=5))
    assert fast.failed and "ahead of PostgreSQL" in fast.detail
    assert float(fast.detail.split()[0]) == pytest.approx(300, abs=0.5)
    slow = check_clock(engine, 2.0, lambda: datetime.now(UTC) - timedelta(seconds=3))
    assert slow.failed and "behind PostgreSQL" in slow.detail
    engine.dispose()


def test_format_size() -> None:
    assert [format_size(n) for n in (5, 2048, 3 * 1024**3 + 1024**3 // 2)] == ["5 B", "2.0 KiB", "3.5 GiB"]


def test_the_rate_limit_redis_is_checked(tmp_path: Path) -> None:
    url = new_database_url("sqlite", None, tmp_path)
    upgrade(make_engine(url))
    for redis_uri, status in ((redis_url(), "ok"), (f"redis://:pw@127.0.0.1:{free_port()}/0", "FAIL")):
        limits = {"storage": "redis", "storage_uri": redis_uri}
        result = run("doctor", "--min-free", "1MB", config=_config(tmp_path, url, rate_limit=limits))
        assert _lines(result.stdout)["rate-limit redis"] == status, result.stdout
        assert result.returncode == (0 if status == "ok" else 1) and "pw" not in result.stdout
