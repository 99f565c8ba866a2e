"""Token buckets of the rate limiter, shared by every worker and node (``hmacfs.ratelimit``)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base


class RateLimitBucket(Base):
    __tablename__ = "rate_limit_buckets"
    __table_args__ = (
        CheckConstraint("tokens >= 0", name="tokens_not_negative"),
        Index("ix_rate_limit_buckets_updated_at", "updated_at"),
        {"comment": "one token bucket per limited key; an absent row is a full bucket"},
    )

    key: Mapped[str] = mapped_column(
        String(200), primary_key=True, comment="kind:subject, e.g. address:10.0.0.7"
    )
    tokens: Mapped[float] = mapped_column(comment="tokens left at updated_at")
    updated_at: Mapped[float] = mapped_column(comment="database clock, Unix seconds, of the last take")
    rate: Mapped[float] = mapped_column(comment="tokens added per second (the last take's setting)")
    burst: Mapped[float] = mapped_column(comment="bucket capacity (the last take's setting)")
    cost: Mapped[float] = mapped_column(comment="tokens the last take asked for (0 = a look)")
    allowed: Mapped[bool] = mapped_column(comment="whether the last take was granted")
