"""Real XMPP servers (Debian's Prosody and ejabberd) as XEP-0363 slot issuers for
hmacfs, each run from a generated configuration in its own directory on free
loopback ports, never the system service or its default ports.

Without the packages the tests that need them skip and say what to install,
except under ``CI=true``, where ``.ci/run`` installs them and a missing one fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.pg import free_port

PROSODY_MODULES = Path("/usr/lib/prosody/modules")
PASSWORD = "interop-password"
START_TIMEOUT = 15.0


def require(binary: str, package: str, *paths: Path) -> str:
    """The path of ``binary`` (and that every one of ``paths`` exists): skip without them,
    fail under ``CI=true``."""
    found = shutil.which(binary)
    missing = ([] if found else [binary]) + [str(path) for path in paths if not path.exists()]
    if found is not None and not missing:
        return found
    reason = (
        f"{', '.join(missing)} not found: apt-get install --no-install-recommends {package} (.ci/run does)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the XMPP interop tests are mandatory under CI=true")
    pytest.skip(reason)


def _lua(value: str) -> str:
    """A Lua string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@dataclass
class ProsodyHost:
    """One VirtualHost: ``modules`` it enables and its ``options`` (name = Lua string)."""

    name: str
    modules: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)

    def config(self) -> str:
        lines = [f"VirtualHost {_lua(self.name)}"]
        lines.append(f"  modules_enabled = {{ {', '.join(_lua(m) for m in self.modules)} }}")
        lines.extend(f"  {key} = {_lua(value)}" for key, value in self.options.items())
        return "\n".join(lines)


@dataclass
class Prosody:
    """A Prosody process serving ``hosts`` to clients on ``port`` (plain TCP, 127.0.0.1)."""

    workdir: Path
    hosts: list[ProsodyHost]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "prosody.cfg.lua"

    def configure(self) -> None:
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        (self.workdir / "certs").mkdir(exist_ok=True)
        self.port = free_port()
        common = f"""
run_as_root = true -- CI runs as root; Prosody refuses that otherwise
pidfile = {_lua(str(self.workdir / "prosody.pid"))}
data_path = {_lua(str(self.workdir / "data"))}
certificates = {_lua(str(self.workdir / "certs"))}
log = {{ debug = {_lua(str(self.workdir / "prosody.log"))} }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
modules_enabled = {{ "disco", "saslauth" }}
modules_disabled = {{ "s2s", "offline" }}
c2s_require_encryption = false
authentication = "internal_hashed"
storage = "internal"
"""
        self.config_path.write_text(common + "\n".join(host.config() for host in self.hosts) + "\n")

    def register(self, user: str, host: str, password: str = PASSWORD) -> None:
        subprocess.run(
            ["prosodyctl", "--config", str(self.config_path), "register", user, host, password],
            capture_output=True,
            timeout=30,
            check=True,
        )

    def start(self) -> Prosody:
        self.configure()
        for host in self.hosts:
            self.register("alice", host.name)
        log = (self.workdir / "console.log").open("ab")
        self.process = subprocess.Popen(
            ["prosody", "--config", str(self.config_path), "-F"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_listening(self.port, self.process, self.log)
        return self

    def log(self) -> str:
        path = self.workdir / "prosody.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        stop_group(self.process)


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Callable[[], str]) -> None:
    """Return once something accepts on 127.0.0.1:``port``; raise if ``process`` dies first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early with status {process.returncode}:\n{log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"not listening on {port} after {START_TIMEOUT}s:\n{log()}")


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
