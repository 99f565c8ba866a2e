"""Pure parts of event delivery: hub fan-out, filters, the bus's delivered-id floor, webhook cursors."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hmacfs.events.bus import Backoff, DeliveredIds, parse_notification
from hmacfs.events.hub import RESYNC, Hub, Subscriber
from hmacfs.events.records import EventRecord, parse_filter, type_matches
from hmacfs.events.stream import parse_since
from hmacfs.events.webhooks import advance, retry_delay, signature
from hmacfs.models import WebhookCursor


def _record(event_id: int, account: uuid.UUID, type: str = "upload.progress", **data: object) -> EventRecord:
    return EventRecord(event_id, account, type, datetime.now(UTC), dict(data), f'{{"id":{event_id}}}')


def test_hub_delivers_only_to_the_events_account() -> None:
    hub, mine, other = Hub(), uuid.uuid4(), uuid.uuid4()
    wakes: list[int] = []
    subscriber = Subscriber(mine, 10, lambda: wakes.append(1))
    hub.add(subscriber)
    hub.deliver([_record(1, other), _record(2, mine)])
    assert subscriber.take() == ['{"id":2}'] and wakes == [1]
    hub.remove(subscriber)
    assert not hub.wants(mine) and len(hub) == 0


def test_full_queue_is_dropped_for_a_resync_then_fills_again() -> None:
    subscriber = Subscriber(uuid.uuid4(), 2, lambda: None)
    for event_id in range(1, 4):
        subscriber.offer(_record(event_id, subscriber.account_id))
    subscriber.offer(_record(4, subscriber.account_id))
    assert subscriber.take() == [RESYNC, '{"id":4}']


def test_replayed_ids_are_not_sent_again_live() -> None:
    subscriber = Subscriber(uuid.uuid4(), 10, lambda: None)
    for event_id in (3, 4, 5):
        subscriber.offer(_record(event_id, subscriber.account_id))
    subscriber.floor = 4
    assert subscriber.take() == ['{"id":5}']


def test_filters_by_type_glob_and_task_id() -> None:
    account = uuid.uuid4()
    wanted = parse_filter({"type": "subscribe", "types": ["task.*"], "taskIds": ["a", 7]})
    assert wanted.accepts(_record(1, account, "task.progress", taskId="a"))
    assert wanted.accepts(_record(1, account, "task.done", taskId=7))
    assert not wanted.accepts(_record(1, account, "upload.progress", taskId="a"))
    assert not wanted.accepts(_record(1, account, "task.progress", taskId="b"))
    assert type_matches((), "anything") and not type_matches(("upload.*",), "task.created")
    with pytest.raises(ValueError):
        parse_filter({"types": "upload.*"})


@pytest.mark.parametrize("value", [-1, "x", None, True, 1.5])
def test_since_must_be_an_event_id(value: object) -> None:
    with pytest.raises(ValueError):
        parse_since(value)


def test_delivered_ids_move_the_floor_only_after_the_margin() -> None:
    delivered = DeliveredIds(margin=60, floor=10)
    delivered.add(12, now=100.0)
    delivered.add(11, now=130.0)  # commit order differs from id order
    assert 12 in delivered and delivered.floor == 10
    delivered.add(13, now=165.0)
    assert 12 not in delivered and delivered.floor == 12 and 11 in delivered


def test_notifications_and_backoff() -> None:
    account = uuid.uuid4()
    assert parse_notification(f"42:{account}") == (42, account)
    assert parse_notification("nonsense") is None
    backoff = Backoff(0.1, 0.3)
    assert [backoff.next() for _ in range(3)] == [0.1, 0.2, 0.3]
    backoff.reset()
    assert backoff.next() == 0.1


def test_webhook_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"id":1}'
    assert signature("s", body) == "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    assert retry_delay(timedelta(seconds=1), 3) == timedelta(seconds=4)
    assert retry_delay(timedelta(seconds=1), 30) == timedelta(minutes=10)


def test_webhook_cursor_remembers_gaps_until_they_commit_or_expire() -> None:
    cursor = WebhookCursor(webhook="k", last_event_id=5, gaps={}, attempts=0)
    advance(cursor, 8, now=1000.0)
    assert cursor.last_event_id == 8 and set(cursor.gaps) == {"6", "7"}
    advance(cursor, 7, now=1001.0)  # a late commit fills its gap
    assert cursor.last_event_id == 8 and set(cursor.gaps) == {"6"}
    advance(cursor, 9, now=1100.0)  # gap 6 outlived the patience: a rolled-back id
    assert cursor.gaps == {}
