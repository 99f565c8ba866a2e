"""Per-account quotas and per-client network profiles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, JSONType, Timestamped, utcnow


class AccountQuota(Timestamped, Base):
    __tablename__ = "account_quotas"
    __table_args__ = (
        CheckConstraint("max_bytes >= 0", name="max_bytes_not_negative"),
        {"comment": "storage limit per account; absent row = uploads.default_quota"},
    )

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    max_bytes: Mapped[int] = mapped_column(BigInteger, comment="0 = unlimited")


class ClientProfile(Base):
    """One client on one kind of network, as measured (hmacfs.network.profiles).

    Keyed ``<account or "anonymous">:<client id>:<network class>``; rows unseen for
    ``performance.profile_persistence_duration`` are deleted by the cleanup pass.
    """

    __tablename__ = "client_profiles"
    __table_args__ = (
        CheckConstraint("samples >= 0", name="samples_not_negative"),
        CheckConstraint("reliability >= 0 AND reliability <= 1", name="reliability_is_a_ratio"),
        CheckConstraint("loss_ratio >= 0 AND loss_ratio <= 1", name="loss_is_a_ratio"),
        Index("ix_client_profiles_last_seen", "last_seen"),
        Index("ix_client_profiles_account_id", "account_id"),
        {"comment": "measured network behaviour per client, for buffer and chunk sizing"},
    )

    key: Mapped[str] = mapped_column(String(128), primary_key=True, comment="account:client id:network class")
    account_id: Mapped[uuid.UUID | None] = mapped_column(comment="owner; NULL = anonymous uploads")
    client_id: Mapped[str] = mapped_column(
        String(64), server_default="", default="",
        comment="Hmacfs-Client-Id, else a hash of User-Agent and address prefix",
    )  # fmt: skip
    connection_type: Mapped[str] = mapped_column(
        String(16), server_default="unknown", default="unknown",
        comment="network class: ethernet|wifi|lte|cellular|vpn|unknown",
    )  # fmt: skip
    throughput_bps: Mapped[float] = mapped_column(
        server_default=text("0"), default=0.0, comment="moving average of goodput, bytes/s; 0 = unmeasured"
    )
    rtt_ms: Mapped[float | None] = mapped_column(comment="moving average of the round trip, ms")
    loss_ratio: Mapped[float] = mapped_column(
        server_default=text("0"), default=0.0, comment="moving average of lost/resent segments per segment"
    )
    reliability: Mapped[float] = mapped_column(
        server_default=text("1"), default=1.0, comment="completed / attempted bodies, decaying window"
    )
    window_bodies: Mapped[float] = mapped_column(
        server_default=text("0"), default=0.0, comment="decayed count of bodies behind reliability"
    )
    chunk_size: Mapped[int | None] = mapped_column(BigInteger, comment="last recommended chunk size")
    buffer_size: Mapped[int | None] = mapped_column(BigInteger, comment="last recommended read buffer")
    samples: Mapped[int] = mapped_column(server_default=text("0"), default=0, comment="bodies measured")
    interface_history: Mapped[list[Any] | None] = mapped_column(
        JSONType, comment="recent bodies: at, address prefix, bytes/s, rtt, outcome (newest last)"
    )
    last_seen: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)
