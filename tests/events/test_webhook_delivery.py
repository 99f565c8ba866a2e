"""Webhook delivery against a real database while events keep being published."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from hmacfs.config import EventsSettings, WebhookSettings
from hmacfs.db import make_engine
from hmacfs.events.webhooks import WebhookDeliverer
from hmacfs.migrate import upgrade
from hmacfs.ports import SystemClock
from tests.events_client import publish_events


def test_an_event_published_during_a_post_does_not_make_the_delivered_one_go_again(tmp_path: Path) -> None:
    """SQLite: a transaction that read before another connection committed cannot write
    afterwards (SQLITE_BUSY_SNAPSHOT). The cursor update after a POST must not be such
    a write, or the delivered event fails to be recorded and is sent again."""
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    upgrade(engine)
    account = uuid.uuid4()
    hook = WebhookSettings(url="http://127.0.0.1:9/hook", secret="s")
    sent: list[str] = []

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> bool:
        sent.append(headers["X-Hmacfs-Delivery"])
        if len(sent) == 1:  # another process publishes while this POST is in flight
            publish_events(engine, account, 1)
        return True

    deliverer = WebhookDeliverer(EventsSettings(webhooks=(hook,)), sessionmaker(engine), SystemClock(), post)
    deliverer.run_round()  # the cursor starts after the newest event
    first = publish_events(engine, account, 1)
    deliverer.run_round()
    deliverer.run_round()
    engine.dispose()
    assert sent == [str(first[0]), str(first[0] + 1)]  # each once, in order
