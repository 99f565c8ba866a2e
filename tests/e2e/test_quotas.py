"""Quotas on the real server: parallel creates cannot both pass one quota, and a deferred
tus upload past the quota is refused before its body is sent."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import LiveServer

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024
PARALLEL = 10


def _parallel_creates(server: LiveServer, auth: dict[str, str], size: int) -> list[requests.Response]:
    """``PARALLEL`` Drive creates of ``size`` bytes, released together by a barrier."""
    barrier = threading.Barrier(PARALLEL)
    answers: list[requests.Response] = []
    body = {
        "fileName": "big.bin",
        "fileSize": size,
        "contentType": "application/octet-stream",
        "hash": "0" * 64,
    }

    def create() -> None:
        barrier.wait(timeout=30)
        answers.append(
            requests.post(f"{server.url}/api/files/upload/create", json=body, headers=auth, timeout=60)
        )

    threads = [threading.Thread(target=create) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return answers


def test_parallel_creates_cannot_pass_the_quota_together(e2e_backend: str, start_server: StartServer) -> None:
    """10 parallel creates of 1.5 MiB against a 2 MiB quota (2 workers on PostgreSQL): one
    is accepted. Before the check was serialised, two were (each read the usage before the
    other had inserted)."""
    # Rate limits off: 30 creates in a second from one address are this test's load, not an abuse.
    server = start_server(workers=2, uploads={"default_quota": "2MB"}, rate_limit={"enabled": False})
    for _ in range(3):  # three accounts: the race is lost or won afresh each time
        answers = _parallel_creates(server, bearer(uuid.uuid4()), 3 * MiB // 2)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] + [403] * (PARALLEL - 1), [(a.status_code, a.text[:200]) for a in answers]
        assert {a.json()["code"] for a in answers if a.status_code == 403} == {"QUOTA_EXCEEDED"}


def test_a_deferred_tus_upload_past_the_quota_is_refused_before_its_body(start_server: StartServer) -> None:
    server = start_server(workers=1, uploads={"default_quota": "1MB"})
    auth = {**bearer(uuid.uuid4()), "Tus-Resumable": "1.0.0"}
    created = requests.post(f"{server.url}/files/", headers={**auth, "Upload-Defer-Length": "1"}, timeout=10)
    assert created.status_code == 201, created.text
    location = urlsplit(created.headers["Location"]).path
    first = requests.patch(
        f"{server.url}{location}", data=b"x" * (MiB // 2), timeout=10,
        headers={**auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )  # fmt: skip
    assert first.status_code == 204, first.text
    # Announce 1 MiB more but send no byte of it: the refusal must come without the body.
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    head = "".join(
        f"{name}: {value}\r\n"
        for name, value in {
            **auth, "Host": f"{host}:{port}", "Upload-Offset": str(MiB // 2), "Content-Length": str(MiB),
            "Content-Type": "application/offset+octet-stream", "Connection": "close",
        }.items()
    )  # fmt: skip
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(f"PATCH {location} HTTP/1.1\r\n{head}\r\n".encode())
        status_line = raw.makefile("rb").readline().decode()
    assert status_line.split()[1] == "403", status_line
    offset = requests.head(f"{server.url}{location}", headers=auth, timeout=10).headers["Upload-Offset"]
    assert offset == str(MiB // 2)
    # Within the quota the same upload goes on.
    rest = requests.patch(
        f"{server.url}{location}", data=b"y" * (MiB // 4), timeout=10,
        headers={**auth, "Upload-Offset": str(MiB // 2), "Content-Type": "application/offset+octet-stream"},
    )  # fmt: skip
    assert rest.status_code == 204, rest.text


def _create(server: LiveServer, auth: dict[str, str], size: int) -> requests.Response:
    body = {
        "fileName": "a.bin",
        "fileSize": size,
        "contentType": "application/octet-stream",
        "hash": "0" * 64,
    }
    return requests.post(f"{server.url}/api/files/upload/create", json=body, headers=auth, timeout=30)


def test_quotas_are_set_and_shown_by_the_cli_and_the_api(start_server: StartServer) -> None:
    server = start_server(workers=1)
    account = uuid.uuid4()
    auth = bearer(account)
    shown = json.loads(server.cli("quota", "set", str(account), "1MB").stdout)
    assert shown == {"accountId": str(account), "limit": MiB, "used": 0, "reserved": 0, "available": MiB}
    assert _create(server, auth, 600 * 1024).status_code == 200
    refused = _create(server, auth, 600 * 1024)
    assert refused.status_code == 403 and refused.json()["code"] == "QUOTA_EXCEEDED"
    expected = {"accountId": str(account), "limit": MiB, "used": 0, "reserved": 600 * 1024,
                "available": MiB - 600 * 1024}  # fmt: skip
    assert json.loads(server.cli("quota", "show", str(account)).stdout) == expected
    assert requests.get(f"{server.url}/api/quota", headers=auth, timeout=10).json() == expected
    assert requests.get(f"{server.url}/api/quota", timeout=10).status_code == 401

    # Setting a quota over HTTP needs the admin claim; the answer is the same 403 for any account.
    admin_url = f"{server.url}/api/admin/quotas"
    body = {"maxBytes": 2 * MiB}
    for target in (str(account), str(uuid.uuid4()), "not-a-uuid"):
        denied = requests.put(f"{admin_url}/{target}", json=body, headers=auth, timeout=10)
        assert denied.status_code == 403 and denied.json()["code"] == "ADMIN_REQUIRED"
    assert requests.put(f"{admin_url}/{account}", json=body, timeout=10).status_code == 401
    token = server.cli("token", "issue", "--account", str(uuid.uuid4()), "--admin").stdout.strip()
    admin = {"Authorization": f"Bearer {token}"}
    assert (
        requests.put(f"{admin_url}/{account}", json={"maxBytes": -1}, headers=admin, timeout=10).status_code
        == 400
    )
    assert requests.put(f"{admin_url}/nope", json=body, headers=admin, timeout=10).status_code == 400
    raised = requests.put(f"{admin_url}/{account}", json=body, headers=admin, timeout=10)
    assert raised.status_code == 200 and raised.json()["limit"] == 2 * MiB, raised.text
    assert _create(server, auth, 600 * 1024).status_code == 200
