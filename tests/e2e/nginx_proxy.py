"""A real nginx in front of hmacfs nodes, running the shipped ``etc/nginx/hmacfs.conf``.

The site file is used as shipped except for what differs on a test machine,
each rendered by one substitution that must match (so a change to the shipped
file that would leave the test running something else fails loudly): its
upstream servers (the test's nodes), its ``listen`` port, its TLS certificate
(a self-signed one for 127.0.0.1), the X-Accel-Redirect storage root, and the
slot cache's port (a free one) and directory (under the test's folder). The
main ``nginx.conf`` around it is the test's, as ``/etc/nginx/nginx.conf`` is
the distribution's; its access log names the node that answered each request.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live import REPO
from tests.pg import free_port

SHIPPED_SITE = REPO / "etc" / "nginx" / "hmacfs.conf"
# One line per request: nginx's request id (hmacfs echoes it as X-Request-ID), the
# upstream addresses tried in order, their statuses, the status sent to the client.
_LOG_FORMAT = '\'$request_id "$upstream_addr" "$upstream_status" $status "$request"\''
_LOG_LINE = re.compile(r'^(\w+) "([^"]*)" "([^"]*)" (\d+) "([^"]*)"$')


def nginx_binary() -> str:
    """Debian's nginx; a missing one fails under CI=true (``.ci/run`` installs it), else skips."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is required under CI=true (.ci/run installs Debian's nginx)")
        pytest.skip("nginx not installed (apt-get install --no-install-recommends nginx)")
    return found


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for a day: (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _substitute(text: str, pattern: str, replacement: str, *, expected: int = 1) -> str:
    rendered, count = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
    assert count == expected, (
        f"etc/nginx/hmacfs.conf: expected {expected} match(es) of {pattern!r}, found {count}"
    )
    return rendered


SLOT_CACHE_VALID = r"^    proxy_cache_valid 200 1s;$"


def render_site(
    shipped: str, *, port: int, nodes: list[str], cert: Path, key: Path, storage: Path, root: Path,
    slot_cache_port: int, slot_cache_valid: str = "",
) -> str:  # fmt: skip
    """The shipped site file with this machine's nodes, port, certificate and storage root;
    the slot cache on ``slot_cache_port`` with its directory under ``root``; ``slot_cache_valid`` (nginx's
    time syntax, e.g. "3s") instead of the shipped staleness bound when given."""
    servers = "".join(f"    server {node} max_fails=1 fail_timeout=10s;\n" for node in nodes)
    upstream = re.search(r"^upstream hmacfs \{\n(.*?)^\}", shipped, flags=re.MULTILINE | re.DOTALL)
    assert upstream, "etc/nginx/hmacfs.conf: no upstream hmacfs block"
    body = re.sub(r"^\s*#?\s*server [^;]+;\n", "", upstream.group(1), flags=re.MULTILINE)
    text = shipped.replace(upstream.group(1), servers + body)
    text = _substitute(text, r"^    listen 443 ssl http2;$", f"    listen 127.0.0.1:{port} ssl http2;")
    text = _substitute(text, r"^    # ssl_certificate .*$", f"    ssl_certificate {cert};")
    text = _substitute(text, r"^    # ssl_certificate_key .*$", f"    ssl_certificate_key {key};")
    text = _substitute(text, r"127\.0\.0\.1:8079;", f"127.0.0.1:{slot_cache_port};", expected=2)
    text = _substitute(text, r"/var/lib/nginx/hmacfs-slots ", f"{root}/slot-cache ")
    if slot_cache_valid:
        text = _substitute(text, SLOT_CACHE_VALID, f"    proxy_cache_valid 200 {slot_cache_valid};")
    return _substitute(text, r"^        alias /var/lib/hmacfs/storage/;$", f"        alias {storage}/;")


@dataclass(frozen=True)
class LogLine:
    request_id: str
    upstreams: tuple[str, ...]  # host:port of every node tried, in order
    upstream_statuses: tuple[str, ...]
    status: int
    request: str


@dataclass
class Nginx:
    """``nginx`` in the foreground (no daemon, no system service) on a free loopback port."""

    root: Path
    nodes: list[str]
    storage: Path
    slot_cache_valid: str = ""  # the slot cache's staleness bound, if not the shipped one
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    cert: Path = field(default=Path(), init=False)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/ws"

    def start(self) -> Nginx:
        binary = nginx_binary()
        self.port = free_port()
        (self.root / "temp").mkdir(parents=True, exist_ok=True)
        self.cert, key = self_signed(self.root)
        site = render_site(
            SHIPPED_SITE.read_text(), port=self.port, nodes=self.nodes, cert=self.cert, key=key,
            storage=self.storage, root=self.root, slot_cache_port=free_port(),
            slot_cache_valid=self.slot_cache_valid,
        )  # fmt: skip
        (self.root / "hmacfs.conf").write_text(site)
        (self.root / "nginx.conf").write_text(self._main_config())
        tested = subprocess.run(
            [binary, *self._arguments(), "-t"], capture_output=True, text=True, check=False
        )
        assert tested.returncode == 0, (
            f"nginx -t refused the rendered etc/nginx/hmacfs.conf:\n{tested.stderr}"
        )
        self.process = subprocess.Popen(
            [binary, *self._arguments()], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self._wait_listening()
        return self

    def _arguments(self) -> list[str]:
        return ["-p", str(self.root), "-c", str(self.root / "nginx.conf"), "-e", str(self.root / "error.log")]

    def _main_config(self) -> str:
        temp = self.root / "temp"
        # Workers as root where the test runs as root: they read the test's 0700 storage.
        user = "user root;\n" if os.geteuid() == 0 else ""
        # One worker: round robin is per worker, so consecutive requests alternate nodes.
        return f"""{user}worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
events {{ worker_connections 512; }}
http {{
    log_format nodes {_LOG_FORMAT};
    access_log {self.root}/access.log nodes;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {self.root}/hmacfs.conf;
}}
"""

    def _wait_listening(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx not listening after {timeout}s:\n{self.error_log()}")

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-5000:] if path.exists() else ""

    def log(self) -> list[LogLine]:
        lines = []
        path = self.root / "access.log"
        for raw in path.read_text().splitlines() if path.exists() else []:
            match = _LOG_LINE.match(raw)
            assert match, f"unexpected access log line {raw!r}"
            request_id, upstreams, statuses, status, request = match.groups()
            lines.append(
                LogLine(
                    request_id,
                    tuple(upstreams.split(", ")),
                    tuple(statuses.split(", ")),
                    int(status),
                    request,
                )
            )
        return lines

    def line_of(self, request_id: str) -> LogLine:
        """The access log line of a request."""
        return self.find_line(lambda line: line.request_id == request_id, f"request {request_id}")

    def find_line(self, matches: Callable[[LogLine], bool], what: str, timeout: float = 5) -> LogLine:
        """The first access log line that ``matches``, waiting for it a while: nginx
        writes it once the request is finished, just after the client got its answer."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log() if matches(line)]
            if found or time.monotonic() > deadline:
                assert found, f"{what} not in nginx's access log"
                return found[0]
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
