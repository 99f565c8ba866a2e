"""The event log on both backends: retention horizon, replay reads, the in-process commit hook."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.events import publish
from hmacfs.events.log import account_events_after, purge_events, purged_through
from hmacfs.events.publisher import on_commit, written_events


def test_purge_deletes_old_events_and_raises_the_horizon(app: Flask, session: Session) -> None:
    services = app.extensions["hmacfs"]
    account = uuid.uuid4()
    publish(session, account, "upload.progress", {"n": 1})
    publish(session, account, "upload.progress", {"n": 2})
    session.commit()
    old, new = written_events(session)
    old.created_at = services.clock.now() - timedelta(days=2)
    session.flush()
    assert purge_events(session, services.settings.events.retention, services.clock.now()) >= 1
    assert purged_through(session) == old.id
    assert [record.id for record in account_events_after(session, account, 0, 10)] == [new.id]
    assert account_events_after(session, uuid.uuid4(), 0, 10) == []


def test_commit_hooks_run_after_commit_only(sessions: sessionmaker[Session], backend: str) -> None:
    calls: list[int] = []
    on_commit(sessions, lambda: calls.append(1))
    with sessions() as session:
        publish(session, uuid.uuid4(), "task.created", {})
        session.rollback()
        assert calls == []
        publish(session, uuid.uuid4(), "task.created", {})
        session.commit()
        # PostgreSQL wakes listeners with NOTIFY instead of the in-process hook.
        assert calls == ([] if backend == "postgresql" else [1])
