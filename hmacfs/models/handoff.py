"""Who is writing an upload's chunk right now, for taking over a writer that went silent."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, utcnow


class UploadWriter(Base):
    """A row exists only while a writer is, or was lately, silent mid-body: a writer that
    keeps receiving bytes never touches this table (see ``hmacfs.uploads.handoff``)."""

    __tablename__ = "upload_writers"
    __table_args__ = (
        CheckConstraint("slot >= -1", name="slot_valid"),
        CheckConstraint("silent_ms >= 0", name="silent_ms_not_negative"),
        {"comment": "silent mid-body writers of an upload's chunk, and requests taking over from them"},
    )

    # No foreign key, on purpose: a tus writer holds its upload's row FOR UPDATE while its
    # body streams, and the key check of an insert here would wait for that very lock.
    # Rows outliving their upload are removed by the cleanup pass (uploads.writers).
    upload_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="upload_tasks.id")
    slot: Mapped[int] = mapped_column(primary_key=True, comment="chunk index; -1 = the offset writer (tus)")
    token: Mapped[str] = mapped_column(String(32), comment="random id of the writing request")
    client_address: Mapped[str | None] = mapped_column(String(45), comment="the writer's client address")
    network_class: Mapped[str | None] = mapped_column(String(16), comment="the writer's network class")
    silent_ms: Mapped[int] = mapped_column(
        server_default=text("0"), default=0, comment="how long the writer has had no byte, by its own clock"
    )
    preempted_by: Mapped[str | None] = mapped_column(
        String(32), comment="token of the request taking over; the writer stops at its next check"
    )
    updated_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)
