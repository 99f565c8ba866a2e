"""Database URLs as hosting guides write them: normalised to the shipped driver, and a
driver that cannot be imported named at start-up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hmacfs.config import ConfigError, database_driver_problem, load_settings, normalise_database_url
from hmacfs.db import make_engine

SECRETS = {"HMACFS_SECURITY__SECRET": "s", "HMACFS_SECURITY__JWT_SECRET": "j"}


def write_empty(tmp_path: Path) -> Path:
    path = tmp_path / "hmacfs.toml"
    path.write_text("")
    return path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db.example:5432/hmacfs", "postgresql+psycopg2://u:p@db.example:5432/hmacfs"),
        (
            "postgres://u@db.example/hmacfs?sslmode=require",
            "postgresql+psycopg2://u@db.example/hmacfs?sslmode=require",
        ),
        ("POSTGRES://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("postgresql+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("postgres+psycopg2://u@h/d", "postgresql+psycopg2://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////var/lib/hmacfs.db", "sqlite:////var/lib/hmacfs.db"),
        ("sqlite://", "sqlite://"),
        ("mysql://u@h/d", "mysql://u@h/d"),
        ("", ""),
        ("not a url", "not a url"),
    ],
)
def test_normalise_database_url(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_database_url_from_the_environment_means_psycopg2(scheme: str, tmp_path: Path) -> None:
    env = {**SECRETS, "DATABASE_URL": f"{scheme}://postgres@127.0.0.1/hmacfs"}
    settings = load_settings(write_empty(tmp_path), env)
    assert settings.database_url == "postgresql+psycopg2://postgres@127.0.0.1/hmacfs"
    assert settings.serves_many_processes


def test_make_engine_takes_a_plain_postgresql_url() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1/hmacfs")
    assert engine.dialect.driver == "psycopg2"
    engine.dispose()


def test_missing_driver_is_named() -> None:
    assert importlib.util.find_spec("psycopg") is None, "psycopg 3 is installed: pick another missing driver"
    problem = database_driver_problem("postgresql+psycopg://u@h/d")
    assert problem is not None
    assert "'postgresql+psycopg'" in problem and "psycopg" in problem


def test_unknown_dialect_and_garbage_are_named() -> None:
    assert "unknown database or driver 'nosuchdb'" in (database_driver_problem("nosuchdb://h/d") or "")
    assert "not a database URL" in (database_driver_problem("not a url") or "")


def test_shipped_drivers_import() -> None:
    assert database_driver_problem("postgresql+psycopg2://u@h/d") is None
    assert database_driver_problem("sqlite:///x.db") is None


def test_load_settings_fails_naming_database_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            write_empty(tmp_path), {**SECRETS, "HMACFS_DATABASE__URL": "postgresql+psycopg://u@h/d"}
        )
    [problem] = caught.value.problems
    assert problem.startswith("database.url: driver 'postgresql+psycopg' cannot be imported")
