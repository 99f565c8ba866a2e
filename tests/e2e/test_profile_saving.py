"""Many bodies of one client at once: every one is folded into its profile (PostgreSQL saves
the measurements that arrive during a save together, in one transaction)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text

from hmacfs.db import make_engine
from tests.e2e.conftest import StartServer
from tests.e2e.test_xep0363 import SECRET, slot_url

pytestmark = pytest.mark.e2e

UPLOADS = 64


def test_parallel_uploads_of_one_client_are_all_measured(start_server: StartServer) -> None:
    server = start_server(security={"secret": SECRET})
    headers = {"User-Agent": "one-app/1.0", "Content-Type": "application/octet-stream"}

    def upload(index: int) -> int:
        body = f"{index:08d}".encode() * 512
        url = slot_url(server, f"measured-{index}/f.bin", len(body))
        return requests.put(url, data=body, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(upload, range(UPLOADS))) == {201}
    engine = make_engine(server.database_url)
    try:
        with engine.connect() as connection:
            samples = connection.execute(text("SELECT samples FROM client_profiles")).scalars().all()
    finally:
        engine.dispose()
    assert samples == [UPLOADS]  # one client, every body counted once
