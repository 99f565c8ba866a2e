"""Client profiles: one per account, client and network class, updated after every body.

``recommend`` turns what is known about a client (its profile, its
``Hmacfs-Network`` hint) into the chunk and buffer sizes the server
recommends; ``record_body`` folds one measured body into the profile;
``expire_profiles`` is the cleanup step. docs/adaptive.md has the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hmacfs.models import ClientProfile
from hmacfs.network import sql
from hmacfs.network.estimate import (
    UNMEASURED,
    BodyMeasurement,
    LinkEstimate,
    NetworkClass,
    combine,
    estimate_body,
)
from hmacfs.network.keys import ClientKey
from hmacfs.network.sizing import ChunkRule, recommend_buffer_size, recommend_chunk_size
from hmacfs.network.strategy import Arm

if TYPE_CHECKING:
    from hmacfs.config import Settings
    from hmacfs.container import Services


@dataclass(frozen=True)
class NetworkHint:
    """What a client said of its network (``Hmacfs-Network``): class, downlink in Mbit/s, RTT in ms."""

    network_class: NetworkClass
    downlink_mbps: float | None = None
    rtt_ms: float | None = None

    def estimate(self) -> LinkEstimate:
        rate = None if self.downlink_mbps is None else self.downlink_mbps * 1_000_000 / 8
        return LinkEstimate(throughput=rate, rtt_ms=self.rtt_ms, loss=0.0, reliability=1.0)


@dataclass(frozen=True)
class Recommendation:
    """The sizes for one client now, and what they were chosen from."""

    chunk_size: int
    buffer_size: int
    network_class: NetworkClass
    estimate: LinkEstimate
    source: str  # "measured", "hint", "measured+hint" (behind a proxy) or "none"
    arm: Arm


def estimate_of(profile: ClientProfile | None) -> LinkEstimate:
    """A stored profile as a LinkEstimate (UNMEASURED for none)."""
    if profile is None or not profile.samples:
        return UNMEASURED
    return LinkEstimate(
        throughput=profile.throughput_bps or None,
        rtt_ms=profile.rtt_ms,
        loss=profile.loss_ratio,
        reliability=profile.reliability,
        bodies=profile.window_bodies,
    )


def choose_estimate(
    measured: LinkEstimate, hint: NetworkHint | None, *, behind_proxy: bool
) -> tuple[LinkEstimate, str]:
    """Which estimate to size by. Directly connected, the server's own measurement wins and
    the hint only stands in for a client never measured. Behind a proxy the kernel saw
    the proxy, so the hint's rate and RTT win, and the measured reliability stays."""
    if hint is None:
        return measured, "measured" if measured.bodies else "none"
    said = hint.estimate()
    if not behind_proxy:
        return (measured, "measured") if measured.bodies else (said, "hint")
    if not measured.bodies:
        return said, "hint"
    merged = LinkEstimate(
        throughput=said.throughput or measured.throughput,
        rtt_ms=said.rtt_ms if said.rtt_ms is not None else measured.rtt_ms,
        loss=measured.loss,
        reliability=measured.reliability,
        bodies=measured.bodies,
    )
    return merged, "measured+hint"


def recommend(
    settings: Settings,
    estimate: LinkEstimate,
    source: str,
    network_class: NetworkClass,
    arm: Arm,
    *,
    file_size: int | None = None,
) -> Recommendation:
    """The chunk and starting buffer size for ``arm``: the fixed arm (and each adaptive
    part whose strategy is ``fixed``) gets the configured sizes; the adaptive arm's are
    bounded by the client's class in ``[network_interfaces]``."""
    uploads, performance = settings.uploads, settings.performance
    chunk, buffer = uploads.chunk_size, performance.max_buffer_size
    # [network_interfaces]: a named class's sizes are its starting chunk size and the upper
    # bounds of both rules; "unknown" is no class, so it bounds nothing.
    tuning = None if network_class is NetworkClass.UNKNOWN else settings.network_interfaces.of(network_class)
    if arm is Arm.ADAPTIVE and performance.adaptive("chunk"):
        low, high = uploads.min_chunk_size, uploads.max_chunk_size
        rule = ChunkRule(
            uploads.chunk_size if tuning is None else max(low, min(high, tuning.chunk_size)), low, high,
            performance.chunk_target_time.total_seconds(), None if tuning is None else tuning.chunk_size,
        )  # fmt: skip
        chunk = recommend_chunk_size(estimate, rule, file_size)
    if arm is Arm.ADAPTIVE and performance.adaptive("buffer"):
        buffer = recommend_buffer_size(
            estimate, performance.min_buffer_size, performance.max_buffer_size,
            None if tuning is None else tuning.buffer_size,
        )  # fmt: skip
    return Recommendation(chunk, buffer, network_class, estimate, source, arm)


