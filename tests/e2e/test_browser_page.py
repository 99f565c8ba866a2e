"""The web page at ``/`` in a real Chromium (Debian's package, driven by playwright-core
from npm) against ``hmacfs serve`` on PostgreSQL with a real ``hmacfs worker``.

Three files go up through the page (each bar reaches 100 % and the /ws completion
shows), a fourth is interrupted by a page reload under a throttled uplink and
resumes from the server's chunks, and a compress task started from the page
finishes. One more upload goes offline and back, is paused (no byte moves) and
resumed, then cancelled (the server marks it Cancelled). Screenshots (desktop
and phone) land in ``var/screenshots/``.
Without node, npm or chromium the test is skipped, naming what is missing;
under ``CI=true`` a missing browser is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import bearer, new_database_url
from tests.live import REPO, LiveServer
from tests.pg import PgServer
from tests.worker_process import WorkerProcess

pytestmark = pytest.mark.e2e

JS = Path(__file__).resolve().parent / "js"
SHOTS = REPO / "var" / "screenshots"
MIB = 1024 * 1024


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (mandatory under CI=true; .ci/run installs Debian's chromium)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node and npm are needed to drive the browser (not found on PATH)")
    browser = shutil.which("chromium")
    if browser is None:
        _missing("Debian's chromium is needed for the browser test (apt-get install chromium)")
    if not (JS / "node_modules" / "playwright-core").is_dir():
        pytest.fail(f"playwright-core is not installed: run `npm ci` in {JS} (make test does)")
    assert node is not None and browser is not None
    return node, browser


@pytest.fixture(scope="module")
def stack(pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """hmacfs serve (2 gevent workers) and one hmacfs worker on a fresh PostgreSQL database."""
    workdir = tmp_path_factory.mktemp("browser")
    url = new_database_url("postgresql", pg_server, workdir)
    uploads = {"chunk_size": "1MB", "min_chunk_size": "256KB"}
    server = LiveServer(workdir, url, workers=2, sections={"uploads": uploads}).start()
    worker = WorkerProcess(server.config_path).start()
    try:
        yield server
    finally:
        worker.stop()
        server.stop()


def _drive(node: str, options: dict[str, Any], script: str = "browser_page.mjs") -> dict[str, Any]:
    done = subprocess.run(
        [node, str(JS / script), json.dumps(options)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    assert done.returncode == 0, f"{report.get('error')}\nsteps: {report.get('steps')}\n{done.stderr[-3000:]}"
    return report


def _recent(server: LiveServer, auth: dict[str, str]) -> dict[str, dict[str, Any]]:
    answer = requests.get(f"{server.url}/api/files/upload/tasks/recent?limit=20", headers=auth, timeout=10)
    assert answer.status_code == 200
    return {task["fileName"]: task for task in answer.json()}


def test_upload_reload_resume_and_compress_through_the_page(
    stack: LiveServer, tools: tuple[str, str], tmp_path: Path
) -> None:
    node, browser = tools
    account = uuid.uuid4()
    auth = bearer(account)
    payloads = {
        "notes.txt": b"hello from the browser\n" * 20000,
        "photo.jpg": os.urandom(3 * MIB + 12345),
        "tiny.bin": os.urandom(777),
        "video.mp4": os.urandom(16 * MIB + 4321),
        "draft.bin": os.urandom(12 * MIB),
    }
    for name, payload in payloads.items():
        (tmp_path / name).write_bytes(payload)
    SHOTS.mkdir(parents=True, exist_ok=True)
    report = _drive(
        node,
        {
            "url": stack.url,
            "token": auth["Authorization"].removeprefix("Bearer "),
            "chromium": browser,
            "files": [str(tmp_path / name) for name in ("notes.txt", "photo.jpg", "tiny.bin")],
            "big": str(tmp_path / "video.mp4"),
            "cancelled": str(tmp_path / "draft.bin"),
            "throttle": 2 * MIB,  # bytes per second while the reload happens
            "shots": str(SHOTS),
        },
    )
    print(json.dumps(report))
    assert report["consoleErrors"] == []  # script errors and Content-Security-Policy violations
    # HTTP errors the client handles: a chunk already stored or still being written after the reload
    assert all(any(f"status of {code}" in line for code in (409, 423)) for line in report["httpErrors"])
    assert 0 < report["resumedFrom"] < len(payloads["video.mp4"]), report
    assert report["percentBeforeReload"] >= 20
    assert report["unlabelled"] == [] and report["phoneOverflow"] is False
    assert report["offlineResumed"] and report["movedWhilePaused"] == 0
    assert 0 < report["cancelledAt"] < 100
    stored = _recent(stack, auth)
    assert stored.pop("draft.bin")["status"] == "Cancelled"
    del payloads["draft.bin"]
    for name, payload in payloads.items():
        assert stored[name]["status"] == "Completed"
        assert stored[name]["hash"] == hashlib.sha256(payload).hexdigest()
        file = requests.get(f"{stack.url}/download/{stored[name]['fileId']}", headers=auth, timeout=30)
        assert hashlib.sha256(file.content).hexdigest() == hashlib.sha256(payload).hexdigest()
    task = requests.get(f"{stack.url}/api/tasks/{report['taskId']}", headers=auth, timeout=10).json()
    assert task["type"] == "FileCompress" and task["status"] == "Completed"
    assert task["results"]["resultFileId"]
    assert (SHOTS / "desktop.png").stat().st_size > 10000 and (SHOTS / "phone.png").stat().st_size > 10000


def test_the_page_is_served_with_a_strict_policy(stack: LiveServer) -> None:
    page = requests.get(stack.url + "/", timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert page.status_code == 200 and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script" in page.text and "<style" not in page.text and " style=" not in page.text
    assert "<script>" not in page.text  # only external module scripts
    module = requests.get(stack.url + "/static/hmacfs/index.js", timeout=10)
    assert module.status_code == 200 and "javascript" in module.headers["Content-Type"]
    assert requests.get(stack.url + "/static/../page.py", timeout=10).status_code == 404


def test_tus_follows_navigator_connection_through_a_wifi_to_cellular_switch(
    stack: LiveServer, tools: tuple[str, str], tmp_path: Path
) -> None:
    """The module's tus path in Chromium: Hmacfs-Network from navigator.connection on every
    request, the first PATCH at the creation answer's Hmacfs-Chunk-Size, and after the
    emulated switch a profile re-read, PATCHes of its size from the server's offset, and
    the server's upload.network_changed (wifi → cellular) over /ws."""
    node, browser = tools
    auth = bearer(uuid.uuid4())
    payload = os.urandom(12 * MIB + 777)  # the switch comes at half: one 5 MiB PATCH is done by then
    (tmp_path / "clip.mov").write_bytes(payload)
    report = _drive(node, {
        "url": stack.url, "token": auth["Authorization"].removeprefix("Bearer "), "chromium": browser,
        "file": str(tmp_path / "clip.mov"), "wifiRate": 2 * MIB, "lteRate": MIB,
    }, "browser_tus.mjs")  # fmt: skip
    assert report["consoleErrors"] == [] and report.get("failure") is None, report
    assert (report["before"]["type"], report["after"]["type"]) == ("wifi", "cellular")
    assert report["connectionChanges"] >= 1
    assert [pool["name"] for pool in report["pools"] if pool["default"]] == ["default"]  # client.pools()
    calls = [r for r in report["requests"] if r["kind"] == "request"]
    answers = [r for r in report["requests"] if r["kind"] == "response"]
    before = [r for r in calls if r["at"] < report["switchedAt"]]
    after = [r for r in calls if r["at"] > report["switchedAt"]]
    assert before and all(r["network"].startswith("type=wifi") for r in before), before
    assert after and all(r["network"].startswith("type=cellular") for r in after), after
    created = next(r for r in answers if r["method"] == "POST")
    patches = [r for r in answers if r["method"] == "PATCH" and r["status"] == 204]
    sizes = [int(r["offset"]) - int(r["sentOffset"]) for r in patches]
    assert sizes[0] == int(created["chunkSize"])  # the server's recommendation, not the default
    profile = next(r for r in answers if r["path"] == "/api/network/profile")
    assert profile["at"] > report["switchedAt"] and profile["status"] == 200
    followed = [e for e in report["events"] if e["type"] == "profile"]
    assert followed and followed[0]["detail"]["profile"]["networkClass"] == "cellular"
    recommended = followed[0]["detail"]["profile"]["chunkSize"]
    later = [r for r in patches if r["at"] > profile["at"]]
    assert later and int(later[0]["sentOffset"]) > 0  # continued, not restarted
    full = [int(r["offset"]) - int(r["sentOffset"]) for r in later if int(r["offset"]) < len(payload)]
    assert all(size == recommended for size in full), (full, recommended)
    changed = next(e for e in report["serverEvents"] if e["type"] == "upload.network_changed")
    assert changed["data"]["previous"]["networkClass"] == "wifi"
    assert changed["data"]["current"]["networkClass"] == "cellular"
    assert report["result"]["size"] == len(payload)
    assert report["result"]["fileUrl"] == f"{stack.url}/download/{report['result']['fileId']}"
    file = requests.get(report["result"]["fileUrl"], headers=auth, timeout=30)
    assert (
        file.status_code == 200 and hashlib.sha256(file.content).digest() == hashlib.sha256(payload).digest()
    )
    blob = stack.workdir / "storage" / "blobs" / hashlib.sha256(payload).hexdigest()[:2]
    digest = hashlib.sha256(payload).hexdigest()
    stored = blob / digest[2:4] / digest
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
