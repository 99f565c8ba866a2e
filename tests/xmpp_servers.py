"""Real XMPP servers (Debian's Prosody and ejabberd) as XEP-0363 slot issuers for
hmacfs, each run from a generated configuration in its own directory on free
loopback ports, never the system service or its default ports.

Without the packages the tests that need them skip and say what to install,
except under ``CI=true``, where ``.ci/run`` installs them and a missing one fails.
"""

from __future__ import annotations

import json
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
import requests

from tests.pg import free_port

PROSODY_MODULES = Path("/usr/lib/prosody/modules")
PASSWORD = "interop-password"
START_TIMEOUT = 15.0


def require(package: str, *needed: str | Path) -> None:
    """Skip unless every binary (``str``, on PATH) and file (``Path``) in ``needed``
    is there; fail instead under ``CI=true``."""
    missing = [
        str(item)
        for item in needed
        if (shutil.which(item) is None if isinstance(item, str) else not item.exists())
    ]
    if not missing:
        return
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
    """A VirtualHost ``name`` whose upload service is the Component ``upload.<name>``
    running ``upload_module`` with ``options`` (name = Lua string), as the modules'
    documentation sets them up; clients find it through the host's disco#items."""

    name: str
    upload_module: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def upload_service(self) -> str:
        return f"upload.{self.name}"

    def config(self) -> str:
        lines = [
            f"VirtualHost {_lua(self.name)}",
            f"Component {_lua(self.upload_service)} {_lua(self.upload_module)}",
        ]
        lines.extend(f"  {key} = {_lua(value)}" for key, value in self.options.items())
        return "\n".join(lines)


@dataclass
class Prosody:
    """A Prosody process serving ``hosts`` to clients on ``port`` (plain TCP, 127.0.0.1)."""

    workdir: Path
    hosts: list[ProsodyHost]
    clock_ahead: int = 0  # seconds Prosody's os.time() runs ahead of the real clock
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "prosody.cfg.lua"

    def _clock(self) -> str:
        """Config code shifting ``os.time()`` (which stamps slot tokens) by ``clock_ahead``:
        the config runs in Prosody's own Lua state, with the global ``os`` in reach."""
        if not self.clock_ahead:
            return ""
        return f"""
local real_time = os.time
os.time = function(date) if date then return real_time(date) end return real_time() + {self.clock_ahead} end
"""

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
        hosts = "\n".join(host.config() for host in self.hosts)
        self.config_path.write_text(f"{self._clock()}{common}{hosts}\n")

    def register(self, user: str, host: str, password: str = PASSWORD) -> None:
        done = subprocess.run(
            ["prosodyctl", "--config", str(self.config_path), "register", user, host, password],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"prosodyctl register failed:\n{done.stdout}{done.stderr}"

    def start(self) -> Prosody:
        self.configure()
        for host in self.hosts:
            self.register("alice", host.name)
        with (self.workdir / "console.log").open("ab") as log:
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


EJABBERD_BEAM = "/usr/lib/*/ejabberd-*/ebin/ejabberd.beam"  # Debian: /usr/lib/<multiarch>/...


def ejabberd_libs() -> Path | None:
    """The directory holding Debian's ``ejabberd-<version>`` (what ejabberdctl sets as
    ERL_LIBS), None when ejabberd is not installed."""
    found = sorted(Path("/").glob(EJABBERD_BEAM.lstrip("/")))
    return found[-1].parents[2] if found else None


@dataclass
class Ejabberd:
    """An ejabberd node serving ``host`` to clients on ``port``, with ``mod_http_upload``
    issuing slots on ``upload_url`` signed with ``secret`` (``external_secret``).

    Started with ``erl`` directly rather than ``ejabberdctl``, which would switch
    to the ``ejabberd`` user (who cannot read pytest's directories) and needs
    Erlang distribution; this node is ``nonode@nohost``, so it starts no epmd
    and cannot clash with another node. Users are registered through the admin
    HTTP API, which only answers ``register`` from 127.0.0.1.
    """

    workdir: Path
    host: str
    upload_url: str
    secret: str
    port: int = 0
    api_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "ejabberd.yml"

    def configure(self) -> None:
        for name in ("spool", "logs", "docroot"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        self.port = self.api_port = free_port()
        while self.api_port == self.port:
            self.api_port = free_port()
        # JSON is YAML: no quoting rules of our own.
        config = {
            "hosts": [self.host],
            "loglevel": "info",
            "log_rotate_count": 0,
            "certfiles": [],
            "acme": {"auto": False},
            "auth_method": ["internal"],
            "auth_password_format": "scram",
            "listen": [
                {"port": self.port, "ip": "127.0.0.1", "module": "ejabberd_c2s", "starttls": False},
                {
                    "port": self.api_port,
                    "ip": "127.0.0.1",
                    "module": "ejabberd_http",
                    "request_handlers": {"/api": "mod_http_api"},
                },
            ],
            "acl": {"local": {"user_regexp": ""}},
            "access_rules": {"local": {"allow": "local"}, "c2s": {"allow": "all"}},
            "api_permissions": {
                "register from loopback": {
                    "from": "mod_http_api",
                    "who": {"ip": "127.0.0.1/32"},
                    "what": ["register"],
                }
            },
            "modules": {
                "mod_disco": {},
                "mod_http_api": {},
                "mod_http_upload": {
                    "put_url": self.upload_url,
                    "get_url": self.upload_url,
                    "external_secret": self.secret,
                    "docroot": str(self.workdir / "docroot"),
                },
            },
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "EJABBERD_CONFIG_PATH": str(self.config_path),
            "EJABBERD_LOG_PATH": str(self.workdir / "logs" / "ejabberd.log"),
            "ERL_CRASH_DUMP": str(self.workdir / "logs" / "erl_crash.dump"),
            "ERL_LIBS": str(ejabberd_libs()),  # the fixture checked it is there
            "HOME": str(self.workdir),
        }

    def start(self) -> Ejabberd:
        self.configure()
        spool = str(self.workdir / "spool")
        with (self.workdir / "console.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["erl", "-noinput", "-mnesia", "dir", f'"{spool}"', "-s", "ejabberd"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_listening(self.port, self.process, self.log)
        wait_listening(self.api_port, self.process, self.log)
        self.register("alice")
        return self

    def register(self, user: str, password: str = PASSWORD) -> None:
        response = requests.post(
            f"http://127.0.0.1:{self.api_port}/api/register",
            json={"user": user, "host": self.host, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, f"{response.status_code} {response.text}\n{self.log()}"

    def log(self) -> str:
        path = self.workdir / "logs" / "ejabberd.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def stop(self) -> None:
        stop_group(self.process)
