"""The event log behind WebSocket delivery, replay and webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, text
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
