"""The ``hmacfs`` command, run as a user would (a subprocess)."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import jwt

from hmacfs.migrate import head_revision
from tests.conftest import HMAC_SECRET, JWT_SECRET, new_database_url
from tests.live import write_config
from tests.pg import PgServer

HMACFS = str(Path(sys.executable).with_name("hmacfs"))


def run(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [HMACFS, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def good_config(tmp_path: Path, **extra: dict[str, object]) -> Path:
    sections: dict[str, dict[str, object]] = {
        "security": {"secret": HMAC_SECRET, "jwt_secret": JWT_SECRET},
        "storage": {"path": str(tmp_path / "storage")},
        "database": {"url": f"sqlite:///{tmp_path / 'cli.db'}"},
    }
    sections.update(extra)
    return write_config(tmp_path / "hmacfs.toml", sections)


def test_config_check_names_unknown_key_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[uploads]\nchunksize = "5MB"\n')
    result = run("config", "check", str(bad))
    assert result.returncode == 2
    assert "uploads.chunksize: unknown key" in result.stderr


def test_config_check_ok(tmp_path: Path) -> None:
    result = run("config", "check", str(good_config(tmp_path)))
    assert result.returncode == 0, result.stderr


def test_config_show_redacts(tmp_path: Path) -> None:
    result = run("config", "show", config=good_config(tmp_path))
    assert result.returncode == 0
    assert HMAC_SECRET not in result.stdout and JWT_SECRET not in result.stdout
    assert '"secret": "***"' in result.stdout


def test_token_issue(tmp_path: Path) -> None:
    account = uuid.uuid4()
    result = run("token", "issue", "--account", str(account), "--ttl", "2h", config=good_config(tmp_path))
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(account)
    assert claims["exp"] - claims["iat"] == 7200


def test_token_issue_bad_ttl(tmp_path: Path) -> None:
    result = run(
        "token", "issue", "--account", str(uuid.uuid4()), "--ttl", "soon", config=good_config(tmp_path)
    )
    assert result.returncode == 2 and "--ttl" in result.stderr


def test_db_commands(backend: str, pg_server: PgServer | None, tmp_path: Path) -> None:
    url = new_database_url(backend, pg_server, tmp_path)
    config = good_config(tmp_path, database={"url": url})
    assert "base" in run("db", "current", config=config).stdout
    head = head_revision()
    assert run("db", "upgrade", config=config).stdout.strip() == f"database at {head}"
    assert run("db", "current", config=config).stdout.strip() == head
    assert run("db", "downgrade", "base", config=config).stdout.strip() == "database at base"


def test_serve_refuses_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nworkerz = 3\n")
    result = run("serve", config=bad)
    assert result.returncode == 2 and "server.workerz: unknown key" in result.stderr


def test_config_check_names_a_driver_that_cannot_be_imported(tmp_path: Path) -> None:
    """psycopg 3 is what SQLAlchemy 2.1 picks for a bare postgresql+psycopg URL; it is not installed."""
    config = good_config(tmp_path, database={"url": "postgresql+psycopg://postgres@127.0.0.1/hmacfs"})
    result = run("config", "check", str(config))
    assert result.returncode == 2
    assert "database.url: driver 'postgresql+psycopg' cannot be imported" in result.stderr
    assert "Traceback" not in result.stderr
    upgrade = run("db", "upgrade", config=config)
    assert upgrade.returncode == 2
    assert "database.url: driver 'postgresql+psycopg'" in upgrade.stderr


def test_config_check_accepts_a_plain_postgresql_url(tmp_path: Path) -> None:
    config = good_config(tmp_path, database={"url": "postgres://postgres@127.0.0.1/hmacfs"})
    assert run("config", "check", str(config)).returncode == 0
    shown = run("config", "show", config=config)
    assert '"url": "postgresql+psycopg2://postgres@127.0.0.1/hmacfs"' in shown.stdout


def test_worker_names_a_metrics_bind_it_cannot_listen_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = good_config(tmp_path, workers={"metrics_bind": f"127.0.0.1:{port}"})
        assert run("db", "upgrade", config=config).returncode == 0
        result = run("worker", config=config)
    assert result.returncode == 1, result.stderr
    assert f"workers.metrics_bind 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
