"""gunicorn workers killed with SIGKILL at random moments during Drive, chunked and tus uploads.

Three clients upload side by side while a killer sends SIGKILL to a random
worker at 24 random moments (the master starts a new one). Each client resumes
from what the server reports, and checks at every resume that nothing it was
told had been stored is missing: a Drive or chunked chunk answered 200 is among
the uploaded chunks, a tus offset answered 204 is never ahead of the server's.
Every upload then ends with the right SHA-256.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

import pytest
import requests

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.e2e.test_resumable import API, CHUNK
from tests.faults.requests_of import drive_create
from tests.live import LiveServer

pytestmark = pytest.mark.e2e
KILLS = 24
UPLOADS = 3  # per protocol
CHUNKS = 6  # per upload
DEADLINE = 150.0


# A killed worker drops its connection: before the answer, or in the middle of its body.
_DROPPED = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class _Lost(AssertionError):
    """The server no longer has something it acknowledged."""


def _workers(server: LiveServer) -> list[int]:
    assert server.process is not None
    found = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def _killer(server: LiveServer, stop: threading.Event, kills: list[int]) -> None:
    """SIGKILL a random worker every 0.2 to 0.8 s, ``KILLS`` times, then set ``stop``."""
    chance = random.Random(0x5EED)
    while len(kills) < KILLS and not stop.wait(chance.uniform(0.2, 0.8)):
        workers = _workers(server)
        if workers:
            victim = chance.choice(workers)
            os.kill(victim, signal.SIGKILL)
            kills.append(victim)
    stop.set()


def _retrying(
    deadline: float, send: Callable[..., requests.Response], ok: tuple[int, ...]
) -> requests.Response:
    """Send until answered one of ``ok`` (see ``_attempt``), or fail at the deadline."""
    while time.monotonic() < deadline:
        response = _attempt(send, ok)
        if response is not None:
            return response
        time.sleep(0.05)
    raise AssertionError("deadline passed")


def _attempt(send: Callable[..., requests.Response], ok: tuple[int, ...]) -> requests.Response | None:
    """Send once: the response when answered one of ``ok``; None when a killed worker dropped
    the connection (before its answer or in the middle of it) or answered with a refusal a
    retry may get past. Anything else fails the test."""
    try:
        sent = send(timeout=10)
    except _DROPPED:
        return None
    if sent.status_code in ok:
        return sent
    _check_transient(sent)
    return None


def _check_transient(response: requests.Response) -> None:
    """A refusal that a retry may get past: 409 (busy, or done by an attempt whose answer was
    lost) and 503 (a database connection of a killed worker). Never a 500."""
    assert response.status_code in (409, 503), (response.status_code, response.text)


def _drive_upload(url: str, auth: dict[str, str], payload: bytes, deadline: float) -> str:
    create = drive_create(payload)
    task = _retrying(
        deadline, partial(requests.post, f"{url}{API}/create", headers=auth, json=create), (200,)
    )
    task_id = task.json()["taskId"]
    acknowledged: set[int] = set()
    raw = {**auth, "Content-Type": "application/octet-stream"}
    while True:
        state = _retrying(
            deadline, partial(requests.get, f"{url}{API}/resume/{task_id}", headers=auth), (200,)
        )
        uploaded = set(state.json()["uploadedChunks"])
        if not acknowledged <= uploaded:
            raise _Lost(f"drive chunks {sorted(acknowledged - uploaded)} were acknowledged and are gone")
        missing = state.json()["missingChunks"]
        if not missing:
            break
        index = missing[0]
        chunk = payload[index * CHUNK : (index + 1) * CHUNK]
        send = partial(requests.post, f"{url}{API}/chunk/{task_id}/{index}", headers=raw, data=chunk)
        if _attempt(send, (200,)) is not None:
            acknowledged.add(index)
    done = _retrying(deadline, partial(requests.post, f"{url}{API}/complete/{task_id}", headers=auth), (200,))
    got = _retrying(deadline, partial(requests.get, f"{url}{done.json()['url']}", headers=auth), (200,))
    return hashlib.sha256(got.content).hexdigest()


def _chunked_upload(url: str, auth: dict[str, str], payload: bytes, deadline: float) -> str:
    start = {**auth, "X-Filename": "k.bin", "X-Total-Size": str(len(payload)), "X-Chunk-Size": str(CHUNK)}
    session = _retrying(deadline, partial(requests.post, f"{url}/upload/chunked", headers=start), (201,))
    session_id = session.json()["session_id"]
    acknowledged: set[int] = set()
    while True:
        status = _retrying(
            deadline,
            partial(requests.get, f"{url}/upload/status", params={"session_id": session_id}, headers=auth),
            (200,),
        ).json()
        total = -(-len(payload) // CHUNK)
        uploaded = set(range(total)) - set(status["missing_chunks"])
        if not acknowledged <= uploaded:
            raise _Lost(f"chunked chunks {sorted(acknowledged - uploaded)} were acknowledged and are gone")
        if status["completed"]:
            break
        index = status["missing_chunks"][0] if status["missing_chunks"] else total - 1
        headers = {**auth, "X-Upload-Session-ID": session_id, "X-Chunk-Number": str(index)}
        chunk = payload[index * CHUNK : (index + 1) * CHUNK]
        send = partial(requests.put, f"{url}/upload/chunked", headers=headers, data=chunk)
        if _attempt(send, (200,)) is not None:
            acknowledged.add(index)
    return _stored_sha256(url, auth, session_id, "chunked")


def _tus_upload(url: str, auth: dict[str, str], payload: bytes, deadline: float) -> str:
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    create = {**tus, "Upload-Length": str(len(payload))}
    location = _retrying(deadline, partial(requests.post, f"{url}/files/", headers=create), (201,)).headers[
        "Location"
    ]
    upload = location if location.startswith("http") else f"{url}{location}"
    acknowledged = 0
    while True:
        head = _retrying(deadline, partial(requests.head, upload, headers=tus), (200,))
        offset = int(head.headers["Upload-Offset"])
        if offset < acknowledged:
            raise _Lost(f"tus offset {offset} is behind the acknowledged {acknowledged}")
        if offset == len(payload):
            break
        patch = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        send = partial(requests.patch, upload, data=payload[offset : offset + CHUNK], headers=patch)
        sent = _attempt(send, (204,))
        if sent is not None:
            acknowledged = int(sent.headers["Upload-Offset"])
    return _stored_sha256(url, auth, upload.rsplit("/", 1)[-1], "tus")


def _stored_sha256(url: str, auth: dict[str, str], task_id: str, protocol: str) -> str:
    """Download the file a finished upload became (found through the Drive task listing,
    which lists every protocol's uploads of the account) and hash it."""
    deadline = time.monotonic() + 30
    listing = _retrying(
        deadline, partial(requests.get, f"{url}{API}/tasks", headers=auth, params={"limit": 100}), (200,)
    )
    [task] = [t for t in listing.json() if t["taskId"] == task_id]
    assert task["status"] == "Completed" and task["fileId"], (protocol, task)
    got = _retrying(deadline, partial(requests.get, f"{url}/download/{task['fileId']}", headers=auth), (200,))
    return hashlib.sha256(got.content).hexdigest()


def test_no_acknowledged_byte_is_lost_when_workers_are_killed(
    e2e_backend: str, start_server: StartServer
) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("two workers share PostgreSQL; SQLite serves one process")
    server = start_server(workers=2)
    auth = bearer(uuid.uuid4())
    deadline = time.monotonic() + DEADLINE
    results: list[tuple[str, str, str]] = []
    failures: list[BaseException] = []

    def run(protocol: str, upload: Callable[[str, dict[str, str], bytes, float], str]) -> None:
        """At least ``UPLOADS`` uploads, and more until the killer is done."""
        try:
            for number in itertools.count():
                if number >= UPLOADS and stop.is_set():
                    return
                payload = os.urandom(CHUNK * (CHUNKS - 1) + random.randrange(1, CHUNK))
                results.append(
                    (
                        protocol,
                        upload(server.url, auth, payload, deadline),
                        hashlib.sha256(payload).hexdigest(),
                    )
                )
        except BaseException as exc:  # reported below, with the server's log
            failures.append(exc)

    stop, kills = threading.Event(), list[int]()
    killer = threading.Thread(target=_killer, args=(server, stop, kills), daemon=True)
    clients = [
        threading.Thread(target=run, args=(name, upload))
        for name, upload in (("drive", _drive_upload), ("chunked", _chunked_upload), ("tus", _tus_upload))
    ]
    killer.start()
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=DEADLINE + 30)
    stop.set()  # if the clients gave up first
    killer.join(timeout=10)
    assert not failures, (failures, server.log())
    assert len(results) >= 3 * UPLOADS
    assert all(got == wanted for _, got, wanted in results), results
    assert len(kills) >= 20, f"only {len(kills)} kill points: the uploads finished too fast to test anything"
