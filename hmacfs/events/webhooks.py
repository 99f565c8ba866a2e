"""Webhooks: every matching event POSTed as signed JSON, at least once, in order.

One process at a time delivers (the ``hmacfs:webhooks`` lock). Each webhook
has a cursor row: the last event id handled plus the ids below it not seen yet
(a transaction still open, or rolled back). A gap id that shows up later is
delivered then; that keeps each account's order because one account's events
commit in id order (see ``publish``). A failing POST blocks its webhook and is
retried with exponential backoff until the event is ``webhook_max_retry`` old.
The cursor is committed after every delivered event, so a restart neither
loses nor re-sends (except the one event in flight at a crash: at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import requests
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.config import EventsSettings, WebhookSettings
from hmacfs.events.log import latest_event_id
from hmacfs.events.records import EventRecord, type_matches
from hmacfs.models import Event, WebhookCursor
from hmacfs.models.base import iso_utc
from hmacfs.ports import Clock, LockBusy, Locker

log = logging.getLogger(__name__)

LOCK = "hmacfs:webhooks"
BATCH = 200
GAP_PATIENCE = 60.0  # seconds a missing id may still commit (as the event bus assumes)
MAX_GAPS = 1000
MAX_BACKOFF = timedelta(minutes=10)

Post = Callable[[str, bytes, dict[str, str], float], bool]


def webhook_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hmacfs-Signature`` header value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(record: EventRecord) -> bytes:
    envelope = {
        "id": record.id,
        "type": record.type,
        "ts": iso_utc(record.ts),
        "account": str(record.account_id),
        "data": record.data,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def retry_delay(first: timedelta, attempts: int) -> timedelta:
    """Backoff before retry number ``attempts`` (1 = after the first failure)."""
    delay: timedelta = min(first * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return delay


def advance(cursor: WebhookCursor, event_id: int, now: float) -> None:
    """Mark ``event_id`` handled: close its gap, or move past it opening gaps for skipped ids."""
    gaps = dict(cursor.gaps)
    if event_id <= cursor.last_event_id:
        gaps.pop(str(event_id), None)
    else:
        for missing in range(max(cursor.last_event_id + 1, event_id - MAX_GAPS), event_id):
            gaps[str(missing)] = now
        cursor.last_event_id = event_id
    stale = [key for key, seen in gaps.items() if seen < now - GAP_PATIENCE]
    for key in stale:
        del gaps[key]
    if len(gaps) > MAX_GAPS:
        gaps = dict(sorted(gaps.items(), key=lambda item: int(item[0]))[-MAX_GAPS:])
    cursor.gaps = gaps


def http_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> bool:
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        log.warning("webhook %s failed: %s", url, type(error).__name__)
        return False
    return 200 <= response.status_code < 300


@dataclass
class WebhookDeliverer:
    """Delivers the configured webhooks; ``run_round`` is one pass over all of them."""

    settings: EventsSettings
    sessions: sessionmaker[Session]
    clock: Clock
    post: Post = http_post

    def run_round(self) -> bool:
        """Deliver what is due; True when a webhook had a full batch (more to do at once)."""
        busy = False
        for hook in self.settings.webhooks:
            busy |= self._deliver(hook)
        return busy

    def _deliver(self, hook: WebhookSettings) -> bool:
        with self.sessions() as session:
            cursor = _cursor(session, webhook_key(hook.url))
            now = self.clock.now()
            if cursor.next_attempt_at is not None and cursor.next_attempt_at > now:
                return False
            records = _pending(session, cursor)
            # No transaction stays open across a POST: it would idle for up to the webhook
            # timeout, and on SQLite a transaction that read before another connection
            # committed cannot write afterwards (SQLITE_BUSY_SNAPSHOT), so the cursor update
            # would fail after a successful POST and the event would be sent again.
            session.commit()
            for record in records:
                if not self._send(session, cursor, hook, record):
                    return False
                advance(cursor, record.id, self.clock.now().timestamp())
                cursor.attempts, cursor.next_attempt_at, cursor.last_error = 0, None, None
                session.commit()
            advance(cursor, cursor.last_event_id, now.timestamp())  # expire stale gaps
            session.commit()
            return len(records) >= BATCH

    def _send(
        self, session: Session, cursor: WebhookCursor, hook: WebhookSettings, record: EventRecord
    ) -> bool:
        if not type_matches(hook.types, record.type):
            return True
        body = webhook_body(record)
        headers = {
            "Content-Type": "application/json",
            "X-Hmacfs-Signature": signature(hook.secret, body),
            "X-Hmacfs-Event": record.type,
            "X-Hmacfs-Delivery": str(record.id),
        }
        events = self.settings
        if self.post(hook.url, body, headers, events.webhook_timeout.total_seconds()):
            return True
        now = self.clock.now()
        if record.ts < now - events.webhook_max_retry:
            log.error(
                "webhook %s: giving up on event %d after %s", hook.url, record.id, events.webhook_max_retry
            )
            return True
        cursor.attempts += 1
        cursor.next_attempt_at = now + retry_delay(events.webhook_backoff, cursor.attempts)
        cursor.last_error = f"event {record.id}: POST failed"
        session.commit()
        return False


def _cursor(session: Session, key: str) -> WebhookCursor:
    """The webhook's cursor; a new webhook starts after the latest event (no history)."""
    cursor = session.get(WebhookCursor, key)
    if cursor is None:
        cursor = WebhookCursor(webhook=key, last_event_id=latest_event_id(session), gaps={}, attempts=0)
        session.add(cursor)
        session.commit()
    return cursor


def _pending(session: Session, cursor: WebhookCursor) -> list[EventRecord]:
    gap_ids = [int(key) for key in cursor.gaps]
    condition = Event.id > cursor.last_event_id
    if gap_ids:
        condition = or_(condition, Event.id.in_(gap_ids))
    rows = session.scalars(select(Event).where(condition).order_by(Event.id).limit(BATCH))
    return [EventRecord.of(row) for row in rows]


def deliver_webhooks_forever(
    deliverer: WebhookDeliverer,
    locker: Locker,
    wake: threading.Event,
    sleep: Callable[[float], None],
    poll: float = 0.5,
) -> None:
    """Loop for a worker greenlet: deliver while this process holds the webhook lock."""
    if not deliverer.settings.webhooks:
        return
    while True:
        try:
            with locker.hold(LOCK):
                while True:
                    if not deliverer.run_round():
                        wake.wait(poll)
                        wake.clear()
        except LockBusy:
            sleep(5.0)
        except Exception:  # keep delivering whatever one round does
            log.exception("webhook delivery failed")
            sleep(1.0)
