"""schemathesis against the live gunicorn server on PostgreSQL, as a signed-in account.

Every operation of ``/openapi.json`` gets generated requests (valid and invalid);
the run fails on any 5xx, any response outside the document (status, content
type, headers, body schema). Bounded for CI: ``HMACFS_FUZZ_EXAMPLES`` examples per
operation (default 8) and ``HMACFS_FUZZ_SECONDS`` in all (default 120);
``make fuzz`` runs it longer. The numbers of each run are printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import REPO

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
# The socket needs a WebSocket client; the page, the docs and metrics are not APIs to fuzz.
EXCLUDED_PATHS = r"^/(ws|metrics|docs|static/\{name\})?$"
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def _budget() -> tuple[int, int]:
    return int(os.environ.get("HMACFS_FUZZ_EXAMPLES", "8")), int(os.environ.get("HMACFS_FUZZ_SECONDS", "120"))


# The run's own budget plus the server's start and schemathesis's last cases.
@pytest.mark.timeout(_budget()[1] + 400)
def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    e2e_backend: str, start_server: StartServer, tmp_path: Path
) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("fuzzed on PostgreSQL, the production database")
    server = start_server(workers=2, uploads={"max_upload_size": "8MB"})
    examples, seconds = _budget()
    report = tmp_path / "report.json"
    token = bearer(uuid.uuid4())["Authorization"]
    command = [
        SCHEMATHESIS, "run", f"{server.url}/openapi.json",
        "--url", server.url,
        "--header", f"Authorization: {token}",
        "--checks", CHECKS,
        "--exclude-path-regex", EXCLUDED_PATHS,
        "--max-examples", str(examples),
        "--max-time", str(seconds),
        "--seed", os.environ.get("HMACFS_FUZZ_SEED", "18"),
        "--workers", "2",
        "--request-timeout", "20",
        "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    # Run from tmp_path: schemathesis keeps a cache in its working directory.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_hooks", "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=seconds + 300, check=False
    )
    sys.stdout.write(run.stdout[-6000:])
    assert run.returncode == 0, (
        f"schemathesis failed:\n{run.stdout[-20000:]}\n{run.stderr[-3000:]}\n{server.log()}"
    )
    assert report.exists()
    summary = json.loads(report.read_text())
    sys.stdout.write(json.dumps(summary.get("summary", summary), indent=1)[:3000])
