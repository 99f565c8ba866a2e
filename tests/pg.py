"""Finding a PostgreSQL server for the test run and making throwaway databases on it.

Order: $HMACFS_TEST_DATABASE_URL, else a server on 127.0.0.1:5432 (user
postgres), else a throwaway cluster started with pg_ctl, else none (SQLite only,
with a loud notice; an error under CI=true).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url


@dataclass
class PgServer:
    base_url: URL
    cleanup: list[str] = field(default_factory=list)
    _cluster_dir: str | None = None

    def url(self, database: str) -> str:
        return self.base_url.set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> sa.Engine:
        return sa.create_engine(self.url(self.base_url.database or "postgres"), isolation_level="AUTOCOMMIT")

    def create_database(self, prefix: str = "hmacfs_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        engine = self._admin()
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.cleanup.append(name)
        return self.url(name)

    def drop_databases(self) -> None:
        engine = self._admin()
        with engine.connect() as connection:
            for name in self.cleanup:
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
        self.cleanup.clear()

    def stop(self) -> None:
        self.drop_databases()
        if self._cluster_dir:
            _pg_ctl("stop", self._cluster_dir)
            shutil.rmtree(self._cluster_dir, ignore_errors=True)


def _accepts(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def find_server() -> PgServer | None:
    explicit = os.environ.get("HMACFS_TEST_DATABASE_URL")
    if explicit:
        if not _accepts(explicit):
            raise RuntimeError(f"HMACFS_TEST_DATABASE_URL does not accept connections: {explicit}")
        return PgServer(make_url(explicit))
    local = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    if _accepts(local):
        return PgServer(make_url(local))
    return _throwaway_cluster()


def _binaries() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(found)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(candidates[-1]) if candidates else None


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:  # initdb refuses to run as root
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _pg_ctl(action: str, data_dir: str, *extra: str) -> None:
    bindir = _binaries()
    if bindir:
        cmd = _as_postgres([f"{bindir}/pg_ctl", action, "-D", data_dir, "-w", "-s", *extra])
        subprocess.run(cmd, check=False, capture_output=True, timeout=60)


def _throwaway_cluster() -> PgServer | None:
    bindir = _binaries()
    if not bindir:
        return None
    root = tempfile.mkdtemp(prefix="hmacfs-pg-")
    os.chmod(root, 0o777)
    data = os.path.join(root, "data")
    port = free_port()
    init = _as_postgres([f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust"])
    subprocess.run(init, check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    _pg_ctl("start", data, "-o", options, "-l", os.path.join(root, "log"))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    for _ in range(50):
        if _accepts(url):
            return PgServer(make_url(url), _cluster_dir=data)
        time.sleep(0.2)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
