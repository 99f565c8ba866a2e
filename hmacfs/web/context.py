"""Request-scoped access to the application's services and database session, and the
transaction mode a request runs its session in (chosen here, at the request boundary)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import current_app, g
from sqlalchemy.orm import Session

from hmacfs.container import Services
from hmacfs.db import BodyTransaction, commit_each_statement

P = ParamSpec("P")
R = TypeVar("R")


def services() -> Services:
    """The Services of the current application."""
    found: Services = current_app.extensions["hmacfs"]
    return found


def db_session() -> Session:
    """The request's session, opened on first use in the request's transaction mode
    (``body_transaction``); committed or rolled back by the request boundary in ``hmacfs.app``."""
    session: Session | None = g.get("db_session")
    if session is None:
        session = services().db.sessions()
        g.db_session = session
        if body_transaction().statements_alone:
            commit_each_statement(session)  # its reads need no transaction (a round trip is 0.3 ms)
    return session


def body_transaction() -> BodyTransaction:
    """How this request's transaction spans the body it streams (see the two marks below)."""
    found: BodyTransaction | None = g.get("body_transaction")
    return found or BodyTransaction()


def chunk_request(view: Callable[P, R]) -> Callable[P, R]:
    """Mark a view that stores one numbered chunk. On PostgreSQL its reads and the chunk's
    recording statement commit by themselves: no BEGIN, COMMIT or ROLLBACK round trips."""

    @functools.wraps(view)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        g.body_transaction = BodyTransaction(statements_alone=services().db.is_postgresql)
        return view(*args, **kwargs)

    return run


def hold_through_body() -> None:
    """Mark this request as an offset writer (tus): on PostgreSQL its transaction, holding
    the upload's advisory and row locks, stays open while the body streams; on SQLite
    (one process, in-process locks) the connection goes back meanwhile."""
    g.body_transaction = BodyTransaction(hold=services().db.is_postgresql)
