"""The browser client's own unit tests (``clients/js/test``, Node's test runner)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.live import REPO


def test_js_client_unit_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is needed for the JavaScript client's unit tests (not found on PATH)")
    done = subprocess.run(
        [node, "--test", "test/"],
        cwd=REPO / "clients" / "js",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
