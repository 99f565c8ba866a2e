"""Engine and session factory; the request boundary owns commit and rollback."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.config import normalise_database_url

T = TypeVar("T")

DEFAULT_POOL_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


@dataclass(frozen=True)
class Database:
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"


def create_database(
    url: str, *, pool_size: int = 20, max_overflow: int = 10, echo: bool = False, pre_ping: bool = True
) -> Database:
    """Build the engine (no connection is opened until first use).

    ``pre_ping`` tests a pooled connection before each use (one round trip) so a
    request never fails on a connection the database dropped; a loop that
    retries on errors anyway (the task worker) can do without it: SQLAlchemy
    invalidates a dead connection on its first failure.
    """
    engine = make_engine(url, pool_size=pool_size, max_overflow=max_overflow, echo=echo, pre_ping=pre_ping)
    return Database(engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def make_engine(
    url: str, *, pool_size: int = 20, max_overflow: int = 10, echo: bool = False, pre_ping: bool = True
) -> Engine:
    """The engine for ``url``; a plain ``postgresql://`` or ``postgres://`` URL means psycopg2
    (see ``normalise_database_url``)."""
    url = normalise_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo)
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=pre_ping, echo=echo
    )

    @event.listens_for(engine, "checkin")
    def _transactional_again(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None and getattr(dbapi_connection, "autocommit", False):
            dbapi_connection.autocommit = False  # see commit_each_statement

    return engine


def commit_each_statement(session: Session) -> bool:
    """Until ``session``'s transaction ends, let each statement commit by itself: no BEGIN,
    COMMIT or ROLLBACK round trip. Only on PostgreSQL, for a session that has not begun
    and takes its connections from the pool (not one joined to an outer transaction, as
    in tests); returns whether it applies. The caller ends such a transaction as soon
    as it needs two statements to be atomic.

    psycopg2's ``autocommit`` is set on the connection directly: that is
    client-side, while SQLAlchemy's AUTOCOMMIT isolation level sends a SET
    when it is applied and another when it is reset, which costs what the
    saved round trips would. The pool turns it off when the connection comes
    back (``make_engine``).
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql" or not isinstance(bind, Engine) or session.in_transaction():
        return False
    dbapi_connection = session.connection().connection.dbapi_connection
    assert dbapi_connection is not None
    dbapi_connection.autocommit = True
    return True


def _sqlite_engine(url: str, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so SAVEPOINTs work (pysqlite quirk).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def built_once(cache: dict[str, T], session: Session, build: Callable[[Session], T]) -> T:
    """``build(session)`` once per database dialect, then from ``cache``: for statements
    whose construction depends on the dialect. Building a statement costs more Python
    than running a cached one (values are bound at execution)."""
    dialect = session.get_bind().dialect.name
    found = cache.get(dialect)
    if found is None:
        found = cache[dialect] = build(session)
    return found


def dialect_insert(session: Session) -> type[postgresql.Insert] | type[sqlite.Insert]:
    """The backend's INSERT construct, for ``ON CONFLICT DO NOTHING`` on both PostgreSQL and SQLite."""
    return postgresql.Insert if session.get_bind().dialect.name == "postgresql" else sqlite.Insert
