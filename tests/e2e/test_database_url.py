"""The real server boots from ``DATABASE_URL=postgresql://...``, the form hosting guides use."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from tests.live import LiveServer
from tests.pg import PgServer

pytestmark = pytest.mark.e2e


class _EnvironmentUrlServer(LiveServer):
    """A server whose database comes only from ``DATABASE_URL`` (the TOML file leaves it empty)."""

    environment_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["DATABASE_URL"] = self.environment_url
        return env


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_serves_with_a_plain_postgresql_url(scheme: str, pg_server: PgServer | None, tmp_path: Path) -> None:
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    created = make_url(pg_server.create_database())
    url = created.set(drivername=scheme).render_as_string(hide_password=False)
    assert url.startswith(f"{scheme}://")
    server = _EnvironmentUrlServer(tmp_path, database_url="", workers=2)
    server.environment_url = url
    try:
        server.start()  # runs `hmacfs db upgrade` with the same environment first
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
        ready = requests.get(f"{server.url}/health/uploads", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"]["ok"] is True
    finally:
        server.stop()
