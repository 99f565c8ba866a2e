"""commit_each_statement: statements that commit alone, and a pool that gets its transactions back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from hmacfs.db import commit_each_statement, make_engine
from tests.conftest import new_database_url
from tests.pg import PgServer


@pytest.fixture
def one_connection(pg_server: PgServer | None, tmp_path: Path) -> Iterator[Engine]:
    """A PostgreSQL engine whose pool holds a single connection, so every session reuses it."""
    engine = make_engine(new_database_url("postgresql", pg_server, tmp_path), pool_size=1, max_overflow=0)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body text)"))
    yield engine
    engine.dispose()


def _bodies(engine: Engine) -> list[str]:
    with engine.connect() as other:  # waits for the pool's one connection: ``session`` is closed
        return list(other.scalars(text("SELECT body FROM notes ORDER BY body")))


def test_each_statement_commits_and_the_pooled_connection_is_transactional_again(
    one_connection: Engine,
) -> None:
    with Session(one_connection) as session:
        assert commit_each_statement(session)
        session.execute(text("INSERT INTO notes VALUES ('alone')"))
        session.rollback()  # too late: the statement committed by itself
    assert _bodies(one_connection) == ["alone"]

    with Session(one_connection) as session:  # the same connection, back from the pool
        session.execute(text("INSERT INTO notes VALUES ('rolled back')"))
        session.rollback()
    assert _bodies(one_connection) == ["alone"]


def test_only_for_a_fresh_session_that_owns_its_connection(one_connection: Engine) -> None:
    with Session(one_connection) as session:
        session.execute(text("SELECT 1"))
        assert not commit_each_statement(session)  # begun already
    with one_connection.connect() as outer, Session(bind=outer) as session:
        assert not commit_each_statement(session)  # joined to the caller's connection (tests)


def test_not_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with Session(engine) as session:
        assert not commit_each_statement(session)
    engine.dispose()
