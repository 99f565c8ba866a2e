"""Request-scoped access to the application's services and database session."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from hmacfs.container import Services


def services() -> Services:
    """The Services of the current application."""
    found: Services = current_app.extensions["hmacfs"]
    return found


def db_session() -> Session:
    """The request's session, opened on first use; committed or rolled back by the
    request boundary in ``hmacfs.app``."""
    session: Session | None = g.get("db_session")
    if session is None:
        session = services().db.sessions()
        g.db_session = session
    return session
