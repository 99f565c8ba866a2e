"""Queue semantics: validation, sealing, claim order, leases, retries, user transitions."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hmacfs.composition import cleanup_steps, task_handlers
from hmacfs.container import Services
from hmacfs.errors import Conflict, NotFound, ValidationFailed
from hmacfs.models import Event, Task
from hmacfs.tasks import cancel_task, pause_task, resume_task, submit_task
from hmacfs.tasks.context import TaskContext, TaskStopped
from hmacfs.tasks.events import should_publish_progress
from hmacfs.tasks.queue import claim_tasks, release_task, requeue_lapsed
from tests.tasks.helpers import add_file

LEASE = timedelta(seconds=30)


def _custom(session: Session, services: Services, account: uuid.UUID, priority: int = 0) -> Task:
    return submit_task(session, services, account, "Custom", {"handler": "test-noop"}, priority=priority)


@pytest.mark.parametrize(
    ("type", "parameters", "field"),
    [
        ("Nope", {}, "type"),
        ("FileCompress", {}, "parameters.fileIds"),
        ("FileCompress", {"fileIds": ["not-a-uuid"]}, "parameters.fileIds"),
        ("FileCompress", {"fileIds": [str(uuid.uuid4())]}, "parameters.fileIds"),
        ("FileMove", {"fileIds": "x"}, "parameters.fileIds"),
        ("FileEncrypt", {"fileId": str(uuid.uuid4())}, "parameters.fileId"),
        ("BulkOperation", {"operationType": "explode"}, "parameters.operationType"),
        ("Custom", {}, "parameters.handler"),
        ("Custom", {"handler": "unregistered"}, "parameters.handler"),
        ("Custom", {"handler": "FileMove"}, "parameters.handler"),
    ],
)
def test_parameters_are_validated_before_storing(  # noqa: PLR0917
    session: Session,
    services: Services,
    account: uuid.UUID,
    type: str,
    parameters: dict[str, object],
    field: str,
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        submit_task(session, services, account, type, parameters)
    assert caught.value.details["field"] == field
    assert session.query(Task).count() == 0


def test_compress_level_and_format_are_checked(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    file = add_file(session, services, account, b"x")
    for bad, field in (
        ({"compressionLevel": 12}, "compressionLevel"),
        ({"compressionFormat": "rar"}, "compressionFormat"),
    ):
        with pytest.raises(ValidationFailed, match=field):
            submit_task(session, services, account, "FileCompress", {"fileIds": [str(file.id)], **bad})


def test_password_is_sealed_never_stored(session: Session, services: Services, account: uuid.UUID) -> None:
    file = add_file(session, services, account, b"data")
    task = submit_task(
        session, services, account, "FileEncrypt", {"fileId": str(file.id), "password": "hunter2"}
    )
    assert "password" not in task.parameters
    assert task.sealed_secret is not None and b"hunter2" not in task.sealed_secret
    assert services.sealer.unseal(task.sealed_secret, context=task.task_id) == "hunter2"
    session.commit()  # events are written when the transaction commits
    event = session.query(Event).filter_by(account_id=account).one()
    assert event.type == "task.created" and "hunter2" not in str(event.data)
    assert event.data["taskId"] == task.task_id and event.data["type"] == "FileEncrypt"


def test_claim_order_priority_then_fifo_and_run_after(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    now = services.clock.now()
    low = _custom(session, services, account, priority=0)
    high = _custom(session, services, account, priority=90)
    later = _custom(session, services, account, priority=90)
    later.created_at = now + timedelta(seconds=1)
    delayed = _custom(session, services, account, priority=100)
    delayed.run_after = now + timedelta(hours=1)
    session.flush()
    claimed = claim_tasks(session, "w1", now + timedelta(seconds=2), LEASE, limit=10)
    assert [t.task_id for t in claimed] == [high.task_id, later.task_id, low.task_id]
    assert all(t.attempts == 1 and t.name == "test-noop" for t in claimed)
    for task in (high, later, low):
        session.refresh(task)
        assert (task.status, task.attempts, task.lease_owner) == ("InProgress", 1, "w1")
    assert claim_tasks(session, "w2", now + timedelta(seconds=2), LEASE) == []


def test_lapsed_lease_is_retried_then_failed(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    task = _custom(session, services, account)
    now = services.clock.now()
    claim_tasks(session, "dead", now, LEASE)
    assert requeue_lapsed(session, services, now) == 0  # lease still valid
    assert requeue_lapsed(session, services, now + LEASE * 2) == 1
    session.refresh(task)
    assert (task.status, task.lease_owner, task.attempts) == ("Pending", None, 1)
    claim_tasks(session, "dead-again", now + LEASE * 2, LEASE)
    requeue_lapsed(session, services, now + LEASE * 4)  # max_attempts = 2 in these tests
    session.refresh(task)
    assert task.status == "Failed" and "max_attempts" in (task.error_message or "")


def test_release_gives_the_task_back_without_counting(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    task = _custom(session, services, account)
    now = services.clock.now()
    claim_tasks(session, "w", now, LEASE)
    assert release_task(session, task.id, "w", now)
    assert not release_task(session, task.id, "someone-else", now)
    session.refresh(task)
    assert (task.status, task.attempts, task.lease_owner) == ("Pending", 0, None)


def test_pause_resume_cancel_transitions(session: Session, services: Services, account: uuid.UUID) -> None:
    task = _custom(session, services, account)
    assert pause_task(session, services, account, task.task_id).status == "Paused"
    with pytest.raises(Conflict) as caught:
        pause_task(session, services, account, task.task_id)
    assert caught.value.code == "TASK_INVALID_TRANSITION"
    assert resume_task(session, services, account, task.task_id).status == "Pending"
    assert cancel_task(session, services, account, task.task_id).status == "Cancelled"
    for action in (pause_task, resume_task, cancel_task):
        with pytest.raises(Conflict):
            action(session, services, account, task.task_id)
    with pytest.raises(NotFound):
        cancel_task(session, services, uuid.uuid4(), task.task_id)
    session.commit()  # events are written when the transaction commits
    kinds = [e.type for e in session.query(Event).filter_by(account_id=account).order_by(Event.id)]
    assert kinds == ["task.created", "task.paused", "task.resumed", "task.cancelled"]


def test_checkpoint_stops_on_pause_cancel_and_shutdown(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    task = _custom(session, services, account)
    session.commit()
    [claimed] = claim_tasks(session, "w", services.clock.now(), LEASE)
    session.commit()
    stop = threading.Event()
    ctx = TaskContext.for_task(services, claimed, "w", stop)
    ctx.checkpoint(1, 4, state={"done": 1})
    session.refresh(task)
    assert task.progress == 25 and task.results["_checkpoint"] == {"done": 1}
    pause_task(session, services, account, task.task_id)
    session.commit()
    with pytest.raises(TaskStopped, match="paused"):
        ctx.checkpoint(2, 4)
    resume_task(session, services, account, task.task_id)  # worker still holds the lease: carries on
    session.commit()
    session.refresh(task)
    assert task.status == "InProgress"
    ctx.checkpoint(2, 4)
    stop.set()
    with pytest.raises(TaskStopped, match="shutdown"):
        ctx.checkpoint(3, 4, state={"done": 3})
    session.refresh(task)
    assert task.results["_checkpoint"] == {"done": 3}
    cancel_task(session, services, account, task.task_id)
    session.commit()
    stop.clear()
    with pytest.raises(TaskStopped, match="cancelled"):
        ctx.checkpoint(4, 4)


def test_finishing_completes_once_and_only_for_the_lease_holder(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    task = _custom(session, services, account)
    session.commit()
    now = services.clock.now()
    [stale] = claim_tasks(session, "w1", now, LEASE)
    requeue_lapsed(session, services, now + LEASE * 2)  # w1 looks dead: the task goes to w2
    [fresh] = claim_tasks(session, "w2", now + LEASE * 2, LEASE)
    session.commit()
    lost = TaskContext.for_task(services, stale, "w1", threading.Event())
    lost.results["from"] = "w1"
    with pytest.raises(TaskStopped, match="lost"), lost.finishing():
        raise AssertionError("the block of a worker that lost its lease must not run")
    owner = TaskContext.for_task(services, fresh, "w2", threading.Event())
    owner.results["before"] = 1
    with owner.finishing() as inside:
        inside.add(Event(account_id=account, type="test.effect", data={}))
        owner.results["inside"] = 2  # results a block adds are written too
    session.refresh(task)
    assert (task.status, task.progress, task.lease_owner) == ("Completed", 100.0, None)
    assert task.results == {"before": 1, "inside": 2}
    completed = session.query(Event).filter_by(account_id=account, type="task.completed").one()
    assert completed.data["results"] == {"before": 1, "inside": 2}
    assert session.query(Event).filter_by(account_id=account, type="test.effect").count() == 1
    with pytest.raises(TaskStopped, match="lost"), owner.finishing():
        raise AssertionError("a finished task cannot complete again")


def test_progress_throttle() -> None:
    assert should_publish_progress(None, None, 1.0, 0.0, min_step=5, min_interval=1)
    assert not should_publish_progress(1.0, 0.0, 2.0, 0.5, min_step=5, min_interval=1)
    assert should_publish_progress(1.0, 0.0, 6.0, 0.5, min_step=5, min_interval=1)
    assert should_publish_progress(1.0, 0.0, 2.0, 1.0, min_step=5, min_interval=1)
    assert not should_publish_progress(2.0, 0.0, 2.0, 9.0, min_step=5, min_interval=1)


def test_retention_cleanup(session: Session, services: Services, account: uuid.UUID) -> None:
    from hmacfs.tasks.queries import cleanup_step

    old, fresh = _custom(session, services, account), _custom(session, services, account)
    now = services.clock.now()
    for task in (old, fresh):
        cancel_task(session, services, account, task.task_id)
    old.last_activity = now - timedelta(days=31)
    session.flush()
    assert cleanup_step(session, services, now) == 1
    assert [t.task_id for t in session.query(Task).all()] == [fresh.task_id]


def test_commits_without_wal_wait_still_complete(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    from dataclasses import replace

    from tests.tasks.conftest import drain

    settings = services.settings
    fast = replace(
        services,
        settings=settings.model_copy(
            update={"tasks": settings.tasks.model_copy(update={"durable_commits": False, "claim_batch": 4})}
        ),
    )
    tasks = [_custom(session, services, account) for _ in range(5)]
    session.commit()
    drain(fast)
    for task in tasks:
        session.refresh(task)
        assert task.status == "Completed" and task.results == {"ok": True}


def test_the_periodic_cleanup_runs_the_tasks_step(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    import hmacfs.web.tasks  # noqa: F401  (the app registers the step when it loads the blueprint)
    from hmacfs.maintenance import run_cleanup

    task = _custom(session, services, account)
    cancel_task(session, services, account, task.task_id)
    task.last_activity = services.clock.now() - timedelta(days=31)
    session.commit()
    result = run_cleanup(services, cleanup_steps())
    assert result is not None and result["tasks.finished"] == 1


def test_worker_loop_survives_database_errors(tmp_path: Path) -> None:
    from hmacfs.composition import build_services
    from hmacfs.tasks.worker import Worker
    from tests.conftest import make_settings

    broken = build_services(make_settings(tmp_path, f"sqlite:///{tmp_path}/missing-dir/none/x.db"))
    stop = threading.Event()
    worker = Worker(broken, stop, task_handlers(broken.settings))
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    worker.run_forever()  # returns once stopped instead of dying on the first error
    timer.join()
    assert stop.is_set()


def test_claim_size_grows_only_for_a_deep_queue_of_short_tasks() -> None:
    from hmacfs.tasks.worker import ClaimSize

    size = ClaimSize(limit=8)
    for expected in (2, 4, 8, 8):  # full claims, 1 ms per task: double up to the limit
        size.update(asked=size.size, got=size.size, seconds=0.001 * size.size)
        assert size.size == expected
    size.update(asked=8, got=3, seconds=0.003)  # the queue ran short: back to one
    assert size.size == 1
    size.update(asked=1, got=1, seconds=ClaimSize.WINDOW)  # a task as long as the window: stay at one
    assert size.size == 1
    size.size = 8
    size.update(asked=8, got=8, seconds=8 * ClaimSize.WINDOW / 4)  # tasks of a quarter window: halve
    assert size.size == 4
    one_at_a_time = ClaimSize(limit=1)
    one_at_a_time.update(asked=1, got=1, seconds=0.0001)
    assert one_at_a_time.size == 1


def test_a_slot_gives_back_claimed_tasks_still_waiting_behind_a_long_one(
    session: Session, services: Services, account: uuid.UUID
) -> None:
    from hmacfs.tasks.worker import Worker

    parameters = {"handler": "test-sleep", "seconds": 0.2}
    long = submit_task(session, services, account, "Custom", parameters, priority=10)  # claimed first
    waiting = [_custom(session, services, account) for _ in range(2)]
    session.commit()
    worker = Worker(services, threading.Event(), task_handlers(services.settings))
    worker._give_back_after = 0.1
    worker.claim_size.size = 3  # as if its earlier tasks had been short
    assert worker.run_once()
    for task in (long, *waiting):
        session.refresh(task)
    assert long.status == "Completed"
    # Given back untouched: Pending, attempt not counted, free for any slot.
    assert [(t.status, t.attempts, t.lease_owner) for t in waiting] == [("Pending", 0, None)] * 2
    assert worker.claim_size.size == 1  # the long task taught it to claim one at a time
