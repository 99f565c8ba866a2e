"""Client profiles in the database: one contract on PostgreSQL and SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.models import ClientProfile, UploadTask
from hmacfs.network.estimate import BodyMeasurement, LinkEstimate, NetworkClass, Outcome
from hmacfs.network.keys import ClientKey
from hmacfs.network.profiles import (
    NetworkHint,
    choose_estimate,
    estimate_of,
    expire_profiles,
    open_profile,
    recommend,
    record_bodies,
    record_body,
)
from hmacfs.network.strategy import Arm
from hmacfs.network.tcp_info import TcpSample
from tests.conftest import make_settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MIB = 1024 * 1024
CLIENT = ClientKey(uuid.UUID(int=7), "phone-1", NetworkClass.LTE)


def _body(received: int, seconds: float, outcome: Outcome = Outcome.COMPLETE) -> BodyMeasurement:
    samples = [
        TcpSample(0.0, rcv_rtt_us=80_000, segs_in=0),
        TcpSample(seconds, rcv_rtt_us=90_000, segs_in=1000),
    ]
    return BodyMeasurement(received, seconds, outcome, samples)


def test_the_key_names_account_client_and_class() -> None:
    assert CLIENT.key == "00000000-0000-0000-0000-000000000007:phone-1:lte"
    assert ClientKey(None, "x", NetworkClass.UNKNOWN).key == "anonymous:x:unknown"


def test_bodies_build_moving_averages_and_a_bounded_history(session: Session) -> None:
    assert open_profile(session, CLIENT, NOW) is not None
    estimate = None
    for number in range(5):
        outcome = Outcome.SHORT if number == 2 else Outcome.COMPLETE
        estimate = record_body(
            session, CLIENT, _body(2 * MIB, 2.0, outcome), NOW, prefix="10.1.2.0/24", history=3
        )
    session.expire_all()
    profile = session.get(ClientProfile, CLIENT.key)
    assert profile is not None and estimate is not None
    assert profile.samples == 5
    assert profile.throughput_bps == pytest.approx(MIB)
    assert profile.rtt_ms == pytest.approx(90.0)
    assert 0.7 < profile.reliability < 0.9
    assert [entry["outcome"] for entry in profile.interface_history or []] == [
        "short",
        "complete",
        "complete",
    ]
    assert profile.interface_history[-1]["prefix"] == "10.1.2.0/24"  # type: ignore[index]
    assert estimate_of(profile).reliability == pytest.approx(estimate.reliability)


def test_bodies_folded_together_end_as_the_same_bodies_folded_one_by_one(session: Session) -> None:
    bodies = [
        (_body(2 * MIB, 2.0), "10.1.2.0/24"),
        (_body(MIB, 4.0, Outcome.SHORT), "10.1.3.0/24"),
        (_body(3 * MIB, 1.0), "10.1.4.0/24"),
    ]
    other = ClientKey(uuid.UUID(int=8), "phone-2", NetworkClass.LTE)
    for body, prefix in bodies:
        one_by_one = record_body(session, other, body, NOW, prefix=prefix, history=2)
    together = record_bodies(session, CLIENT, bodies, NOW, history=2)
    session.expire_all()
    apart, joint = session.get(ClientProfile, other.key), session.get(ClientProfile, CLIENT.key)
    assert apart is not None and joint is not None
    assert together == one_by_one
    assert joint.samples == apart.samples == 3
    assert (joint.throughput_bps, joint.rtt_ms, joint.reliability) == (
        apart.throughput_bps,
        apart.rtt_ms,
        apart.reliability,
    )
    assert joint.interface_history == apart.interface_history
    assert [entry["prefix"] for entry in joint.interface_history or []] == ["10.1.3.0/24", "10.1.4.0/24"]


def test_opening_twice_keeps_one_row(session: Session) -> None:
    open_profile(session, CLIENT, NOW)
    record_body(session, CLIENT, _body(MIB, 1.0), NOW, prefix="p", history=0)
    again = open_profile(session, CLIENT, NOW + timedelta(seconds=1))
    assert again is not None and again.samples == 1 and again.interface_history is None


def test_profiles_unseen_too_long_are_deleted_and_their_uploads_forget_them(
    session: Session, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, performance={"profile_persistence_duration": "1h"})
    old = ClientKey(None, "old", NetworkClass.WIFI)
    open_profile(session, old, NOW - timedelta(hours=2))
    open_profile(session, CLIENT, NOW)
    task = UploadTask(
        id=uuid.uuid4(), task_id=uuid.uuid4().hex, protocol="drive", status="Pending",
        pool_id=DEFAULT_POOL_ID, file_name="f", file_size=1, content_type="x", chunk_size=1,
        chunks_count=1, client_profile_key=old.key, last_activity=NOW, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(task)
    session.flush()
    services = Services.__new__(Services)
    object.__setattr__(services, "settings", settings)
    assert expire_profiles(session, services, NOW) == 1
    session.expire_all()
    assert session.get(ClientProfile, old.key) is None
    assert session.get(ClientProfile, CLIENT.key) is not None
    assert session.get(UploadTask, task.id).client_profile_key is None  # type: ignore[union-attr]


def test_direct_clients_are_sized_by_measurement_proxied_ones_by_their_hint() -> None:
    measured = LinkEstimate(throughput=20 * MIB, rtt_ms=1.0, loss=0.0, reliability=1.0, bodies=3)
    hint = NetworkHint(NetworkClass.LTE, downlink_mbps=8.0, rtt_ms=60.0)
    assert choose_estimate(measured, hint, behind_proxy=False) == (measured, "measured")
    merged, source = choose_estimate(measured, hint, behind_proxy=True)
    assert source == "measured+hint" and merged.throughput == 1_000_000 and merged.rtt_ms == 60.0
    new = LinkEstimate(None, None, 0.0, 1.0, 0.0)
    assert choose_estimate(new, hint, behind_proxy=False)[1] == "hint"
    assert choose_estimate(new, None, behind_proxy=False)[1] == "none"


def test_the_fixed_arm_and_fixed_strategies_get_the_configured_sizes(tmp_path: Path) -> None:
    slow = LinkEstimate(throughput=100_000.0, rtt_ms=300.0, loss=0.05, reliability=0.5, bodies=5)
    settings: Settings = make_settings(tmp_path)
    adaptive = recommend(settings, slow, "measured", NetworkClass.LTE, Arm.ADAPTIVE)
    fixed = recommend(settings, slow, "measured", NetworkClass.LTE, Arm.FIXED)
    assert (fixed.chunk_size, fixed.buffer_size) == (5 * MIB, MIB)
    assert adaptive.chunk_size == 256 * 1024 and adaptive.buffer_size == 32 * 1024
    chunks_only = make_settings(tmp_path, performance={"buffer_strategy": "fixed"})
    mixed = recommend(chunks_only, slow, "measured", NetworkClass.LTE, Arm.ADAPTIVE)
    assert (mixed.chunk_size, mixed.buffer_size) == (256 * 1024, MIB)
    off = make_settings(tmp_path, performance={"adaptive_buffers": False})
    assert recommend(off, slow, "measured", NetworkClass.LTE, Arm.ADAPTIVE).chunk_size == 5 * MIB
