from __future__ import annotations

import logging

import pytest

from hmacfs.network.strategy import Arm, Fallback, FallbackRule, arm_for

RULE = FallbackRule(window=60.0, ratio=1.1, min_bodies=10, cooldown=300.0)


def test_an_upload_always_gets_the_same_arm_and_the_share_holds() -> None:
    keys = [f"upload-{n}" for n in range(4000)]
    arms = [arm_for(key, 25.0) for key in keys]
    assert arms == [arm_for(key, 25.0) for key in keys]
    assert 0.22 < arms.count(Arm.ADAPTIVE) / len(arms) < 0.28
    assert {arm_for(key, 0.0) for key in keys} == {Arm.FIXED}
    assert {arm_for(key, 100.0) for key in keys} == {Arm.ADAPTIVE}


def test_adaptive_failing_above_1_1x_fixed_falls_back_then_rearms(caplog: pytest.LogCaptureFixture) -> None:
    fallback = Fallback(RULE)
    for n in range(20):
        fallback.record(Arm.FIXED, ok=n % 10 != 0, now=n)  # 10 % errors
    tripped = [fallback.record(Arm.ADAPTIVE, ok=n % 5 != 0, now=20 + n) for n in range(20)]  # 20 %
    assert any(tripped) and fallback.trips == 1
    assert "Adaptive arm failing" in caplog.text
    assert not fallback.adaptive_allowed(now=100.0)
    with caplog.at_level(logging.INFO):
        assert fallback.adaptive_allowed(now=40 + 300.0)
    assert "re-armed" in caplog.text


def test_equal_error_rates_or_too_few_bodies_keep_adaptive() -> None:
    fallback = Fallback(RULE)
    for n in range(30):
        fallback.record(Arm.FIXED, ok=n % 10 != 0, now=n)
        fallback.record(Arm.ADAPTIVE, ok=n % 10 != 0, now=n)
    assert fallback.trips == 0 and fallback.adaptive_allowed(now=31)
    lonely = Fallback(RULE)
    for n in range(5):
        lonely.record(Arm.ADAPTIVE, ok=False, now=n)
    assert lonely.trips == 0


def test_outcomes_older_than_the_window_are_forgotten() -> None:
    fallback = Fallback(RULE)
    for n in range(10):
        fallback.record(Arm.FIXED, ok=True, now=n)
    fallback.record(Arm.FIXED, ok=True, now=1000.0)
    assert fallback.error_rate(Arm.FIXED) is None
