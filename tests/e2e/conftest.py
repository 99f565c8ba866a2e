"""End-to-end fixtures: a real ``hmacfs serve`` per backend, shared by a module."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import BACKENDS, new_database_url
from tests.e2e.openapi_check import OpenApiCheck
from tests.live import LIVE_PORTS, LiveServer
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


_DOCUMENTS: dict[tuple[int, int], OpenApiCheck] = {}


def _check_for(port: int, start: int) -> OpenApiCheck:
    """The document the server on ``port`` serves (each server's settings shape it), for
    its ``start`` (``LIVE_PORTS``: a later server may get the same port)."""
    if (port, start) not in _DOCUMENTS:
        served = _original_send(
            requests.Session(), requests.Request("GET", f"http://127.0.0.1:{port}/openapi.json").prepare()
        )
        _DOCUMENTS[port, start] = OpenApiCheck(served.json())
    return _DOCUMENTS[port, start]


_original_send = requests.Session.send


@pytest.fixture(autouse=True)
def responses_match_openapi(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every response a live server gives during the test matches its OpenAPI document."""
    seen: list[tuple[OpenApiCheck, requests.Response, bool]] = []

    def send(
        session: requests.Session, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        response = _original_send(session, request, **kwargs)
        url = urllib.parse.urlsplit(request.url or "")
        start = LIVE_PORTS.get(url.port) if url.hostname == "127.0.0.1" and url.port else None
        if start is not None and url.port is not None:
            check = _check_for(url.port, start)  # fetched while the server is surely up
            seen.append((check, response, not kwargs.get("stream")))
        return response

    monkeypatch.setattr(requests.Session, "send", send)
    yield
    monkeypatch.undo()
    problems = [p for check, response, read in seen for p in check.violations(response, body_read=read)]
    assert not problems, "responses that do not match the OpenAPI document:\n" + "\n".join(problems[:30])