def open_profile(session: Session, client: ClientKey, now: datetime) -> ClientProfile | None:
    """The client's profile, created empty if it has none (so an upload can name it)."""
    sql.add_profile(session, client, now)
    return sql.find_profile(session, client.key)


def note_recommendation(session: Session, client: ClientKey, recommendation: Recommendation) -> None:
    """Keep the sizes just recommended to ``client`` on its profile (``chunk_size``,
    ``buffer_size``: what a DB admin reads as the last recommendation)."""
    values = {"chunk_size": recommendation.chunk_size, "buffer_size": recommendation.buffer_size}
    sql.save_profile(session, client.key, values)


def record_body(
    session: Session,
    client: ClientKey,
    body: BodyMeasurement,
    now: datetime,
    *,
    prefix: str,
    history: int,
    recommendation: Recommendation | None = None,
) -> LinkEstimate:
    """Fold one body into the client's profile (created if missing) and return the new
    estimate. ``prefix`` (the client's address prefix) and the body's numbers are
    appended to the profile's history, which keeps the newest ``history`` entries."""
    return record_bodies(
        session, client, [(body, prefix)], now, history=history, recommendation=recommendation
    )


def record_bodies(
    session: Session,
    client: ClientKey,
    bodies: Sequence[tuple[BodyMeasurement, str]],
    now: datetime,
    *,
    history: int,
    recommendation: Recommendation | None = None,
) -> LinkEstimate:
    """``record_body`` for several bodies of one client, oldest first (each with its
    address prefix): folded in turn as one by one, written with one insert, one locked
    read and one update. A worker's saver folds what queued meanwhile this way: per body,
    those three statements were most of its CPU under a tus upload (py-spy)."""
    sql.add_profile(session, client, now)
    profile = sql.lock_profile(session, client.key)
    assert profile is not None  # just inserted or already there
    updated, entries = estimate_of(profile), profile.interface_history
    for body, prefix in bodies:
        one = estimate_body(body)
        updated = combine(updated, one)
        entries = _history(entries, body, one, prefix=prefix, now=now, keep=history)
    values: dict[str, Any] = {
        "throughput_bps": updated.throughput or 0.0,
        "rtt_ms": updated.rtt_ms,
        "loss_ratio": updated.loss,
        "reliability": min(1.0, max(0.0, updated.reliability)),
        "window_bodies": updated.bodies,
        "samples": profile.samples + len(bodies),
        "last_seen": now,
        "interface_history": entries,
    }
    if recommendation is not None:
        values["chunk_size"], values["buffer_size"] = recommendation.chunk_size, recommendation.buffer_size
    sql.save_profile(session, client.key, values)
    return updated


def _history(
    old: list[Any] | None, body: BodyMeasurement, one: LinkEstimate, *, prefix: str, now: datetime, keep: int
) -> list[Any] | None:
    if keep == 0:
        return None
    entry = {
        "at": now.isoformat(),
        "prefix": prefix,
        "bytes": body.received,
        "bytes_per_second": None if one.throughput is None else round(one.throughput),
        "rtt_ms": one.rtt_ms,
        "outcome": body.outcome.value,
    }
    return [*(old or []), entry][-keep:]


def expire_profiles(session: Session, services: Services, now: datetime) -> int:
    """Cleanup step: delete profiles unseen for ``performance.profile_persistence_duration``."""
    return sql.delete_unseen(session, now - services.settings.performance.profile_persistence_duration)
