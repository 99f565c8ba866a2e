"""Fault tests reuse the end-to-end server fixtures (a real gunicorn+gevent server), and
mount small file systems to fill."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import e2e_backend, live_server, start_server

__all__ = ["e2e_backend", "live_server", "start_server", "tmpfs"]


@contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "16m") mounted at ``mount`` meanwhile (the suite runs as
    root); skipped where it cannot be mounted, and a failure under CI=true."""
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
