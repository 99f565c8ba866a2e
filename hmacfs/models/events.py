"""The event log behind WebSocket delivery, replay and webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, BigIntId, JSONType, utcnow


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_account_id_id", "account_id", "id"),
        Index("ix_events_created_at", "created_at"),
        {"comment": "append-only event log; ids are monotonic"},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = mapped_column(comment="only this account receives it")
    type: Mapped[str] = mapped_column(String(64), comment="e.g. upload.progress")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)


class EventLogState(Base):
    """One row: how far the retention purge has deleted, so replay knows what it can still answer."""

    __tablename__ = "event_log_state"
    __table_args__ = ({"comment": "single row (id = 1) describing the event log"},)

    id: Mapped[int] = mapped_column(primary_key=True, comment="always 1")
    purged_through: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), default=0, comment="every event with id <= this may be gone"
    )


class WebhookCursor(Base):
    """Delivery state of one configured webhook (keyed by a hash of its URL)."""

    __tablename__ = "webhook_cursors"
    __table_args__ = ({"comment": "per-webhook delivery position; survives restarts"},)

    webhook: Mapped[str] = mapped_column(String(64), primary_key=True, comment="sha256 of the webhook URL")
    last_event_id: Mapped[int] = mapped_column(BigInteger, comment="every event <= this is done, gaps aside")
    gaps: Mapped[dict[str, float]] = mapped_column(
        JSONType, comment="ids below last_event_id not seen yet -> unix time the gap was found"
    )
    attempts: Mapped[int] = mapped_column(
        server_default=text("0"), default=0, comment="failed tries of the head event"
    )
    next_attempt_at: Mapped[datetime | None] = mapped_column(comment="no retry before this (backoff)")
    last_error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(
        server_default=text("CURRENT_TIMESTAMP"), default=utcnow, onupdate=utcnow
    )
