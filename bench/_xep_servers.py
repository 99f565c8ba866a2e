"""The contenders of ``bench/xep.py``: nginx (dav_methods PUT), a bare Flask app on
gunicorn+gevent (the Python ceiling), and hmacfs itself. Each runs on loopback
on a free port, in its own temporary directory, as its own process group."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

BIN = Path(sys.executable).parent
SECRET = "bench-secret-" + "x" * 32
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_nginx() -> str:
    """Path of an nginx with the DAV module, installed from Debian's packages if missing."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-core"], check=True, env=env)
        found = "/usr/sbin/nginx"
    return found


def process_group(process: subprocess.Popen[bytes] | None) -> list[int]:
    """The processes of the group ``process`` leads (none when it is not running)."""
    if process is None:
        return []
    out = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in out.stdout.split()]


@dataclass
class Contender(ABC):
    name: str
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    cleanup: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"127.0.0.1:{self.port}"

    def put_target(self, path: str, size: int) -> str:
        """The request target of a PUT of ``size`` bytes to slot ``path``."""
        return f"/upload/{quote(path)}"

    def get_target(self, path: str) -> str:
        return f"/upload/{quote(path)}"

    def pids(self) -> list[int]:
        """The server's processes (master and workers), for RSS and CPU sampling."""
        return process_group(self.process)

    @abstractmethod
    def start(self) -> Contender:
        """Start the server and wait until it accepts connections."""

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.workdir / "server.log").open("ab")
        self.process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=self.workdir
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for database in self.cleanup:
            _drop_database(database)


NGINX_CONF = """
user root;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/root;
        location /upload/ {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


class Nginx(Contender):
    def start(self) -> Contender:
        binary = ensure_nginx()
        self.port = free_port()
        (self.workdir / "root" / "upload").mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.workdir, port=self.port))
        self._spawn([binary, "-c", str(conf), "-p", str(self.workdir)])
        return self


FLASK_APP = """
import os
from flask import Flask, Response, request

ROOT = os.environ["BENCH_ROOT"]
BLOCK = 1024 * 1024
app = Flask(__name__)


@app.put("/upload/<path:name>")
def put(name):
    target = os.path.join(ROOT, name.replace("/", "_"))
    remaining = request.content_length or 0
    with open(target, "wb") as handle:
        while remaining:
            data = request.stream.read(min(BLOCK, remaining))
            if not data:
                return "short", 400
            handle.write(data)
            remaining -= len(data)
        handle.flush()
        os.fsync(handle.fileno())
    return "", 201


@app.get("/upload/<path:name>")
def get(name):
    target = os.path.join(ROOT, name.replace("/", "_"))
    size = os.path.getsize(target)

    def body():
        with open(target, "rb") as handle:
            while block := handle.read(BLOCK):
                yield block

    return Response(body(), headers={"Content-Length": str(size)}, direct_passthrough=True)
