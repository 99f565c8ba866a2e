"""One client's stream of its account's events: replay, then live, with filters.

Transport-free: the WebSocket adapter feeds client messages to ``handle`` and
calls ``flush`` when woken; everything to send goes through ``send``.

Replay hands over to live delivery without gap or duplicate: the subscriber
joins the hub first, the replay then reads the log in short sessions, and live
events with an id at or below the last replayed one are dropped. One account's
events commit in id order (see ``publish``), so every live event not covered
by the replay has a higher id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from hmacfs.events.hub import RESYNC, Hub, Subscriber
from hmacfs.events.log import account_events_after, purged_through
from hmacfs.events.records import parse_filter

REPLAY_BATCH = 500
PONG = '{"type":"pong"}'


# Event ids are BIGINT: a larger ``since`` would never be reached, so nothing would arrive.
MAX_EVENT_ID = 2**63 - 1


def parse_since(value: Any) -> int:
    """A client's ``since`` (an event id, >= 0); raises ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("since must be an event id")
    since = int(value)
    if not 0 <= since <= MAX_EVENT_ID:
        raise ValueError("since must be an event id")
    return since


def error_message(text: str) -> str:
    return json.dumps({"type": "error", "message": text})


class EventStream:
    def __init__(
        self,
        account_id: uuid.UUID,
        hub: Hub,
        sessions: sessionmaker[Session],
        *,
        capacity: int,
        send: Callable[[str], None],
        wake: Callable[[], None],
    ) -> None:
        self.subscriber = Subscriber(account_id, capacity, wake)
        self._hub = hub
        self._sessions = sessions
        self._send = send

    def open(self, since: int | None) -> None:
        self._hub.add(self.subscriber)
        if since is not None:
            self.replay(since)

    def close(self) -> None:
        self._hub.remove(self.subscriber)

    def flush(self) -> bool:
        """Send what is queued; False once the stream must end (server shutting down)."""
        for message in self.subscriber.take():
            self._send(message)
        return not self.subscriber.closing

    def handle(self, text: str | bytes) -> None:
        """Act on one client message; a malformed one is answered with an error message."""
        try:
            message = json.loads(text)
            if not isinstance(message, dict):
                raise ValueError("a message is a JSON object")
            self._dispatch(message)
        except ValueError as error:
            self._send(error_message(str(error)))

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            self._send(PONG)
        elif kind == "subscribe":
            self.subscriber.filter = parse_filter(message)
        elif kind == "resume":
            self.replay(parse_since(message.get("since")))
        elif kind != "auth":  # a repeated auth on an authenticated socket is harmless
            raise ValueError(f"unknown message type: {kind!r}")

    def replay(self, since: int) -> None:
        """Send every retained event after ``since``, or resync when some are gone."""
        with self._sessions() as session:
            horizon = purged_through(session)
        if since < horizon:
            self._send(RESYNC)
            return
        cursor = since
        while True:
            with self._sessions() as session:
                batch = account_events_after(session, self.subscriber.account_id, cursor, REPLAY_BATCH)
            if not batch:
                break
            for record in batch:
                if self.subscriber.filter.accepts(record):
                    self._send(record.message)
            cursor = batch[-1].id
        self.subscriber.floor = max(self.subscriber.floor, cursor)
