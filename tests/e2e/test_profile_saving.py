"""Many bodies of one client at once: every one is folded into its profile (on PostgreSQL a
served worker saves them in a greenlet of its own, the ones that arrive during a save
together in one transaction)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import Engine, text

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
    deadline = time.monotonic() + 10  # a served worker saves measurements after the answer
    try:
        while (samples := _samples(engine)) != [UPLOADS] and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert samples == [UPLOADS]  # one client, every body counted once


def _samples(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT samples FROM client_profiles")).scalars())
