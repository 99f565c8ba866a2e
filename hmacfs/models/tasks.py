"""Persistent background tasks claimed by ``hmacfs worker`` processes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, JSONType, Timestamped, in_list, utcnow
from hmacfs.models.status import TaskStatus, TaskType, values


class Task(Timestamped, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(in_list("status", values(TaskStatus)), name="status_valid"),
        CheckConstraint(in_list("type", values(TaskType)), name="type_valid"),
        CheckConstraint("priority BETWEEN 0 AND 100", name="priority_range"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # The claim query: highest priority first, FIFO within a priority.
        Index(
            "ix_tasks_pending_priority",
            text("priority DESC"),
            "created_at",
            postgresql_where=text("status = 'Pending'"),
            sqlite_where=text("status = 'Pending'"),
        ),
        Index(
            "ix_tasks_lease_expires_at",
            "lease_expires_at",
            postgresql_where=text("status = 'InProgress'"),
            sqlite_where=text("status = 'InProgress'"),
        ),
        Index("ix_tasks_account_id_type", "account_id", "type"),
        Index("ix_tasks_account_id_status", "account_id", "status"),
        {"comment": "generic background work (move, compress, encrypt, ...)"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    task_id: Mapped[str] = mapped_column(String(64), unique=True, comment="public id in URLs")
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(32))
    custom_type: Mapped[str | None] = mapped_column(
        String(100), comment="registered handler name for type Custom"
    )
    status: Mapped[str] = mapped_column(
        String(16), server_default=TaskStatus.PENDING.value, default=TaskStatus.PENDING.value
    )
    account_id: Mapped[uuid.UUID] = mapped_column(comment="owner")
    progress: Mapped[float] = mapped_column(server_default=text("0"), default=0.0, comment="0..100")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    results: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, comment="results and resumable checkpoints"
    )
    sealed_secret: Mapped[bytes | None] = mapped_column(
        comment="secret parameter sealed with the server key; erased when the task ends"
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(server_default=text("0"), default=0, comment="0..100")
    estimated_duration_seconds: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), comment="worker holding it")
    lease_expires_at: Mapped[datetime | None] = mapped_column(comment="lapsed lease = retry")
    run_after: Mapped[datetime | None] = mapped_column(comment="not claimed before this")
    last_activity: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
