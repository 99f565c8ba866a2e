"""publish() takes its per-account lock at commit, after every other lock of the transaction."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from hmacfs.events import publish
from hmacfs.events.publisher import written_events
from hmacfs.events.sql import NOTIFY_CHANNEL
from hmacfs.models import Event, Pool


def test_publishing_before_a_row_lock_cannot_deadlock(backend: str, engine: Engine) -> None:
    """T1 publishes, then wants row R; T2 holds R, publishes and commits. With the
    account lock taken at publish time this deadlocked; now T2 commits, then T1."""
    if backend != "postgresql":
        pytest.skip("row locks and advisory locks are PostgreSQL's")
    account = uuid.uuid4()
    with Session(engine) as setup:
        pool = Pool(name=f"lock-{uuid.uuid4().hex[:8]}")
        setup.add(pool)
        setup.commit()
        pool_id = pool.id
    t2_has_row = threading.Event()
    t1_published = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with Session(engine) as session:
                publish(session, account, "upload.progress", {"n": 1})
                t1_published.set()
                t2_has_row.wait(10)
                session.execute(update(Pool).where(Pool.id == pool_id).values(public=True))
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    def second() -> None:
        try:
            with Session(engine) as session:
                session.execute(update(Pool).where(Pool.id == pool_id).values(allow_anonymous=True))
                t2_has_row.set()
                t1_published.wait(10)
                publish(session, account, "upload.completed", {"n": 2})
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with Session(engine) as check:
        types = check.scalars(select(Event.type).where(Event.account_id == account).order_by(Event.id)).all()
        assert types == ["upload.completed", "upload.progress"]  # ids follow commit order
        check.execute(Event.__table__.delete().where(Event.account_id == account))
        check.execute(Pool.__table__.delete().where(Pool.id == pool_id))
        check.commit()


def test_events_of_a_rolled_back_transaction_are_never_written(session: Session) -> None:
    account = uuid.uuid4()
    publish(session, account, "upload.failed", {})
    session.rollback()
    session.commit()
    assert written_events(session) == []
    assert session.scalars(select(Event).where(Event.account_id == account)).all() == []


def test_a_rolled_back_savepoint_drops_only_its_own_events(session: Session) -> None:
    account = uuid.uuid4()
    publish(session, account, "task.created", {"kept": True})
    savepoint = session.begin_nested()
    publish(session, account, "task.failed", {"kept": False})
    savepoint.rollback()
    session.commit()
    assert [event.data for event in written_events(session)] == [{"kept": True}]


def test_one_commit_writes_many_events_in_order_and_announces_each(backend: str, engine: Engine) -> None:
    """Several events of several accounts in one commit: ids follow publication order, one
    NOTIFY per event (PostgreSQL), and written_events gives the rows back, attached."""
    first, second = uuid.uuid4(), uuid.uuid4()
    accounts = [first, second, first, second, first]
    listener = None
    if backend == "postgresql":
        pooled = engine.raw_connection()
        pooled.detach()  # closed, not pooled, afterwards: autocommit must not leak into other tests
        listener = pooled.dbapi_connection
        listener.autocommit = True
        listener.cursor().execute(f"LISTEN {NOTIFY_CHANNEL}")
    try:
        with Session(engine) as session:
            for index, account in enumerate(accounts):
                publish(session, account, "test.many", {"n": index})
            session.commit()
            written = written_events(session)
            assert [event.data["n"] for event in written] == [0, 1, 2, 3, 4]
            assert [event.account_id for event in written] == accounts
            ids = [event.id for event in written]
            assert ids == sorted(ids) and len(set(ids)) == 5
            assert written_events(session) == written  # the same attached objects when asked again
            written[0].data = {"n": "changed"}
            session.commit()
        with Session(engine) as check:
            stored = check.scalars(select(Event).where(Event.id.in_(ids)).order_by(Event.id)).all()
            assert [(e.account_id, e.data["n"]) for e in stored] == [
                (first, "changed"),
                (second, 1),
                (first, 2),
                (second, 3),
                (first, 4),
            ]
            check.execute(Event.__table__.delete().where(Event.id.in_(ids)))
            check.commit()
        if listener is not None:
            listener.poll()
            payloads = [note.payload for note in listener.notifies]
            assert payloads == [f"{i}:{a}" for i, a in zip(ids, accounts, strict=True)]
    finally:
        if listener is not None:
            listener.close()