"""


class BareFlask(Contender):
    def start(self) -> Contender:
        self.port = free_port()
        (self.workdir / "root").mkdir(parents=True, exist_ok=True)
        (self.workdir / "bareapp.py").write_text(FLASK_APP)
        env = {**os.environ, "BENCH_ROOT": str(self.workdir / "root"), "PYTHONPATH": str(self.workdir)}
        argv = [str(BIN / "gunicorn"), "-k", "gevent", "-w", "2", "--worker-connections", "2000"]
        self._spawn([*argv, "-b", self.base, "--log-level", "warning", "bareapp:app"], env)
        return self


def _create_database() -> str | None:
    try:
        import sqlalchemy as sa

        name = f"hmacfs_bench_{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return name
    except Exception as exc:  # no PostgreSQL: the harness falls back to SQLite, loudly
        print(f"PostgreSQL unavailable ({exc.__class__.__name__}): hmacfs runs on SQLite, 1 worker")
        return None


def _drop_database(name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
        )
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    engine.dispose()


class Hmacfs(Contender):
    extra_config = ""  # more TOML appended to the configuration (experiments)

    def start(self) -> Contender:
        self.port = free_port()
        database = _create_database()
        if database is not None:
            self.cleanup.append(database)
            url, workers = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}", 2
        else:
            url, workers = f"sqlite:///{self.workdir / 'hmacfs.db'}", 1
        config = self.workdir / "hmacfs.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\n[security]\nsecret = "{SECRET}"\njwt_secret = "{SECRET}"\n'
            f'[storage]\npath = "{self.workdir / "storage"}"\n'
            '[logging]\naccess_log = false\nlevel = "WARNING"\n'
            # The load generator is one address: a per-address limit would refuse it.
            '[rate_limit]\nwhitelisted_ips = ["127.0.0.1"]\n'
            f"[server]\nworker_connections = 2000\n{self.extra_config}"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("HMACFS_")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env["HMACFS_CONFIG"] = str(config)
        subprocess.run([str(BIN / "hmacfs"), "db", "upgrade"], env=env, check=True, capture_output=True)
        self._spawn([str(BIN / "hmacfs"), "serve", "--bind", self.base, "--workers", str(workers)], env)
        return self

    def put_target(self, path: str, size: int) -> str:
        signature = hmac.new(SECRET.encode(), f"{path} {size}".encode(), hashlib.sha256).hexdigest()
        return f"/upload/{quote(path)}?v={signature}"


ACCEL_CONF = """
user root;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/hmacfs.conf;
}}
"""
SHIPPED_SITE = Path(__file__).resolve().parent.parent / "etc" / "nginx" / "hmacfs.conf"


def _replace(text: str, old: str, new: str, count: int = 1) -> str:
    """``text`` with ``old`` replaced; the shipped file must hold it ``count`` times."""
    if text.count(old) != count:
        raise RuntimeError(f"etc/nginx/hmacfs.conf: expected {old!r} {count} time(s)")
    return text.replace(old, new)


def render_site(*, port: int, upstream: int, storage: Path, directory: Path) -> str:
    """etc/nginx/hmacfs.conf as shipped, on plain HTTP (as the nginx contender is), with
    the one hmacfs node, its storage, the slot cache on a free port and its directory here."""
    text = SHIPPED_SITE.read_text()
    text = _replace(text, "    server 127.0.0.1:8080 max_fails", f"    server 127.0.0.1:{upstream} max_fails")
    text = _replace(text, "    listen 443 ssl http2;", f"    listen 127.0.0.1:{port};")
    text = _replace(text, "127.0.0.1:8079;", f"127.0.0.1:{free_port()};", count=2)
    text = _replace(text, "/var/lib/nginx/hmacfs-slots ", f"{directory}/slot-cache ")
    return _replace(text, "alias /var/lib/hmacfs/storage/;", f"alias {storage}/;")


class NginxAccel(Hmacfs):
    """hmacfs behind nginx running etc/nginx/hmacfs.conf (its slot cache included),
    downloads handed to nginx with X-Accel-Redirect (``[streaming] x_accel_redirect``);
    clients talk to nginx."""

    extra_config = "[streaming]\nx_accel_redirect = true\n"
    proxy: subprocess.Popen[bytes] | None = None

    def start(self) -> Contender:
        super().start()
        upstream, self.port = self.port, free_port()
        (self.workdir / "nginx").mkdir(exist_ok=True)
        conf = self.workdir / "nginx" / "nginx.conf"
        storage = self.workdir / "storage"
        site = render_site(port=self.port, upstream=upstream, storage=storage, directory=conf.parent)
        (conf.parent / "hmacfs.conf").write_text(site)
        conf.write_text(ACCEL_CONF.format(dir=conf.parent))
        server, self.process = self.process, None
        self._spawn([ensure_nginx(), "-c", str(conf), "-p", str(conf.parent)])
        self.proxy, self.process = self.process, server
        return self

    def pids(self) -> list[int]:
        """hmacfs's processes and nginx's: the slot cache answers most GETs in nginx alone."""
        return super().pids() + process_group(self.proxy)

    def stop(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            os.killpg(self.proxy.pid, signal.SIGTERM)
            self.proxy.wait(timeout=30)
        super().stop()


CONTENDERS: dict[str, type[Contender]] = {
    "nginx": Nginx,
    "flask": BareFlask,
    "hmacfs": Hmacfs,
    "accel": NginxAccel,
}
