"""Engine and session factory; the request boundary owns commit and rollback."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from hmacfs.config import normalise_database_url

T = TypeVar("T")
log = logging.getLogger(__name__)

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

    ``pre_ping`` tests a pooled connection that sat idle for a while before its use
    (``ping_when_idle``) so a request does not fail on a connection the database
    dropped meanwhile; a loop that retries on errors anyway (the task worker) can
    do without it: SQLAlchemy invalidates a dead connection on its first failure.
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
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, echo=echo)
    if pre_ping:
        ping_when_idle(engine, IDLE_BEFORE_PING)

    @event.listens_for(engine, "checkin")
    def _transactional_again(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None and getattr(dbapi_connection, "autocommit", False):
            dbapi_connection.autocommit = False  # see commit_each_statement

    return engine


IDLE_BEFORE_PING = 1.0  # seconds


def ping_when_idle(engine: Engine, idle: float) -> None:
    """Ping a pooled connection at checkout only when it was checked in ``idle`` seconds
    or more ago; a failed ping makes the pool open a new connection instead.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: one round trip per
    request, about a tenth of a small upload's database work. A connection used
    within the last second was alive then, and had it died since (a restart of
    PostgreSQL), the statement fails, SQLAlchemy invalidates the pool's older
    connections, and the request is answered 503 with Retry-After (never a 500)."""

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: this connection is not to be trusted
            raise DisconnectionError("pooled connection failed its ping") from exc


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


def is_postgresql(session: Session) -> bool:
    """Whether ``session`` talks to PostgreSQL (for the SQL modules that own a dialect difference)."""
    return session.get_bind().dialect.name == "postgresql"


_WROTE = "hmacfs.db.wrote"


def mark_written(session: Session) -> None:
    """Note that this request's transaction holds a write ``release_connection`` must keep."""
    session.info[_WROTE] = True


def release_connection(session: Session) -> None:
    """Call before streaming a body when this request has only read so far.

    Ending the read-only transaction gives its pooled connection back while
    the bytes arrive, so slow clients do not exhaust the pool, and on SQLite
    the writes afterwards start from a fresh snapshot: a read transaction
    cannot become a write one once another connection has committed
    (SQLITE_BUSY_SNAPSHOT). With no I/O between the first write and the
    commit, no other greenlet runs while a request holds SQLite's write lock.
    It ends with a commit, which, with nothing written, ends it like a
    rollback but keeps the loaded objects as they were read (no reload).
    Skipped once the request has written (``mark_written``: tus
    creation-with-upload), whose transaction must stay.
    """
    if not session.info.get(_WROTE):
        session.commit()


@dataclass(frozen=True)
class BodyTransaction:
    """How a request's transaction spans the body it streams. The request boundary chooses
    it (``hmacfs.web.context``); the engine follows it at the points it names, so no
    service decides a transaction mode or commits.

    ``statements_alone`` (PostgreSQL chunk requests): reads and the chunk's one
    recording statement commit by themselves (``commit_each_statement``): no
    BEGIN, COMMIT or ROLLBACK round trips. ``hold`` (PostgreSQL tus PATCH): the
    transaction, with its row and advisory locks, stays open while the body
    streams; otherwise the connection goes back to the pool meanwhile.
    """

    statements_alone: bool = False
    hold: bool = False

    def before_reads(self, session: Session) -> None:
        """Reads that must see every commit so far follow (SQLite: a fresh snapshot)."""
        if not self.statements_alone:
            release_connection(session)

    def before_body(self, session: Session) -> bool:
        """A body streams next. True when the transaction ended: what it read may be stale."""
        if self.hold:
            return False
        release_connection(session)
        return True

    def before_record(self, session: Session) -> bool:
        """The statement that records the body follows; True when it commits by itself."""
        return self.statements_alone and commit_each_statement(session)

    def after_record(self, session: Session, alone: bool) -> None:
        """The record committed by itself (``alone``): end this transaction too, which
        releases what it held (range locks) and runs its after-commit work. Nothing is
        written by then, so it costs no round trip."""
        if alone:
            session.commit()


_ON_COMMIT = "hmacfs.db.on_commit"
_ON_ROLLBACK = "hmacfs.db.on_rollback"


def on_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``session``'s current (outermost) transaction has committed;
    it is forgotten if that transaction rolls back. For side effects that must not
    happen before the rows describing them are durable (deleting a part whose bytes a
    new blob row now holds)."""
    session.info.setdefault(_ON_COMMIT, []).append(callback)


def on_rollback(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` if ``session``'s current (outermost) transaction ends without
    committing (rolled back, or closed on an error); forgotten once it commits."""
    session.info.setdefault(_ON_ROLLBACK, []).append(callback)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.get_nested_transaction() is not None:  # a SAVEPOINT was released: not the end
        return
    session.info.pop(_ON_ROLLBACK, None)
    _run(session.info.pop(_ON_COMMIT, []))


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # after a commit, _committed has taken the callbacks
        session.info.pop(_ON_COMMIT, None)
        _run(session.info.pop(_ON_ROLLBACK, []))


def _run(callbacks: list[Callable[[], None]]) -> None:
    """The transaction has ended either way: a failing callback is logged, never raised,
    and the others still run (what it left behind is for the cleanup pass)."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("after-transaction callback %r failed", callback)


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
