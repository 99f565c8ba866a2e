"""``on_commit`` / ``on_rollback``: side effects tied to the end of the outermost transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hmacfs.db import on_commit, on_rollback


def test_on_commit_runs_after_the_outer_commit_only(session: Session) -> None:
    calls: list[str] = []
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: calls.append("commit"))
    on_rollback(session, lambda: calls.append("rollback"))
    with session.begin_nested():  # releasing a SAVEPOINT is not the end
        session.execute(text("SELECT 1"))
    assert calls == []
    session.commit()
    assert calls == ["commit"]
    session.execute(text("SELECT 1"))
    session.commit()
    assert calls == ["commit"]  # each callback runs once


def test_on_rollback_runs_when_the_transaction_ends_without_commit(session: Session) -> None:
    calls: list[str] = []
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: calls.append("commit"))
    on_rollback(session, lambda: calls.append("rollback"))
    session.rollback()
    assert calls == ["rollback"]
    session.execute(text("SELECT 1"))
    session.commit()
    assert calls == ["rollback"]


def test_a_failing_callback_is_logged_and_the_others_run(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    session.execute(text("SELECT 1"))
    on_commit(session, lambda: 1 / 0)  # type: ignore[func-returns-value]
    on_commit(session, lambda: calls.append("second"))
    session.commit()
    assert calls == ["second"] and "after-transaction callback" in caplog.text
