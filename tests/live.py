"""Starting the real server (``hmacfs serve``: gunicorn + gevent) for end-to-end tests."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.pg import free_port

REPO = Path(__file__).resolve().parent.parent
# The ports of the servers running in this process, each with the number of its start
# (tests/e2e/openapi_check.py checks the responses these give against the OpenAPI
# document). A stopped server's port leaves: the port may be taken by another program next
# (a Prometheus once was, and its answers were checked against hmacfs's document).
LIVE_PORTS: dict[int, int] = {}
_STARTS = itertools.count()
HMACFS = str(Path(sys.executable).with_name("hmacfs"))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class LiveServer:
    """A running ``hmacfs serve`` process; ``url`` has no trailing slash."""

    workdir: Path
    database_url: str
    workers: int = 2
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "hmacfs.toml"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HMACFS_")}
        env.pop("DATABASE_URL", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env["HMACFS_CONFIG"] = str(self.config_path)
        return env

    def configure(self) -> None:
        from tests.conftest import HMAC_SECRET, JWT_SECRET

        base: dict[str, dict[str, Any]] = {
            "database": {"url": self.database_url},
            "security": {"secret": HMAC_SECRET, "jwt_secret": JWT_SECRET},
            "storage": {"path": str(self.workdir / "storage")},
            "logging": {"access_log": False},
            # Absolute URLs in answers only for the loopback names tests call us by.
            "server": {"trusted_hosts": ["127.0.0.1", "localhost"]},
            "rate_limit": {"enabled": False},  # on in tests/e2e/test_rate_limits.py
        }
        for section, values in self.sections.items():
            base.setdefault(section, {}).update(values)
        self.workdir.mkdir(parents=True, exist_ok=True)
        write_config(self.config_path, base)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``hmacfs ARGS`` against this server's configuration; with ``check``, a failure
        is an AssertionError that shows the command's output (CalledProcessError hides it)."""
        done = subprocess.run(
            [HMACFS, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert not check or done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done

    def start(self, timeout: float = 60) -> LiveServer:
        self.configure()
        self.cli("db", "upgrade")
        self.port = free_port()
        LIVE_PORTS[self.port] = next(_STARTS)
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [HMACFS, "serve", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers)],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group (master and workers) with ``sig``."""
        LIVE_PORTS.pop(self.port, None)
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """``kill -9`` the master and every worker at once, as a crash would."""
        self.stop(signal.SIGKILL)

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()
