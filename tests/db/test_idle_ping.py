"""Pooled connections are pinged only after sitting idle (hmacfs.db.ping_when_idle)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from hmacfs.db import ping_when_idle
from tests.pg import PgServer


@pytest.fixture
def pooled(pg_server: PgServer | None) -> Iterator[Engine]:
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    engine = sa.create_engine(pg_server.create_database(), pool_size=1, max_overflow=0)
    ping_when_idle(engine, 0.3)
    yield engine
    engine.dispose()


def _pid_then_terminate(engine: Engine) -> int:
    with engine.connect() as connection:
        pid = int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
    killer = sa.create_engine(engine.url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    with killer.connect() as connection:
        connection.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
    killer.dispose()
    return pid


def test_a_connection_idle_long_enough_is_pinged_and_replaced(pooled: Engine) -> None:
    dead = _pid_then_terminate(pooled)
    time.sleep(0.4)
    with pooled.connect() as connection:
        assert connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != dead


def test_a_connection_used_a_moment_ago_is_not_pinged(pooled: Engine) -> None:
    """No round trip for it: had it died meanwhile, the statement fails (answered 503), and
    the pool then opens a new connection."""
    dead = _pid_then_terminate(pooled)
    with pytest.raises(sa.exc.OperationalError), pooled.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    with pooled.connect() as connection:
        assert connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != dead
