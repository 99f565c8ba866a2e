"""Per-account quotas and per-client network profiles."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, Timestamped, utcnow


class AccountQuota(Timestamped, Base):
    __tablename__ = "account_quotas"
    __table_args__ = (
        CheckConstraint("max_bytes >= 0", name="max_bytes_not_negative"),
        {"comment": "storage limit per account; absent row = uploads.default_quota"},
    )

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    max_bytes: Mapped[int] = mapped_column(BigInteger, comment="0 = unlimited")


class ClientProfile(Base):
    __tablename__ = "client_profiles"
    __table_args__ = (
        CheckConstraint("samples >= 0", name="samples_not_negative"),
        {"comment": "measured network behaviour per client, for buffer and chunk sizing"},
    )

    key: Mapped[str] = mapped_column(String(128), primary_key=True, comment="client fingerprint")
    connection_type: Mapped[str] = mapped_column(
        String(16), server_default="unknown", default="unknown", comment="ethernet|wifi|lte|..."
    )
    throughput_bps: Mapped[float] = mapped_column(
        server_default=text("0"), default=0.0, comment="smoothed bytes per second"
    )
    rtt_ms: Mapped[float | None] = mapped_column(comment="smoothed round-trip time")
    chunk_size: Mapped[int | None] = mapped_column(BigInteger, comment="preferred chunk size")
    buffer_size: Mapped[int | None] = mapped_column(BigInteger, comment="preferred read buffer")
    samples: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    last_seen: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)
