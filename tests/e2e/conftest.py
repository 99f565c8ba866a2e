"""End-to-end fixtures: a real ``hmacfs serve`` per backend, shared by a module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, new_database_url
from tests.live import LiveServer
from tests.pg import PgServer

pytestmark = pytest.mark.e2e

StartServer = Callable[..., LiveServer]


@pytest.fixture(scope="module", params=BACKENDS)
def e2e_backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def start_server(
    e2e_backend: str, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """Factory: ``start_server(workers=2, uploads={...})`` starts a server on a fresh database."""
    started: list[LiveServer] = []

    def start(workers: int = 2, database_url: str | None = None, **sections: dict[str, Any]) -> LiveServer:
        workdir: Path = tmp_path_factory.mktemp(f"server-{e2e_backend}")
        url = database_url or new_database_url(e2e_backend, pg_server, workdir)
        if not url.startswith("postgresql"):
            workers = 1  # SQLite serves one process
        server = LiveServer(workdir, url, workers=workers, sections=sections)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def live_server(start_server: StartServer) -> LiveServer:
    """One default server (2 workers on PostgreSQL) for the module."""
    return start_server()
